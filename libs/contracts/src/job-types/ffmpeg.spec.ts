import {
  avGetToken,
  ffmpegJobType,
  OUTPUT_EXTENSIONS,
  parseFilterGraph,
  tokenizeFfmpegArgs,
  validateFfmpegInput,
} from './ffmpeg';
import { JobTypeRegistry } from './registry';

const URL_IN = 'https://media.example.com/in.mp4';

function job(args: string[], extra: { inputs?: Record<string, string>; outputs?: string[] } = {}) {
  return {
    args,
    inputs: extra.inputs ?? { 'in.mp4': URL_IN },
    outputs: extra.outputs ?? ['out.mp4'],
  };
}

/** Errors for argv that reads in.mp4 and writes out.mp4 around `middle`. */
function errorsFor(middle: string[], extra?: Parameters<typeof job>[1]) {
  return validateFfmpegInput(job(['-i', 'in.mp4', ...middle, 'out.mp4'], extra));
}

describe('validateFfmpegInput accepts ordinary transcodes', () => {
  it.each([
    [['-vf', 'scale=320:-2']],
    [['-c:v', 'libx264', '-preset', 'veryfast', '-crf', '23', '-c:a', 'aac', '-b:a', '128k']],
    [['-ss', '00:00:01.5', '-t', '2', '-an']],
    [['-map', '0:v:0', '-map', '0:a?', '-map', '-0:s']],
    [['-vf', "scale='min(1280,iw)':-2,fps=30"]],
    [['-filter_complex', '[0:v]split=2[a][b];[a]scale=320:-2[a1];[b]hflip[b1];[a1][b1]hstack', '-an']],
    [['-force_key_frames', 'expr:gte(t,n_forced*2)']],
    [['-metadata', 'title=My clip: part 1', '-metadata:s:a:0', 'language=eng']],
    [['-movflags', '+faststart', '-pix_fmt', 'yuv420p', '-nostdin', '-noautorotate']],
    [['-af', 'volume=-3dB,aresample=48000']],
    [['-vf', "drawbox=x=10:y=10:w=100:h=50:color=red@0.5,select='eq(n\\,0)'"]],
    [['-frames:v', '1', '-update', '1']],
  ])('%j', (middle) => {
    expect(errorsFor(middle)).toEqual([]);
  });

  it('accepts several inputs and outputs', () => {
    expect(
      validateFfmpegInput({
        args: ['-i', 'a.mp4', '-i', 'b.wav', '-map', '0:v', '-map', '1:a', '-shortest', 'out.mp4', '-vn', 'out.m4a'],
        inputs: { 'a.mp4': URL_IN, 'b.wav': 's3://bucket-1/audio/b.wav' },
        outputs: ['out.mp4', 'out.m4a'],
      }),
    ).toEqual([]);
  });
});

describe('validateFfmpegInput refuses what could reach outside the scratch directory', () => {
  const refused: [string, string[], RegExp][] = [
    ['an absolute input path', ['-i', '/etc/passwd'], /declared input/],
    ['an undeclared input', ['-i', 'other.mp4'], /declared input/],
    ['a file: input', ['-i', 'file:in.mp4'], /declared input/],
    ['an http input in argv', ['-i', 'http://169.254.169.254/latest'], /declared input/],
    ['a concat: input', ['-i', 'concat:in.mp4|in.mp4'], /declared input/],
    ['lavfi as a format', ['-f', 'lavfi', '-i', 'in.mp4'], /format "lavfi" is not allowed/],
    ['concat as a format', ['-f', 'concat', '-i', 'in.mp4'], /format "concat"/],
    ['a capture device format', ['-f', 'v4l2', '-i', 'in.mp4'], /format "v4l2"/],
    ['tee output', ['-f', 'tee'], /format "tee"/],
    ['movie= in -vf', ['-vf', 'movie=in.mp4'], /filter "movie" is not allowed/],
    ['amovie in -filter_complex', ['-filter_complex', 'amovie=x.wav[a]'], /filter "amovie"/],
    ['a quoted movie name', ['-vf', "m'ovie'=x.mp4"], /filter "movie" is not allowed/],
    ['an escaped movie name', ['-vf', 'm\\ovie=x.mp4'], /filter "movie" is not allowed/],
    ['an instance-named movie', ['-lavfi', 'movie@m1=x.mp4'], /filter "movie@m1" is not allowed/],
    ['movie behind a stream specifier', ['-filter:v:0', 'movie=x.mp4'], /filter "movie"/],
    ['subtitles (opens a file)', ['-vf', 'subtitles=in.srt'], /filter "subtitles"/],
    ['drawtext with a font file', ['-vf', 'drawtext=fontfile=/usr/share/fonts/x.ttf:text=hi'], /drawtext/],
    ['a file key', ['-vf', 'lut3d=file=cube.cube'], /lut3d/],
    ['a twice-escaped URL in a filter', ['-vf', 'scale=w=http\\\\://169.254.169.254/'], /protocol/],
    ['a quoted URL in a filter', ['-vf', "scale=w='http\\://169.254.169.254/'"], /protocol/],
    ['an absolute path in a filter', ['-vf', "scale='/etc/passwd'"], /absolute path/],
    ['.. in a filter', ['-vf', 'scale=../x'], /\.\./],
    ['-progress', ['-progress', 'http://evil.example/p'], /-progress is not allowed/],
    ['-report', ['-report'], /-report is not allowed/],
    ['-filter_script', ['-filter_script:v', 'script.txt'], /not allowed/],
    ['-attach', ['-attach', 'in.mp4'], /-attach is not allowed/],
    ['-dump_attachment', ['-dump_attachment:t', 'x.ttf'], /not allowed/],
    ['-protocol_whitelist', ['-protocol_whitelist', 'file,http'], /not allowed/],
    ['-init_hw_device', ['-init_hw_device', 'vaapi=va:/dev/dri/renderD128'], /not allowed/],
    ['-vstats_file', ['-vstats_file', 'stats.log'], /not allowed/],
    ['-passlogfile', ['-passlogfile', 'log'], /not allowed/],
    ['--', ['--', 'x'], /-- is not allowed/],
    ['-/opt (value from a file)', ['-/vf', 'graph.txt'], /not allowed/],
    ['an absolute value', ['-force_key_frames', '/tmp/list.m3u8'], /absolute path/],
    ['a home path', ['-metadata', '~/x'], /absolute path/],
    ['.. in a value', ['-force_key_frames', '../seg%d.ts'], /\.\./],
    ['a protocol value', ['-force_key_frames', 'file:key.info'], /protocol/],
    ['a URL value', ['-metadata', 'https://evil.example/'], /protocol/],
    ['subfile in a value', ['-metadata', 'subfile,,start,0,end,10,,:in.mp4'], /protocol/],
    ['a device path', ['-force_key_frames', '/dev/video0'], /absolute path/],
    ['control characters', ['-metadata', 'title=a\nb'], /control characters/],
    ['an option used as a value', ['-vcodec', '-i'], /looks like an option/],
    ['a stray positional file', ['/etc/shadow'], /neither an option nor a declared output/],
    ['stdout as output', ['-f', 'mp4', '-'], /neither an option nor a declared output/],
    ['a pipe: output', ['pipe:1'], /neither an option nor a declared output/],
    ['an unparsable filter graph', ['-vf', 'scale=1:1[unterminated'], /filter graph/],
  ];
  it.each(refused)('%s', (_what, middle, message) => {
    const errors = errorsFor(middle);
    expect(errors.length).toBeGreaterThan(0);
    expect(errors.map((e) => e.message).join(' | ')).toMatch(message);
    for (const e of errors) expect(e.field).toMatch(/^input\./);
  });

  it('refuses an output that is not written, and one declared also as input', () => {
    expect(validateFfmpegInput(job(['-i', 'in.mp4', 'out.mp4'], { outputs: ['out.mp4', 'b.mp4'] }))).toEqual([
      { field: 'input.outputs', message: 'output "b.mp4" is declared but not written by args' },
    ]);
    expect(validateFfmpegInput(job(['-i', 'in.mp4', 'in.mp4'], { outputs: ['in.mp4'] })).map((e) => e.field)).toContain(
      'input.outputs[0]',
    );
  });

  it('refuses unsafe declared names and non-http(s)/s3 input URLs', () => {
    const errors = validateFfmpegInput({
      args: ['-i', 'in.mp4', 'out.mp4'],
      inputs: { 'in.mp4': 'file:///etc/passwd', '../x': URL_IN, '.hidden': URL_IN, 'ok.mp4': 'ftp://x/y' },
      outputs: ['out.mp4', 'sub/out.mp4'],
    });
    const fields = errors.map((e) => e.field);
    expect(fields).toEqual(
      expect.arrayContaining([
        'input.inputs.in.mp4',
        'input.inputs.../x',
        'input.inputs..hidden',
        'input.inputs.ok.mp4',
        'input.outputs[1]',
      ]),
    );
  });

  it('refuses missing pieces, wrong types and unknown fields', () => {
    expect(validateFfmpegInput('x')).toEqual([{ field: 'input', message: 'must be an object' }]);
    const fields = validateFfmpegInput({ args: [1], inputs: [], outputs: [], extra: true }).map((e) => e.field);
    expect(fields).toEqual(expect.arrayContaining(['input.extra', 'input.inputs', 'input.outputs', 'input.args']));
    expect(validateFfmpegInput(job(['-vf', 'scale=1:1', 'out.mp4'])).map((e) => e.message)).toContain(
      'must read at least one declared input with -i',
    );
    expect(validateFfmpegInput(job(['-i', 'in.mp4', 'out.mp4', '-c:v'])).map((e) => e.message)).toContain(
      'option -c:v needs a value',
    );
    expect(validateFfmpegInput(job(new Array(300).fill('-an')))[0]?.message).toMatch(/1 to 256/);
  });
});

describe('filter graph parsing follows libavfilter quoting', () => {
  it('unescapes tokens like av_get_token', () => {
    expect(avGetToken("  m'ovie'=x", 2, '=,;[')).toEqual({ token: 'movie', next: 9 });
    expect(avGetToken('a\\:b:c', 0, ':').token).toBe('a:b');
    expect(avGetToken("'a b'  ", 0, '').token).toBe('a b');
  });

  it('splits chains, filters, labels and options', () => {
    expect(parseFilterGraph("[0:v]scale=w=320:h='min(240,ih)'[s];[s]hflip,fps=30[out]")).toEqual([
      { name: 'scale', args: ['w=320', 'h=min(240,ih)'] },
      { name: 'hflip', args: [] },
      { name: 'fps', args: ['30'] },
    ]);
    expect(parseFilterGraph('scale=1:1[unterminated')).toBeUndefined();
  });
});

describe('upload.url needs exactly one output', () => {
  const registry = new JobTypeRegistry([ffmpegJobType]);
  it('accepts one output and refuses two', () => {
    expect(registry.validate('ffmpeg', job(['-i', 'in.mp4', 'out.mp4']), { upload: true })).toEqual([]);
    const two = job(['-i', 'in.mp4', 'a.mp4', 'b.mp4'], { outputs: ['a.mp4', 'b.mp4'] });
    expect(registry.validate('ffmpeg', two)).toEqual([]);
    expect(registry.validate('ffmpeg', two, { upload: true })).toEqual([
      { field: 'upload.url', message: 'needs a job that writes exactly one output (this ffmpeg job writes 2)' },
    ]);
  });

  it('lists the http(s) and s3:// inputs for the submit-time checks', () => {
    expect(ffmpegJobType.inputUrls?.({ inputs: { 'a.mp4': URL_IN, 'b.mp4': 's3://bucket-1/b.mp4' } })).toEqual([
      ['input.inputs.a.mp4', URL_IN],
      ['input.inputs.b.mp4', 's3://bucket-1/b.mp4'],
    ]);
  });
});

describe('the ffmpeg allowlist', () => {
  /** [what, args between `-i in.mp4` and the output, declared output, expected message]. */
  const refused: [string, string[], string, RegExp][] = [
    // Demuxer private options: mov reads any absolute path through its data references.
    ['mov -enable_drefs', ['-enable_drefs', '1'], 'out.mp4', /option -enable_drefs is not allowed/],
    ['mov -use_absolute_path', ['-use_absolute_path', '1'], 'out.mp4', /option -use_absolute_path is not allowed/],
    ['any other demuxer option', ['-allowed_extensions', 'ALL'], 'out.mp4', /option -allowed_extensions/],
    // Encoder parameter strings: keys that write or read files.
    ['x264-params stats=', ['-x264-params', 'stats=x264.log'], 'out.mp4', /-x264-params key "stats" is not allowed/],
    ['x264-params after allowed keys', ['-x264-params', 'keyint=60:qpfile=q.txt'], 'out.mp4', /key "qpfile"/],
    ['x264-params quoted key', ['-x264-params', "keyint=60:'st'ats=x.log"], 'out.mp4', /key "stats"/],
    ['x264-params escaped key', ['-x264-params', 'st\\ats=x.log'], 'out.mp4', /key "stats"/],
    ['x264-params underscore key', ['-x264-params', 'tcfile_in=t.txt'], 'out.mp4', /key "tcfile_in"/],
    ['x264opts', ['-x264opts', 'dump-yuv=y.yuv'], 'out.mp4', /-x264opts key "dump-yuv"/],
    ['x265-params csv=', ['-x265-params', 'csv=x.csv'], 'out.mp4', /-x265-params key "csv" is not allowed/],
    ['x265-params analysis-save', ['-x265-params', 'analysis-save=a.dat'], 'out.mp4', /key "analysis-save"/],
    ['x265-params zonefile', ['-x265-params', 'crf=20:zonefile=z.txt'], 'out.mp4', /key "zonefile"/],
    ['svtav1-params stats', ['-svtav1-params', 'stats=s.log'], 'out.mp4', /-svtav1-params key "stats"/],
    ['svtav1-params fgs-table', ['-svtav1-params', 'fgs-table=f.tbl'], 'out.mp4', /key "fgs-table"/],
    ['an allowed key naming a path', ['-x264-params', 'keyint=/etc/passwd'], 'out.mp4', /key "keyint" has a value/],
    ['an allowed key naming a URL', ['-x265-params', 'crf=http\\://x/'], 'out.mp4', /key "crf" has a value/],
    ['an unknown parameter-string option', ['-kvazaar-params', 'x=1'], 'out.mp4', /option -kvazaar-params/],
    ['an -*-opts option', ['-hls_segment_options', 'a=1'], 'out.mp4', /option -hls_segment_options/],
    // Outputs whose extension selects a muxer that opens other files or URLs.
    ['an HLS output', [], 'out.m3u8', /outputs\[0\]|allowed extension/],
    ['a DASH output', [], 'out.mpd', /allowed extension/],
    ['a Smooth Streaming output', [], 'out.ism', /allowed extension/],
    ['an SDP output', [], 'out.sdp', /allowed extension/],
    ['an output without extension', [], 'out', /allowed extension/],
    ['hls_key_info_file', ['-hls_key_info_file', 'key.info'], 'out.mp4', /option -hls_key_info_file is not allowed/],
    ['-f hls', ['-f', 'hls'], 'out.mp4', /format "hls" is not allowed/],
    ['-f dash', ['-f', 'dash'], 'out.mp4', /format "dash" is not allowed/],
    ['-f image2 (sequences)', ['-f', 'image2'], 'out.jpg', /format "image2" is not allowed/],
    ['-f segment', ['-f', 'segment'], 'out.mp4', /format "segment"/],
    ['-f null', ['-f', 'null'], 'out.mp4', /format "null"/],
    ['-f with uppercase', ['-f', 'MP4'], 'out.mp4', /format "MP4"/],
    // Filters that open files, and options that do on allowed filters.
    ['movie=', ['-vf', 'movie=in.mp4'], 'out.mp4', /filter "movie" is not allowed/],
    ['amovie=', ['-af', 'amovie=in.mp4'], 'out.mp4', /filter "amovie" is not allowed/],
    ['subtitles=file', ['-vf', 'subtitles=filename=in.srt'], 'out.mp4', /filter "subtitles" is not allowed/],
    ['drawtext', ['-vf', 'drawtext=text=hi'], 'out.mp4', /filter "drawtext" is not allowed/],
    ['sendcmd', ['-vf', 'sendcmd=c=0 scale w 1,scale'], 'out.mp4', /filter "sendcmd" is not allowed/],
    ['curves psfile', ['-vf', 'curves=psfile=x.acv'], 'out.mp4', /filter "curves" is not allowed/],
    ['an unknown filter', ['-vf', 'zmq'], 'out.mp4', /filter "zmq" is not allowed/],
    ['a filter name in another case', ['-vf', 'Scale=1:1'], 'out.mp4', /filter "Scale" is not allowed/],
    ['paletteuse debug_kdtree', ['-lavfi', 'paletteuse=debug_kdtree=k.dot'], 'out.gif', /option debug_kdtree/],
    ['paletteuse 6th positional', ['-lavfi', 'paletteuse=bayer:2:rectangle:0:128:k.dot'], 'out.gif', /at most 5/],
    ['a file key on an open filter', ['-vf', 'scale=w=1:filename=x'], 'out.mp4', /option filename/],
    // Options that name files, URLs or devices.
    ['-attach', ['-attach', 'in.mp4'], 'out.mkv', /option -attach is not allowed/],
    ['-dump_attachment', ['-dump_attachment:t:0', 'x.ttf'], 'out.mp4', /option -dump_attachment:t:0 is not allowed/],
    ['-protocol_opts', ['-protocol_opts', 'a=b'], 'out.mp4', /option -protocol_opts/],
    ['-headers', ['-headers', 'X: y'], 'out.mp4', /option -headers/],
    ['-stats_enc_pre', ['-stats_enc_pre', 's.log'], 'out.mp4', /option -stats_enc_pre/],
    ['-fpre', ['-fpre', 'p.ffpreset'], 'out.mp4', /option -fpre/],
    ['-sdp_file', ['-sdp_file', 's.sdp'], 'out.mp4', /option -sdp_file/],
    ['-filter_hw_device', ['-filter_hw_device', 'cu'], 'out.mp4', /option -filter_hw_device/],
    ['a codec outside the list', ['-c:v', 'h264_vaapi'], 'out.mp4', /codec "h264_vaapi" is not allowed/],
    ['an hwaccel that opens a device', ['-hwaccel', 'vaapi'], 'out.mp4', /hwaccel "vaapi" is not allowed/],
    ['a malformed bit rate', ['-b:v', '2M;x'], 'out.mp4', /-b:v: must be a bit rate/],
    ['a malformed time', ['-ss', 'soon'], 'out.mp4', /-ss: must be a time/],
    ['an unknown option and its value', ['-frobnicate', 'x'], 'out.mp4', /option -frobnicate is not allowed/],
  ];
  it.each(refused)('refuses %s', (_what, middle, output, message) => {
    const errors = validateFfmpegInput(job(['-i', 'in.mp4', ...middle, output], { outputs: [output] }));
    expect(errors.length).toBeGreaterThan(0);
    expect(errors.map((e) => e.message).join(' | ')).toMatch(message);
    for (const e of errors) expect(e.field).toMatch(/^input\./);
  });

  it('names the option in the field and message', () => {
    expect(errorsFor(['-enable_drefs', '1'])).toEqual([
      {
        field: 'input.args[2]',
        message: "option -enable_drefs is not allowed (not in Gantry's ffmpeg allowlist, see docs/job-types.md)",
      },
    ]);
  });

  /** The boundaries: forms right next to a refused one that stay allowed. */
  const allowed: [string, string[], string][] = [
    [
      'x264-params of rate control',
      ['-c:v', 'libx264', '-x264-params', 'keyint=60:min-keyint=30:no-scenecut=1'],
      'out.mp4',
    ],
    ['x264-params no-prefixed keys', ['-x264-params', 'nombtree=1:no_8x8dct=1'], 'out.mp4'],
    ['x265-params', ['-c:v', 'libx265', '-x265-params', 'crf=28:log-level=error:hdr10-opt=1'], 'out.mkv'],
    ['svtav1-params', ['-c:v', 'libsvtav1', '-svtav1-params', 'tune=0:film-grain=8'], 'out.webm'],
    [
      'NVENC',
      [
        '-hwaccel',
        'cuda',
        '-hwaccel_output_format',
        'cuda',
        '-c:v',
        'h264_nvenc',
        '-preset',
        'p5',
        '-rc',
        'vbr',
        '-cq',
        '23',
        '-b:v',
        '0',
      ],
      'out.mp4',
    ],
    ['a CUDA filter chain', ['-vf', 'scale_cuda=1280:720,hwdownload,format=nv12'], 'out.mp4'],
    ['a thumbnail', ['-vf', 'thumbnail,scale=320:-2', '-frames:v', '1', '-update', '1'], 'thumb.jpg'],
    ['a PNG still', ['-ss', '1', '-frames:v', '1'], 'still.png'],
    ['an audio extract to m4a', ['-vn', '-c:a', 'aac', '-b:a', '192k'], 'audio.m4a'],
    ['an audio extract to mp3', ['-vn', '-c:a', 'libmp3lame', '-q:a', '2'], 'audio.mp3'],
    ['wav at 16 kHz mono', ['-vn', '-ac', '1', '-ar', '16000', '-c:a', 'pcm_s16le'], 'speech.wav'],
    [
      'paletteuse with its safe options',
      ['-lavfi', 'split[a][b];[a]palettegen[p];[b][p]paletteuse=dither=bayer:bayer_scale=3'],
      'anim.gif',
    ],
    [
      'paletteuse with 5 positional options',
      ['-lavfi', 'split[a][b];[a]palettegen[p];[b][p]paletteuse=bayer:2:rectangle:0:128'],
      'anim.gif',
    ],
    ['an MPEG-TS output', ['-c', 'copy', '-f', 'mpegts'], 'out.ts'],
    [
      'stream copy with a stream map',
      ['-map', '0', '-c', 'copy', '-map_metadata', '-1', '-movflags', '+faststart'],
      'out.mov',
    ],
    ['subtitles as a codec', ['-c:s', 'mov_text'], 'out.mp4'],
    ['an uppercase extension', [], 'OUT.MP4'],
  ];
  it.each(allowed)('accepts %s', (_what, middle, output) => {
    expect(validateFfmpegInput(job(['-i', 'in.mp4', ...middle, output], { outputs: [output] }))).toEqual([]);
  });

  it('accepts every documented output extension', () => {
    for (const ext of Object.keys(OUTPUT_EXTENSIONS)) {
      expect(validateFfmpegInput(job(['-i', 'in.mp4', `out.${ext}`], { outputs: [`out.${ext}`] }))).toEqual([]);
    }
  });

  it('accepts the transcodes the repo’s tests and docs submit', () => {
    const runs: [string[], Record<string, string>, string[]][] = [
      [['-i', 'in.mp4', '-vf', 'scale=320:-2', '-c:v', 'libx264', 'out.mp4'], { 'in.mp4': URL_IN }, ['out.mp4']],
      [
        ['-re', '-i', 'a.mp4', '-i', 'b.mp4', '-filter_complex', '[0:v][1:v]hstack', '-c:v', 'libx264', 'out.mp4'],
        { 'a.mp4': URL_IN, 'b.mp4': URL_IN },
        ['out.mp4'],
      ],
      [
        [
          '-i',
          'a.mp4',
          '-i',
          'b.mp4',
          '-map',
          '0:v',
          '-map',
          '1:a',
          '-vf',
          'scale=160:-2',
          '-c:v',
          'libx264',
          'out.mp4',
        ],
        { 'a.mp4': URL_IN, 'b.mp4': URL_IN },
        ['out.mp4'],
      ],
      [['-i', 'in.mp4', '-t', '1', '-c', 'copy', 'out.mp4'], { 'in.mp4': URL_IN }, ['out.mp4']],
      [['-i', 'in.mp4', 'a.mp4', 'b.mp4'], { 'in.mp4': URL_IN }, ['a.mp4', 'b.mp4']],
    ];
    for (const [args, inputs, outputs] of runs) expect(validateFfmpegInput({ args, inputs, outputs })).toEqual([]);
  });

  it('tokenizes argv with the allowlist’s arities (outputs are where ffmpeg will see them)', () => {
    const argv = ['-re', '-i', 'in.mp4', '-an', '-c:v', 'libx264', 'a.mp4', '-map', '-0:s', 'b.mp4'];
    const outputs = tokenizeFfmpegArgs(argv)
      .filter((t) => t.kind === 'output')
      .map((t) => argv[t.index]);
    expect(outputs).toEqual(['a.mp4', 'b.mp4']);
  });
});
