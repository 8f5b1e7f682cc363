import { Writable } from 'node:stream';
import pino from 'pino';
import { NestPinoLogger } from './logger';
import { prettyLogLine } from './pretty';

const LINE = JSON.stringify({
  level: 'info',
  time: '2026-12-02T11:22:24.960Z',
  service: 'gateway',
  pid: 4242,
  url: 'http://127.0.0.1:8080',
  msg: 'gateway listening',
});

describe('readable log lines', () => {
  it('turns a JSON record into one line with time, level, message and fields', () => {
    const out = prettyLogLine({ colorize: false })(LINE);
    expect(out).not.toContain('\n');
    expect(out).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: gateway listening /);
    expect(out).toContain('"url":"http://127.0.0.1:8080"');
    expect(out).not.toContain('4242');
  });

  it('colours it on a terminal and names the Nest context', () => {
    const line = JSON.stringify({ level: 'warn', time: '2026-12-02T11:22:24.960Z', context: 'Jobs', msg: 'slow' });
    const out = prettyLogLine({ colorize: true })(line);
    expect(out).toContain('\x1b[');
    expect(out).toContain('Jobs: slow');
  });

  it('keeps an error and a message with line breaks on the one line', () => {
    const pretty = prettyLogLine({ colorize: true });
    const withErr = JSON.stringify({
      level: 'warn',
      time: '2026-12-02T11:22:24.960Z',
      err: 'ExecaError: Command failed with ENOENT: nvidia-smi\nspawn nvidia-smi ENOENT',
      msg: 'no GPU found',
    });
    const out = pretty(withErr);
    expect(out).not.toContain('\n');
    expect(out).toContain('no GPU found');
    expect(out).toContain('spawn nvidia-smi ENOENT');
    const stack = JSON.stringify({
      level: 'error',
      time: '2026-12-02T11:22:24.960Z',
      err: { type: 'Error', message: 'boom', stack: 'Error: boom\n    at x (y.js:1:1)' },
      msg: 'first line\nsecond line',
    });
    const one = pretty(stack);
    expect(one).not.toContain('\n');
    expect(one).toContain('first line\\nsecond line');
    expect(one).toContain('boom');
  });

  it('leaves lines that are not pino JSON alone', () => {
    const pretty = prettyLogLine({ colorize: false });
    expect(pretty('plain text from a child')).toBe('plain text from a child');
    expect(pretty('{not json')).toBe('{not json');
    expect(pretty('{"no":"message"}')).toBe('{"no":"message"}');
  });
});

describe("Nest's framework lines", () => {
  function capture(level: pino.LevelWithSilent) {
    const lines: Record<string, unknown>[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
        done();
      },
    });
    return { logger: new NestPinoLogger(pino({ level }, sink)), lines };
  }

  it('keeps route mapping and module loading out of info, and shows them at debug', () => {
    const info = capture('info');
    info.logger.log('Mapped {/v1/jobs, POST} route', 'RouterExplorer');
    info.logger.log('GatewayModule dependencies initialized', 'InstanceLoader');
    info.logger.log('Nest application successfully started', 'NestApplication');
    info.logger.log('a line of our own', 'JobsService');
    expect(info.lines.map((l) => l['msg'])).toEqual(['a line of our own']);

    const debug = capture('debug');
    debug.logger.log('Mapped {/v1/jobs, POST} route', 'RouterExplorer');
    expect(debug.lines).toHaveLength(1);
    expect(debug.lines[0]).toMatchObject({ level: 20, context: 'RouterExplorer' });
  });
});
