/**
 * The `ffmpeg` job type. Clients send argv (never a shell line) and it is checked against an **allowlist**: every
 * option, format, codec, filter (and filter option), output extension and encoder parameter-string key must be one
 * Gantry knows to open nothing but the files it is given. Anything else is refused naming it. A denylist was bypassed
 * three ways in review (demuxer private options such as mov `-enable_drefs`, encoder parameter strings such as
 * `-x264-params stats=…`, output names selecting muxers such as `.m3u8` whose own options fetch URLs): ffmpeg has
 * thousands of options and every build adds more, so only a list of what is known to be harmless can be kept right.
 * Every file it names must be a declared input or output; no value may name a path, a protocol or a device.
 * `docs/job-types.md` lists what is allowed and why.
 */
import { normalizeS3Url } from '../s3-input';
import { isPlainObject, SAFE_FILE_NAME, unknownKeys, type FieldError, type JobTypeDefinition } from './job-type';
import { isParentOutputUrl, parseParentOutput } from './parent-output';

export interface FfmpegInput {
  args: string[];
  inputs: Record<string, string>;
  outputs: string[];
}

/** A file name inside the scratch directory. */
export { SAFE_FILE_NAME };
export const MAX_FFMPEG_ARGS = 256;
export const MAX_FFMPEG_ARG_LENGTH = 4096;

const words = (s: string): string[] => s.trim().split(/\s+/);

/**
 * Output extensions and the muxer each selects. Each of these muxers writes exactly the one file it is given and
 * has no option that opens another (unlike `.m3u8`/`.mpd`/`.ism` — playlists — or image sequences with `%d`).
 */
export const OUTPUT_EXTENSIONS: Readonly<Record<string, string>> = {
  mp4: 'mp4',
  m4a: 'ipod',
  m4v: 'ipod',
  mov: 'mov',
  mkv: 'matroska',
  mka: 'matroska',
  webm: 'webm',
  ts: 'mpegts',
  mp3: 'mp3',
  aac: 'adts',
  wav: 'wav',
  flac: 'flac',
  ogg: 'ogg',
  opus: 'opus',
  jpg: 'image2',
  jpeg: 'image2',
  png: 'image2',
  webp: 'webp',
  gif: 'gif',
  srt: 'srt',
  vtt: 'webvtt',
};

/**
 * `-f` values: the muxers above (the single-file `image2` case is reached only through an extension: as `-f` it
 * also reads and writes numbered sequences) and the demuxers of the same containers.
 */
const FORMATS = new Set([
  ...words('mp4 ipod mov matroska webm mpegts mp3 adts wav flac ogg opus webp gif srt webvtt'),
  ...words('aac h264 hevc m4v mjpeg rawvideo'),
]);

/** Encoders and decoders (`-c`, `-codec`, `-vcodec`, `-acodec`, `-scodec`). */
const CODECS = new Set(
  words(`copy
    libx264 libx265 h264_nvenc hevc_nvenc av1_nvenc libsvtav1 libaom-av1 libdav1d libvpx libvpx-vp9 mpeg4 mpeg2video
    mjpeg png libwebp libwebp_anim gif prores prores_ks dnxhd ffv1 rawvideo h264 hevc vp8 vp9 av1
    h264_cuvid hevc_cuvid vp8_cuvid vp9_cuvid av1_cuvid mpeg2_cuvid mjpeg_cuvid
    aac libfdk_aac libmp3lame mp3 libopus opus libvorbis vorbis flac alac ac3 eac3
    pcm_s16le pcm_s24le pcm_s32le pcm_f32le pcm_u8
    mov_text subrip srt webvtt ass ssa`),
);

/**
 * Parameter-string options: `key=value:key=value` handed to an encoder library, which has keys of its own that read
 * or write files (x264 `stats`, `qpfile`, `tcfile-in`; x265 `csv`, `analysis-save`, `zonefile`; SVT-AV1 `stats`,
 * `fgs-table`; …). Only these keys are accepted (compared as the library does: case-insensitive, `_` = `-`, a
 * `no-` prefix stripped).
 */
const RATE_CONTROL = 'crf qp bitrate vbv-maxrate vbv-bufsize vbv-init keyint min-keyint scenecut bframes ref';
const COLOR = 'colorprim transfer colormatrix range chromaloc';
const X264_KEYS: ReadonlySet<string> = new Set(
  words(`${RATE_CONTROL} ${COLOR} b-adapt b-pyramid rc-lookahead aq-mode aq-strength psy psy-rd deblock me subme
      merange trellis fast-pskip dct-decimate weightp weightb mbtree 8x8dct partitions direct cabac bluray-compat aud
      repeat-headers open-gop nal-hrd force-cfr threads sliced-threads lookahead-threads level profile preset tune
      qpmin qpmax qpstep ipratio pbratio ratetol intra-refresh mixed-refs chroma-me cqm slices slice-max-size
      fps annexb sar overscan videoformat no-scenecut`),
);
const PARAMETER_KEYS: Readonly<Record<string, ReadonlySet<string>>> = {
  '-x264-params': X264_KEYS,
  '-x264opts': X264_KEYS,
  '-x265-params': new Set(
    words(`${RATE_CONTROL} ${COLOR} rc-lookahead aq-mode aq-strength psy-rd psy-rdoq level-idc high-tier
      repeat-headers hdr10 hdr10-opt hdr-opt master-display max-cll open-gop strong-intra-smoothing sao deblock
      pools frame-threads wpp pmode pme ctu min-cu-size limit-refs rect amp rd lossless log-level info aud hrd
      bitrate b-adapt b-pyramid weightp weightb tskip rdoq-level cutree qg-size no-scenecut preset tune profile
      keyint min-keyint ipratio pbratio qpmin qpmax fps sar overscan videoformat annexb`),
  ),
  '-svtav1-params': new Set(
    words(`preset crf qp tune film-grain film-grain-denoise enable-overlays scd keyint irefresh-type lookahead
      enable-tf enable-qm qm-min qm-max fast-decode tile-rows tile-columns lp rc tbr mbr buf-sz buf-initial-sz
      buf-optimal-sz aq-mode enable-variance-boost variance-boost-strength color-primaries
      transfer-characteristics matrix-coefficients color-range chroma-sample-position mastering-display
      content-light enable-hdr sharpness hierarchical-levels pred-struct min-qp max-qp`),
  ),
  '-aom-params': new Set(
    words(`cpu-used end-usage cq-level min-q max-q kf-max-dist kf-min-dist lag-in-frames tile-columns tile-rows
      row-mt enable-tpl-model aq-mode deltaq-mode enable-fwd-kf sharpness tune threads`),
  ),
};

type OptionRule =
  | { kind: 'flag' }
  | { kind: 'value'; check?: (v: string) => string | undefined }
  | { kind: 'input' }
  | { kind: 'filter' }
  | { kind: 'params' };

const matches =
  (re: RegExp, what: string) =>
  (v: string): string | undefined =>
    re.test(v) ? undefined : `must be ${what}`;
const oneOf =
  (set: ReadonlySet<string>, what: string) =>
  (v: string): string | undefined =>
    set.has(v) ? undefined : `${what} "${v}" is not allowed (see docs/job-types.md)`;

const TOKEN = matches(/^-?[A-Za-z0-9_.+]{1,64}$/, 'a number or a name');
const TIME = matches(
  /^-?(?:(?:\d+:)?\d+:\d+(?:\.\d+)?|\d+(?:\.\d+)?(?:s|ms|us)?)$/,
  'a time ([HH:]MM:SS[.m] or seconds)',
);
const INT = matches(/^-?\d{1,10}$/, 'an integer');
const NUMBER = matches(/^-?\d{1,10}(?:\.\d+)?$/, 'a number');
const RATE = matches(/^\d{1,12}(?:\.\d+)?[kKMG]?$/, 'a bit rate such as 2500k or 4M');
const NAME = matches(/^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$/, 'a name');
const FLAGS_VALUE = matches(/^[+-]?[A-Za-z0-9_]+(?:[+-][A-Za-z0-9_]+)*$/, 'flags such as +faststart');
const FRAME_RATE = matches(
  /^(?:\d{1,6}(?:[./]\d{1,6})?|ntsc|pal|film|ntsc-film|qntsc|qpal|sntsc|spal)$/,
  'a frame rate',
);
const SIZE = matches(/^(?:\d{1,5}x\d{1,5}|[a-z0-9]{2,10})$/, 'a size such as 1280x720');
const ASPECT = matches(/^\d{1,5}(?:[.:/]\d{1,5})?$/, 'an aspect ratio such as 16:9');
/** `-map`, `-map_metadata`, `-map_chapters`, `-disposition`: stream specifiers and labels. */
const SPECIFIER = matches(/^-?[A-Za-z0-9_:?#.[\]=+-]{1,128}$/, 'a stream specifier');

const flag: OptionRule = { kind: 'flag' };
const value = (check?: (v: string) => string | undefined): OptionRule =>
  check ? { kind: 'value', check } : { kind: 'value' };

/**
 * Every option a client may use, by name without its stream specifier (`-c:v:0` is `-c`). Options of the ffmpeg
 * tool that open nothing; codec options; the private options of the allowed encoders and muxers that open nothing.
 * Not here, so refused: every demuxer private option (mov `-enable_drefs`…), every option that names a file, URL or
 * device (`-progress`, `-attach`, `-dump_attachment`, `-passlogfile`, `-vstats_file`, `-filter_script`,
 * `-init_hw_device`, `-hls_*`, `-segment_*`, `-protocol_*`…), `--` and `-/opt`.
 */
const OPTIONS: ReadonlyMap<string, OptionRule> = new Map<string, OptionRule>([
  ['-i', { kind: 'input' }],
  // Filters.
  ...['-vf', '-af', '-filter', '-filter_complex', '-lavfi'].map((o): [string, OptionRule] => [o, { kind: 'filter' }]),
  // Parameter strings.
  ...Object.keys(PARAMETER_KEYS).map((o): [string, OptionRule] => [o, { kind: 'params' }]),
  // Value-less options of the ffmpeg tool.
  ...words(`-y -an -vn -sn -dn -re -shortest -copyts -start_at_zero -hide_banner -nostdin -autorotate -noautorotate
    -accurate_seek -noaccurate_seek -copyinkf -bitexact -xerror -fix_sub_duration -autoscale -noautoscale
    -ignore_unknown`).map((o): [string, OptionRule] => [o, flag]),
  // Streams, timing, metadata.
  ['-c', value(oneOf(CODECS, 'codec'))],
  ['-codec', value(oneOf(CODECS, 'codec'))],
  ['-vcodec', value(oneOf(CODECS, 'codec'))],
  ['-acodec', value(oneOf(CODECS, 'codec'))],
  ['-scodec', value(oneOf(CODECS, 'codec'))],
  ['-f', value(oneOf(FORMATS, 'format'))],
  ['-map', value(SPECIFIER)],
  ['-map_metadata', value(SPECIFIER)],
  ['-map_chapters', value(INT)],
  ['-metadata', value()],
  ['-disposition', value(SPECIFIER)],
  ['-ss', value(TIME)],
  ['-sseof', value(TIME)],
  ['-t', value(TIME)],
  ['-to', value(TIME)],
  ['-itsoffset', value(TIME)],
  ['-stream_loop', value(INT)],
  ['-frames', value(INT)],
  ['-vframes', value(INT)],
  ['-aframes', value(INT)],
  ['-force_key_frames', value()],
  ['-fps_mode', value(NAME)],
  ['-vsync', value(NAME)],
  ['-max_muxing_queue_size', value(INT)],
  ['-avoid_negative_ts', value(NAME)],
  ['-filter_threads', value(INT)],
  ['-filter_complex_threads', value(INT)],
  ['-threads', value(INT)],
  ['-timecode', value(matches(/^\d{2}:\d{2}:\d{2}[:;.]\d{2}$/, 'a timecode'))],
  ['-hwaccel', value(oneOf(new Set(['cuda', 'none']), 'hwaccel'))],
  ['-hwaccel_output_format', value(NAME)],
  // Video and audio encoding (AVCodecContext).
  ...words('-b -vb -ab -maxrate -minrate -bufsize').map((o): [string, OptionRule] => [o, value(RATE)]),
  ...words('-g -keyint_min -bf -refs -sc_threshold -qmin -qmax -ac -ar -cutoff -trellis -global_quality').map(
    (o): [string, OptionRule] => [o, value(INT)],
  ),
  ...words('-crf -qp -q -qscale -cq -aq-strength').map((o): [string, OptionRule] => [o, value(NUMBER)]),
  ['-r', value(FRAME_RATE)],
  ['-fpsmax', value(FRAME_RATE)],
  ['-s', value(SIZE)],
  ['-aspect', value(ASPECT)],
  ...words(
    `-pix_fmt -sample_fmt -ch_layout -channel_layout -profile -level -strict -tag -color_primaries -color_trc
     -colorspace -color_range -field_order -preset -tune -rc -aq-mode -coder -b_ref_mode -multipass -deadline
     -application -vbr -aac_coder`,
  ).map((o): [string, OptionRule] => [o, value(NAME)]),
  ['-flags', value(FLAGS_VALUE)],
  ['-psy-rd', value(matches(/^\d{1,3}(?:\.\d+)?(?::\d{1,3}(?:\.\d+)?)?$/, 'psy-rd[:psy-trellis]'))],
  // Encoder private options (libx264/x265, NVENC, libvpx, libaom, SVT-AV1, libopus) that open nothing.
  ...words(
    `-rc-lookahead -spatial-aq -spatial_aq -temporal-aq -temporal_aq -zerolatency -gpu -surfaces -forced-idr -a53cc
     -weightb -weightp -b-pyramid -cpu-used -row-mt -tile-columns -tile-rows -lag-in-frames -auto-alt-ref -lossless
     -frame_duration -compression_level -quality -no-scenecut -nonref_p -strict_gop -intra-refresh`,
  ).map((o): [string, OptionRule] => [o, value(TOKEN)]),
  // Muxer private options of the allowed muxers that open nothing.
  ['-movflags', value(FLAGS_VALUE)],
  ['-brand', value(NAME)],
  ...words(
    '-frag_duration -min_frag_duration -frag_size -use_editlist -write_tmcd -video_track_timescale -update ' +
      '-cluster_size_limit -cluster_time_limit -reserve_index_space -loop -final_delay',
  ).map((o): [string, OptionRule] => [o, value(INT)]),
]);

/**
 * Filters known to open nothing (no file, device, socket, model or command channel), with the options each may be
 * given. `'*'`: none of the filter's options (ffmpeg 5.1–7.1) opens anything, so any is accepted (still subject to
 * the value rules). A list: only those option names, and at most that many positional options — ffmpeg maps
 * positional options in declaration order, so the list is the safe prefix (e.g. `paletteuse`'s 6th option,
 * `debug_kdtree`, writes a file).
 */
const FILTERS: ReadonlyMap<string, '*' | readonly string[]> = new Map<string, '*' | readonly string[]>([
  ...words(`scale scale_cuda scale_npp format fps crop pad setsar setdar transpose hflip vflip rotate trim atrim
    setpts asetpts split asplit concat hstack vstack xstack overlay overlay_cuda select aselect thumbnail
    thumbnail_cuda tile yadif yadif_cuda bwdif null anull copy volume aresample aformat loudnorm pan amix amerge
    atempo afade fade drawbox drawgrid boxblur gblur avgblur unsharp eq hue colorspace zscale tonemap palettegen
    negate lut lutrgb lutyuv hqdn3d deband framerate setparams settb asettb showinfo silencedetect blackdetect
    cropdetect idet scdet fieldorder hwupload_cuda hwdownload colorchannelmixer colorkey chromakey alphamerge
    alphaextract reverse areverse apad aloop loop framestep vignette noise geq median edgedetect blend scale2ref
    zoompan xfade acrossfade volumedetect astats signalstats tpad mpdecimate decimate deflicker setfield interlace
    w3fdif highpass lowpass bandpass equalizer dynaudnorm acompressor silenceremove channelmap channelsplit adelay
    showwaves showwavespic showspectrum showspectrumpic color anullsrc nullsrc testsrc testsrc2 sine
    colorlevels smartblur histeq chromashift`).map((f): [string, '*'] => [f, '*']),
  ['paletteuse', ['dither', 'bayer_scale', 'diff_mode', 'new', 'alpha_threshold']],
]);

/** Filter option names whose value is a file, a command or a model: refused even on an allowed filter. */
const FILE_KEYS = new Set(
  words(
    'filename file textfile fontfile stats_file model model_path result input f cmd commands path log_path ' +
      'log_fmt_file sofa bitmap debug_kdtree',
  ),
);

/**
 * Protocols libavformat can open (`ffmpeg -protocols` of 5.1–7.x plus ones other builds add). A value naming one of
 * them as `scheme:` — or any `scheme://` — is refused. A plain `word:` prefix is not refused on its own: values such
 * as `expr:gte(t,2)` (-force_key_frames) or `m:language:eng` are legitimate.
 */
const PROTOCOLS = new Set(
  (
    'amqp async bluray cache concat concatf crypto data fd ffrtmpcrypt ffrtmphttp file ftp gopher gophers hls http ' +
    'httpproxy https icecast ipfs ipns librtmp md5 mmsh mmst pipe prompeg rist rtmp rtmpe rtmps rtmpt rtmpte rtmpts ' +
    'rtp sctp sftp smb srt srtp subfile tcp tee tls udp udplite unix zmq android_content dash whip'
  ).split(' '),
);
const SCHEME = /^([A-Za-z][A-Za-z0-9+.-]*)(,[^:]*)?:/;
const NEGATIVE_NUMBER = /^-\d/;
const LOOKS_LIKE_OPTION = /^-[A-Za-z/-]/;

/** An input the worker can fetch: http(s)://, s3://bucket/key, or (v1.1) a parent output `job:<parent>/<name>`. */
export function isUrlInput(v: string): boolean {
  return (
    /^https?:\/\/[^\s]+$/i.test(v) || /^s3:\/\/[a-z0-9.-]{3,63}\/\S+$/.test(v) || parseParentOutput(v) !== undefined
  );
}

/** What an input URL must look like, for error messages. */
export const INPUT_URL_FORMS =
  'an http(s):// or s3://bucket/key URL, or a parent output job:<parent id or ref:<ref>>/<name>';

function pathProblems(value: string): string[] {
  const problems: string[] = [];
  if (value.startsWith('/') || value.startsWith('~') || value.startsWith('\\'))
    problems.push('may not name an absolute path');
  if (/(^|[^A-Za-z0-9_])\.\.([^A-Za-z0-9_]|$)/.test(value)) problems.push('may not contain ..');
  const scheme = SCHEME.exec(value)?.[1]?.toLowerCase();
  if ((scheme && PROTOCOLS.has(scheme)) || value.includes('://')) {
    problems.push('may not name a protocol or device (only declared files are allowed)');
  }
  if (/[\u0000-\u001f]/.test(value)) problems.push('may not contain control characters');
  return problems;
}

/**
 * One token as libavutil's `av_get_token` reads it: leading blanks skipped, `'…'` quoted, `\\x` escaped, trailing
 * blanks (outside quotes) dropped; stops before any character of `terms`. Returns the unescaped token and the index
 * after it. Filter names and arguments are checked after this unescaping, exactly as ffmpeg will see them, so quoting
 * (`m'ovie'`, `http\\://`) cannot hide a forbidden filter or a URL.
 */
export function avGetToken(buf: string, from: number, terms: string): { token: string; next: number } {
  let i = from;
  while (i < buf.length && ' \n\t\r'.includes(buf[i]!)) i++;
  let out = '';
  let protectedLength = 0;
  while (i < buf.length && !terms.includes(buf[i]!)) {
    const c = buf[i++]!;
    if (c === '\\' && i < buf.length) {
      out += buf[i++]!;
      protectedLength = out.length;
    } else if (c === "'") {
      while (i < buf.length && buf[i] !== "'") out += buf[i++]!;
      if (i < buf.length) i++;
      protectedLength = out.length;
    } else {
      out += c;
    }
  }
  let end = out.length;
  while (end > protectedLength && ' \n\t\r'.includes(out[end - 1]!)) end--;
  return { token: out.slice(0, end), next: i };
}

interface ParsedFilter {
  name: string;
  args: string[];
}

/** Parses a filter graph the way libavfilter's graph parser does; undefined when it is malformed. */
export function parseFilterGraph(graph: string): ParsedFilter[] | undefined {
  const filters: ParsedFilter[] = [];
  let i = 0;
  const skipBlanks = () => {
    while (i < graph.length && ' \n\t\r'.includes(graph[i]!)) i++;
  };
  const skipLabels = (): boolean => {
    skipBlanks();
    while (graph[i] === '[') {
      const close = graph.indexOf(']', i);
      if (close < 0) return false;
      i = close + 1;
      skipBlanks();
    }
    return true;
  };
  if (graph.length > MAX_FFMPEG_ARG_LENGTH) return undefined;
  for (;;) {
    if (!skipLabels()) return undefined;
    if (i >= graph.length) break;
    const name = avGetToken(graph, i, '=,;[');
    i = name.next;
    const args: string[] = [];
    if (graph[i] === '=') {
      const opts = avGetToken(graph, i + 1, '[],;');
      i = opts.next;
      // Second level: the filter's own options, `key=value` or positional, separated by `:`.
      let j = 0;
      while (j <= opts.token.length) {
        const part = avGetToken(opts.token, j, ':');
        args.push(part.token);
        j = part.next + 1;
      }
    }
    filters.push({ name: name.token, args });
    if (!skipLabels()) return undefined;
    if (i >= graph.length) break;
    if (graph[i] !== ',' && graph[i] !== ';') return undefined;
    i++;
  }
  return filters;
}

function checkFilterGraph(field: string, graph: string): FieldError[] {
  const filters = parseFilterGraph(graph);
  if (!filters) return [{ field, message: 'is not a filter graph ffmpeg can parse' }];
  const errors: FieldError[] = [];
  const seen = new Set<string>();
  const add = (message: string) => {
    if (seen.has(message)) return;
    seen.add(message);
    errors.push({ field, message });
  };
  for (const f of filters) {
    // `name@instance`; ffmpeg's filter names are case-sensitive, so the name is compared as written.
    const name = (f.name.split('@')[0] ?? '').trim();
    const allowed = FILTERS.get(name);
    if (allowed === undefined) {
      add(`filter "${f.name}" is not allowed (not in Gantry's filter allowlist, see docs/job-types.md)`);
      continue;
    }
    let positional = 0;
    for (const arg of f.args) {
      if (arg === '' && f.args.length === 1) continue;
      const eq = arg.indexOf('=');
      const key = eq > 0 && /^[A-Za-z0-9_-]+$/.test(arg.slice(0, eq)) ? arg.slice(0, eq) : undefined;
      const optionValue = key !== undefined ? arg.slice(eq + 1) : arg;
      if (key === undefined) positional++;
      if (key !== undefined && FILE_KEYS.has(key.toLowerCase())) {
        add(`filter "${name}" may not be given option ${key} (it names a file)`);
      } else if (allowed !== '*' && key !== undefined && !allowed.includes(key)) {
        add(`filter "${name}" may not be given option ${key} (allowed: ${allowed.join(', ')})`);
      } else if (allowed !== '*' && key === undefined && positional > allowed.length) {
        add(`filter "${name}" takes at most ${allowed.length} positional options (allowed: ${allowed.join(', ')})`);
      }
      // The value as the filter will read it after its own unescaping.
      const unescaped = avGetToken(optionValue, 0, '').token;
      for (const problem of pathProblems(unescaped)) add(`filter "${name}": ${problem}`);
    }
  }
  return errors;
}

/** Normalizes a parameter-string key as x264/x265/SVT-AV1 compare them. */
function parameterKey(raw: string): string {
  const k = raw.trim().toLowerCase().replace(/_/g, '-');
  return k.startsWith('no-') ? k.slice(3) : k;
}

/**
 * An encoder parameter string (`key=value:key=value`, libavutil's `av_dict_parse_string` quoting): every key must be
 * in the option's allowlist and every value must pass the value rules.
 */
function checkParameterString(field: string, option: string, value: string): FieldError[] {
  const keys = PARAMETER_KEYS[option]!;
  const errors: FieldError[] = [];
  let i = 0;
  while (i <= value.length) {
    const pair = avGetToken(value, i, ':');
    i = pair.next + 1;
    if (pair.token === '') continue;
    const eq = pair.token.indexOf('=');
    const rawKey = eq >= 0 ? pair.token.slice(0, eq) : pair.token;
    const v = eq >= 0 ? pair.token.slice(eq + 1) : '';
    const key = parameterKey(rawKey);
    // The `no` prefix without a dash (x264/x265 accept `nofoo` for `no-foo`).
    const bare = key.startsWith('no') && !keys.has(key) ? key.slice(2) : key;
    if (!keys.has(key) && !keys.has(bare)) {
      errors.push({
        field,
        message: `${option} key "${rawKey}" is not allowed (not in Gantry's ${option} allowlist, see docs/job-types.md)`,
      });
      continue;
    }
    if (!/^[A-Za-z0-9_.,+/-]{0,128}$/.test(v) || pathProblems(v).length > 0) {
      errors.push({ field, message: `${option} key "${rawKey}" has a value that is not allowed: "${v}"` });
    }
  }
  return errors;
}

/** The extension of an output name, lower-cased (the muxer ffmpeg chooses from it). */
function extensionOf(name: string): string {
  const dot = name.lastIndexOf('.');
  return dot > 0 ? name.slice(dot + 1).toLowerCase() : '';
}

/** One argv element as the validator read it. */
export type FfmpegToken =
  { kind: 'option'; index: number; option: string; valueIndex?: number } | { kind: 'output'; index: number };

/**
 * Reads argv with the allowlist's arities: which elements are options (and which their values), which are output
 * files. The worker uses it to place `-protocol_whitelist` before every output exactly where ffmpeg will see it.
 */
export function tokenizeFfmpegArgs(argv: readonly string[]): FfmpegToken[] {
  const tokens: FfmpegToken[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg.startsWith('-') && arg.length > 1 && !NEGATIVE_NUMBER.test(arg)) {
      const option = arg.split(':')[0]!;
      const rule = OPTIONS.get(option);
      if (rule?.kind === 'flag' || i + 1 >= argv.length) {
        tokens.push({ kind: 'option', index: i, option });
      } else if (rule === undefined && LOOKS_LIKE_OPTION.test(argv[i + 1]!)) {
        tokens.push({ kind: 'option', index: i, option });
      } else {
        tokens.push({ kind: 'option', index: i, option, valueIndex: i + 1 });
        i++;
      }
    } else {
      tokens.push({ kind: 'output', index: i });
    }
  }
  return tokens;
}

function checkOption(
  argv: readonly string[],
  t: Extract<FfmpegToken, { kind: 'option' }>,
  inputNames: ReadonlySet<string>,
): FieldError[] {
  const arg = argv[t.index]!;
  const field = `input.args[${t.index}]`;
  if (arg.startsWith('--') || arg.startsWith('-/')) {
    // `--` ends ffmpeg's options (what follows is read as file names); `-/opt` reads the value from a file.
    return [{ field, message: `option ${arg} is not allowed` }];
  }
  const rule = OPTIONS.get(t.option);
  if (!rule) {
    return [
      { field, message: `option ${arg} is not allowed (not in Gantry's ffmpeg allowlist, see docs/job-types.md)` },
    ];
  }
  if (rule.kind === 'flag') return [];
  if (t.valueIndex === undefined) return [{ field, message: `option ${arg} needs a value` }];
  const v = argv[t.valueIndex]!;
  const vField = `input.args[${t.valueIndex}]`;
  if (LOOKS_LIKE_OPTION.test(v)) {
    return [{ field: vField, message: `"${v}" looks like an option, but ${arg} takes a value` }];
  }
  if (v.length > MAX_FFMPEG_ARG_LENGTH) return [{ field: vField, message: `is longer than ${MAX_FFMPEG_ARG_LENGTH}` }];
  switch (rule.kind) {
    case 'input':
      return inputNames.has(v) ? [] : [{ field: vField, message: `-i must name a declared input, not "${v}"` }];
    case 'filter':
      return checkFilterGraph(vField, v);
    case 'params':
      return checkParameterString(vField, t.option, v);
    case 'value': {
      const errors = pathProblems(v).map((message) => ({ field: vField, message }));
      const problem = rule.check?.(v);
      if (problem) errors.push({ field: vField, message: `${arg}: ${problem}` });
      return errors;
    }
  }
}

/** Validates `ffmpeg` input: declared names, and argv that uses only allowlisted options and names only them. */
export function validateFfmpegInput(input: unknown): FieldError[] {
  if (!isPlainObject(input)) return [{ field: 'input', message: 'must be an object' }];
  const errors: FieldError[] = unknownKeys(input, ['args', 'inputs', 'outputs'], 'input.');
  const { args, inputs, outputs } = input;

  const inputNames = new Set<string>();
  if (!isPlainObject(inputs)) {
    errors.push({ field: 'input.inputs', message: `must be an object of file name → ${INPUT_URL_FORMS}` });
  } else {
    const entries = Object.entries(inputs);
    if (entries.length > 64) errors.push({ field: 'input.inputs', message: 'may declare at most 64 files' });
    for (const [name, url] of entries) {
      if (!SAFE_FILE_NAME.test(name))
        errors.push({ field: `input.inputs.${name}`, message: 'is not a safe file name' });
      if (typeof url !== 'string' || !isUrlInput(url) || url.length > 4096) {
        errors.push({
          field: `input.inputs.${name}`,
          message: isParentOutputUrl(String(url))
            ? 'must name a parent output as job:<parent id>/<output name> or job:ref:<batch ref>/<output name>'
            : `must be ${INPUT_URL_FORMS}`,
        });
      } else if (url.startsWith('s3://')) {
        const s3 = normalizeS3Url(url);
        if (!s3.ok) errors.push({ field: `input.inputs.${name}`, message: `is an s3:// URL that ${s3.reason}` });
      }
      inputNames.add(name);
    }
  }

  const outputNames = new Set<string>();
  if (!Array.isArray(outputs) || outputs.length === 0 || outputs.length > 32) {
    errors.push({ field: 'input.outputs', message: 'must list 1 to 32 output file names' });
  } else {
    outputs.forEach((o, i) => {
      if (typeof o !== 'string' || !SAFE_FILE_NAME.test(o)) {
        errors.push({ field: `input.outputs[${i}]`, message: 'is not a safe file name' });
      } else if (inputNames.has(o)) {
        errors.push({ field: `input.outputs[${i}]`, message: 'is also declared as an input' });
      } else if (OUTPUT_EXTENSIONS[extensionOf(o)] === undefined) {
        errors.push({
          field: `input.outputs[${i}]`,
          message: `must end in an allowed extension (${Object.keys(OUTPUT_EXTENSIONS)
            .map((e) => `.${e}`)
            .join(', ')}), not "${o}"`,
        });
      } else {
        outputNames.add(o);
      }
    });
  }

  if (!Array.isArray(args) || args.length === 0 || args.length > MAX_FFMPEG_ARGS) {
    errors.push({ field: 'input.args', message: `must be an array of 1 to ${MAX_FFMPEG_ARGS} strings` });
    return errors;
  }
  if (!args.every((a) => typeof a === 'string')) {
    errors.push({ field: 'input.args', message: 'must contain only strings' });
    return errors;
  }
  const argv = args as string[];
  const usedOutputs = new Set<string>();
  let readsInput = false;
  for (const t of tokenizeFfmpegArgs(argv)) {
    if (t.kind === 'option') {
      if (t.option === '-i') readsInput = true;
      errors.push(...checkOption(argv, t, inputNames));
      continue;
    }
    // A positional argument is an output file.
    const arg = argv[t.index]!;
    if (!outputNames.has(arg)) {
      errors.push({ field: `input.args[${t.index}]`, message: `"${arg}" is neither an option nor a declared output` });
    } else {
      usedOutputs.add(arg);
    }
  }
  for (const o of outputNames) {
    if (!usedOutputs.has(o))
      errors.push({ field: 'input.outputs', message: `output "${o}" is declared but not written by args` });
  }
  if (!readsInput) errors.push({ field: 'input.args', message: 'must read at least one declared input with -i' });
  return errors;
}

export const ffmpegJobType: JobTypeDefinition = {
  name: 'ffmpeg',
  kind: 'builtin',
  validate: validateFfmpegInput,
  inputUrls: (input) =>
    isPlainObject(input) && isPlainObject(input['inputs'])
      ? Object.entries(input['inputs'])
          .filter((e): e is [string, string] => typeof e[1] === 'string' && /^(https?|s3):/i.test(e[1]))
          .map(([name, url]): [string, string] => [`input.inputs.${name}`, url])
      : [],
  parentOutputs: (input) =>
    isPlainObject(input) && isPlainObject(input['inputs'])
      ? Object.entries(input['inputs'])
          .filter((e): e is [string, string] => typeof e[1] === 'string' && isParentOutputUrl(e[1]))
          .map(([name, url]): [string, string] => [`input.inputs.${name}`, url])
      : [],
  outputCount: (input) =>
    isPlainObject(input) && Array.isArray(input['outputs']) ? (input['outputs'] as unknown[]).length : 0,
  outputNames: (input) =>
    isPlainObject(input) && Array.isArray(input['outputs'])
      ? (input['outputs'] as unknown[]).filter((o): o is string => typeof o === 'string')
      : [],
};
