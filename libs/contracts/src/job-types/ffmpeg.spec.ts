import { avGetToken, ffmpegJobType, parseFilterGraph, validateFfmpegInput } from './ffmpeg';
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
    ['an instance-named movie', ['-lavfi', 'movie@m1=x.mp4'], /filter "movie"/],
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
    ['an absolute value', ['-segment_list', '/tmp/list.m3u8'], /absolute path/],
    ['a home path', ['-passlog', '~/x'], /absolute path/],
    ['.. in a value', ['-hls_segment_filename', '../seg%d.ts'], /\.\./],
    ['a protocol value', ['-hls_key_info_file', 'file:key.info'], /protocol/],
    ['a URL value', ['-method', 'https://evil.example/'], /protocol/],
    ['subfile in a value', ['-x', 'subfile,,start,0,end,10,,:in.mp4'], /protocol/],
    ['a device path', ['-x', '/dev/video0'], /absolute path/],
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

  it('lists the http(s) inputs for the submit-time address check', () => {
    expect(ffmpegJobType.inputUrls?.({ inputs: { 'a.mp4': URL_IN, 'b.mp4': 's3://bucket-1/b.mp4' } })).toEqual([
      ['input.inputs.a.mp4', URL_IN],
    ]);
  });
});
