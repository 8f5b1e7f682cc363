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

/** Options that take no value (everything else starting with `-` takes exactly one). */
const FLAGS = new Set([
  '-y',
  '-n',
  '-nostdin',
  '-stdin',
  '-an',
  '-vn',
  '-sn',
  '-dn',
  '-shortest',
  '-hide_banner',
  '-copyts',
  '-start_at_zero',
  '-nostats',
  '-stats',
  '-re',
  '-ignore_unknown',
  '-copy_unknown',
  '-xerror',
  '-benchmark',
  '-benchmark_all',
  '-accurate_seek',
  '-noaccurate_seek',
  '-autorotate',
  '-noautorotate',
  '-autoscale',
  '-noautoscale',
  '-apad',
  '-reinit_filter',
  '-dump',
  '-hex',
  '-debug_ts',
]);

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

const FILTER_OPTIONS = /^-(vf|af|lavfi|filter_complex|filter)(:[a-z0-9]+)?$/;
/** Filter arguments whose value is a file name. */
const FILE_KEYS =
  /(^|[:=])(filename|file|textfile|fontfile|stats_file|model|model_path|result|input|f|cmd|path|log_path|log_fmt_file)=/i;
const PROTOCOL = /^[A-Za-z][A-Za-z0-9+.-]*:/;
const NEGATIVE_NUMBER = /^-\d/;

export function isUrlInput(v: string): boolean {
  return /^https?:\/\/[^\s]+$/i.test(v) || /^s3:\/\/[a-z0-9.-]{3,63}\/\S+$/.test(v);
}

function checkValue(field: string, value: string): FieldError[] {
  const errors: FieldError[] = [];
  if (value.length > MAX_FFMPEG_ARG_LENGTH) errors.push({ field, message: `is longer than ${MAX_FFMPEG_ARG_LENGTH}` });
  if (value.startsWith('/') || value.startsWith('~')) errors.push({ field, message: 'may not name an absolute path' });
  if (/(^|[^A-Za-z0-9_])\.\.([^A-Za-z0-9_]|$)/.test(value)) errors.push({ field, message: 'may not contain ..' });
  if (PROTOCOL.test(value) && !/^[A-Za-z0-9_]+:[-\d]/.test(value)) {
    errors.push({ field, message: 'may not name a protocol or device (only declared files are allowed)' });
  }
  if (/[\u0000-\u001f]/.test(value)) errors.push({ field, message: 'may not contain control characters' });
  return errors;
}

function checkFilterGraph(field: string, graph: string): FieldError[] {
  const errors: FieldError[] = [];
  // A filter graph is a list of chains (;) of filters (,), each `[in]name=args[out]`.
  for (const raw of graph.split(/[;,]/)) {
    const filter = raw.replace(/\[[^\]]*\]/g, '').trim();
    if (!filter) continue;
    const name = (filter.split('=')[0] ?? '').trim().split('@')[0]?.toLowerCase() ?? '';
    if (FORBIDDEN_FILTERS.has(name))
      errors.push({ field, message: `filter "${name}" is not allowed (it opens files or devices)` });
    if (FILE_KEYS.test(filter)) errors.push({ field, message: `filter "${name}" may not be given a file argument` });
  }
  if (/(^|[=:'"])\//.test(graph)) errors.push({ field, message: 'may not name an absolute path' });
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
      if (arg === '-i') {
        if (!inputNames.has(value))
          errors.push({ field: vField, message: `-i must name a declared input, not "${value}"` });
        continue;
      }
      if (option === '-f' && FORBIDDEN_FORMATS.has(value.toLowerCase())) {
        errors.push({ field: vField, message: `format "${value}" is not allowed` });
        continue;
      }
      if (FILTER_OPTIONS.test(arg)) {
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
};
