/**
 * The `ffmpeg` job type. Clients send argv (never a shell line); every file it names must be a declared input or
 * output, and nothing may reach outside the attempt's scratch directory: no absolute paths, no `..`, no devices, no
 * protocols but plain files, no filters or muxers that open files or sockets of their own.
 */
import { isPlainObject, unknownKeys, type FieldError, type JobTypeDefinition } from './job-type';

export interface FfmpegInput {
  args: string[];
  inputs: Record<string, string>;
  outputs: string[];
}

/** A file name inside the scratch directory. */
export const SAFE_FILE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
export const MAX_FFMPEG_ARGS = 256;
export const MAX_FFMPEG_ARG_LENGTH = 4096;

/**
 * Options that take no value (everything else starting with `-` takes exactly one). This must list every value-less
 * option ffmpeg knows (its OPT_BOOL options and their `-no` forms): an unlisted one would make the validator read the
 * next argument as its value. As a second guard, a value that looks like an option is refused.
 */
const BOOL_OPTIONS = [
  'y',
  'n',
  'stdin',
  'ignore_unknown',
  'copy_unknown',
  'recast_media',
  'benchmark',
  'benchmark_all',
  'dump',
  'hex',
  're',
  'copyts',
  'start_at_zero',
  'xerror',
  'shortest',
  'accurate_seek',
  'autorotate',
  'autoscale',
  'debug_ts',
  'stats',
  'psnr',
  'qphist',
  'bitexact',
  'copyinkf',
  'find_stream_info',
  'fix_sub_duration',
  'force_fps',
  'vn',
  'an',
  'sn',
  'dn',
  'hide_banner',
];
const FLAGS = new Set([...BOOL_OPTIONS.map((o) => `-${o}`), ...BOOL_OPTIONS.map((o) => `-no${o}`)]);

/** Options that name files or change where output goes; clients may not use them. */
const FORBIDDEN_OPTIONS = new Set([
  '-progress',
  '-report',
  '-passlogfile',
  '-attach',
  '-dump_attachment',
  '-vstats',
  '-vstats_file',
  '-sdp_file',
  '-filter_script',
  '-filter_complex_script',
  '-/filter',
  '-/filter_complex',
  '-init_hw_device',
  '-filter_hw_device',
  '-fpre',
  '-pre',
  '-vpre',
  '-apre',
  '-spre',
  '-stats_enc_pre',
  '-stats_enc_post',
  '-stats_mux_pre',
  '-cookies',
  '-headers',
  '-user_agent',
  '-key',
  '-cryptokey',
  '-decryption_key',
  '-protocol_whitelist',
  '-protocol_blacklist',
  '-sources',
  '-sinks',
  '-h',
  '-help',
  '-?',
  '-vaapi_device',
  '-qsv_device',
]);

/** Container formats that read or write other files, sockets or devices. */
const FORBIDDEN_FORMATS = new Set([
  'lavfi',
  'concat',
  'tee',
  'segment',
  'ssegment',
  'stream_segment',
  'hls',
  'dash',
  'image2',
  'image2pipe',
  'fifo',
  'rtp',
  'rtp_mpegts',
  'rtsp',
  'sdp',
  'mpjpeg',
  'smoothstreaming',
  'webm_dash_manifest',
  'v4l2',
  'video4linux2',
  'alsa',
  'pulse',
  'oss',
  'x11grab',
  'fbdev',
  'kmsgrab',
  'openal',
  'sndio',
  'jack',
  'xv',
  'sdl',
  'sdl2',
  'opengl',
  'caca',
  'decklink',
  'libcdio',
  'lavfi_pipe',
  'sap',
  'dshow',
  'avfoundation',
  'gdigrab',
  'vfwcap',
  'android_camera',
  'iec61883',
  'dv1394',
  'bktr',
  'libdc1394',
]);

/** Filters that open files, sockets, devices or models. */
const FORBIDDEN_FILTERS = new Set([
  'movie',
  'amovie',
  'subtitles',
  'ass',
  'drawtext',
  'sendcmd',
  'asendcmd',
  'zmq',
  'azmq',
  'lut3d',
  'lut1d',
  'haldclutsrc',
  'frei0r',
  'frei0r_src',
  'ladspa',
  'lv2',
  'coreimage',
  'coreimagesrc',
  'ocr',
  'dnn_processing',
  'dnn_classify',
  'dnn_detect',
  'sr',
  'derain',
  'dnn_dehaze',
  'libvmaf',
  'vmafmotion',
  'vidstabdetect',
  'vidstabtransform',
  'signature',
  'psnr',
  'ssim',
  'metadata',
  'ametadata',
  'cover_rect',
  'find_rect',
  'removelogo',
  'photosensitivity',
  'bs2b',
  'sofalizer',
  'headphone',
  'afir',
  'arnndn',
  'asr',
  'whisper',
  'openclsrc',
  'program_opencl',
  'lensfun',
  'qrencodesrc',
  'qrencode',
]);

/** Options whose value is a filter graph (matched on the option without its stream specifier). */
const FILTER_OPTIONS = new Set(['-vf', '-af', '-lavfi', '-filter_complex', '-filter']);
/** Filter option names whose value is a file, a command or a model. */
const FILE_KEYS = new Set([
  'filename',
  'file',
  'textfile',
  'fontfile',
  'stats_file',
  'model',
  'model_path',
  'result',
  'input',
  'f',
  'cmd',
  'commands',
  'path',
  'log_path',
  'log_fmt_file',
  'sofa',
  'bitmap',
]);
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

export function isUrlInput(v: string): boolean {
  return /^https?:\/\/[^\s]+$/i.test(v) || /^s3:\/\/[a-z0-9.-]{3,63}\/\S+$/.test(v);
}

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

function checkValue(field: string, value: string): FieldError[] {
  const errors: FieldError[] = [];
  if (value.length > MAX_FFMPEG_ARG_LENGTH) errors.push({ field, message: `is longer than ${MAX_FFMPEG_ARG_LENGTH}` });
  for (const message of pathProblems(value)) errors.push({ field, message });
  return errors;
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
    const name = (f.name.split('@')[0] ?? '').trim().toLowerCase();
    if (!/^[a-z0-9_]+$/.test(name)) add(`"${f.name}" is not a filter name`);
    if (FORBIDDEN_FILTERS.has(name)) add(`filter "${name}" is not allowed (it opens files or devices)`);
    for (const arg of f.args) {
      const eq = arg.indexOf('=');
      const key = eq > 0 && /^[A-Za-z0-9_-]+$/.test(arg.slice(0, eq)) ? arg.slice(0, eq).toLowerCase() : undefined;
      const value = key !== undefined ? arg.slice(eq + 1) : arg;
      if (key !== undefined && FILE_KEYS.has(key)) add(`filter "${name}" may not be given a file argument (${key})`);
      // The value as the filter will read it after its own unescaping.
      const unescaped = avGetToken(value, 0, '').token;
      for (const problem of pathProblems(unescaped)) add(`filter "${name}": ${problem}`);
    }
  }
  return errors;
}

/** Validates `ffmpeg` input: declared names, and argv that names only them. */
export function validateFfmpegInput(input: unknown): FieldError[] {
  if (!isPlainObject(input)) return [{ field: 'input', message: 'must be an object' }];
  const errors: FieldError[] = unknownKeys(input, ['args', 'inputs', 'outputs'], 'input.');
  const { args, inputs, outputs } = input;

  const inputNames = new Set<string>();
  if (!isPlainObject(inputs)) {
    errors.push({ field: 'input.inputs', message: 'must be an object of file name → http(s):// or s3:// URL' });
  } else {
    const entries = Object.entries(inputs);
    if (entries.length > 64) errors.push({ field: 'input.inputs', message: 'may declare at most 64 files' });
    for (const [name, url] of entries) {
      if (!SAFE_FILE_NAME.test(name))
        errors.push({ field: `input.inputs.${name}`, message: 'is not a safe file name' });
      if (typeof url !== 'string' || !isUrlInput(url) || url.length > 4096) {
        errors.push({ field: `input.inputs.${name}`, message: 'must be an http(s):// or s3://bucket/key URL' });
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
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    const field = `input.args[${i}]`;
    if (arg.startsWith('-') && !NEGATIVE_NUMBER.test(arg) && arg.length > 1) {
      const option = arg.split(':')[0] ?? arg;
      if (arg.startsWith('--') || arg.startsWith('-/')) {
        // `--` ends ffmpeg's options (what follows is read as file names); `-/opt` reads the value from a file.
        errors.push({ field, message: `option ${arg} is not allowed` });
        continue;
      }
      if (FORBIDDEN_OPTIONS.has(option) || FORBIDDEN_OPTIONS.has(arg)) {
        errors.push({ field, message: `option ${arg} is not allowed` });
        continue;
      }
      if (FLAGS.has(arg)) continue;
      const value = argv[i + 1];
      const vField = `input.args[${i + 1}]`;
      if (value === undefined) {
        errors.push({ field, message: `option ${arg} needs a value` });
        continue;
      }
      i++;
      if (LOOKS_LIKE_OPTION.test(value)) {
        errors.push({
          field: vField,
          message: `"${value}" looks like an option, but ${arg} takes a value (options without a value must be known to Gantry)`,
        });
        continue;
      }
      if (arg === '-i') {
        if (!inputNames.has(value))
          errors.push({ field: vField, message: `-i must name a declared input, not "${value}"` });
        continue;
      }
      if (option === '-f' && FORBIDDEN_FORMATS.has(value.toLowerCase())) {
        errors.push({ field: vField, message: `format "${value}" is not allowed` });
        continue;
      }
      if (FILTER_OPTIONS.has(option)) {
        errors.push(...checkFilterGraph(vField, value));
        continue;
      }
      errors.push(...checkValue(vField, value));
      continue;
    }
    // A positional argument is an output file.
    if (!outputNames.has(arg)) {
      errors.push({ field, message: `"${arg}" is neither an option nor a declared output` });
    } else {
      usedOutputs.add(arg);
    }
  }
  for (const o of outputNames) {
    if (!usedOutputs.has(o))
      errors.push({ field: 'input.outputs', message: `output "${o}" is declared but not written by args` });
  }
  if (!argv.includes('-i'))
    errors.push({ field: 'input.args', message: 'must read at least one declared input with -i' });
  return errors;
}

export const ffmpegJobType: JobTypeDefinition = {
  name: 'ffmpeg',
  kind: 'builtin',
  validate: validateFfmpegInput,
  inputUrls: (input) =>
    isPlainObject(input) && isPlainObject(input['inputs'])
      ? Object.entries(input['inputs'])
          .filter((e): e is [string, string] => typeof e[1] === 'string' && /^https?:/i.test(e[1]))
          .map(([name, url]): [string, string] => [`input.inputs.${name}`, url])
      : [],
  outputCount: (input) =>
    isPlainObject(input) && Array.isArray(input['outputs']) ? (input['outputs'] as unknown[]).length : 0,
};
