/**
 * Real service processes for end-to-end tests: the built apps (`apps/<name>/dist/main.js`) started with Node, their
 * JSON log lines captured, killable with any signal (SIGKILL included) and restartable.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { waitFor, within, type WaitOptions } from './wait';

export type ServiceName = 'gateway' | 'scheduler' | 'gpu-worker' | 'notifier';

/** The repository root (where the root package.json is named "gantry"). */
export function repoRoot(from = __dirname): string {
  let dir = resolve(from);
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'gantry') return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error('repository root not found');
    dir = up;
  }
}

export interface LogLine {
  [key: string]: unknown;
  msg?: string;
  level?: string;
}

export class ServiceProcess {
  private proc: ChildProcess | undefined;
  readonly lines: LogLine[] = [];
  readonly raw: string[] = [];
  private exitPromise: Promise<number | null> = Promise.resolve(null);

  constructor(
    readonly name: ServiceName,
    private env: Record<string, string>,
    private readonly options: {
      echo?: boolean;
      /** Options for Node itself, before the script (e.g. `--cpu-prof`, which NODE_OPTIONS may not carry). */
      nodeArgs?: readonly string[];
    } = {},
  ) {}

  /** The environment the process was (or will next be) started with, the cluster's base environment included. */
  get environment(): Readonly<Record<string, string>> {
    return this.env;
  }

  get pid(): number | undefined {
    return this.proc?.pid;
  }

  get running(): boolean {
    return !!this.proc && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  start(extraEnv: Record<string, string> = {}): this {
    this.env = { ...this.env, ...extraEnv };
    const main = join(repoRoot(), 'apps', this.name, 'dist', 'main.js');
    if (!existsSync(main)) throw new Error(`${main} is missing: run npm run build first`);
    const proc = spawn(process.execPath, [...(this.options.nodeArgs ?? []), main], {
      env: { PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? '/tmp', LOG_LEVEL: 'info', ...this.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.proc = proc;
    const onData = (buf: Buffer) => {
      for (const line of buf.toString().split('\n')) {
        if (!line.trim()) continue;
        this.raw.push(line);
        if (this.options.echo || process.env['GANTRY_TEST_ECHO']) process.stderr.write(`[${this.name}] ${line}\n`);
        try {
          this.lines.push(JSON.parse(line) as LogLine);
        } catch {
          this.lines.push({ msg: line });
        }
      }
    };
    proc.stdout?.on('data', onData);
    proc.stderr?.on('data', onData);
    this.exitPromise = new Promise((r) => proc.once('exit', (code) => r(code)));
    return this;
  }

  async waitForLog(predicate: (l: LogLine) => boolean, o: WaitOptions = {}): Promise<LogLine> {
    return waitFor(() => this.lines.find(predicate), { what: `a ${this.name} log line`, timeoutMs: 20_000, ...o });
  }

  /** Waits until GET url answers 200. */
  async waitForHttp(url: string, o: WaitOptions = {}): Promise<void> {
    await waitFor(
      async () => {
        if (!this.running) throw new Error(`${this.name} exited: ${this.raw.slice(-5).join('\n')}`);
        const r = await fetch(url).catch(() => undefined);
        return r?.status === 200;
      },
      { what: `${url} to answer 200`, timeoutMs: 30_000, intervalMs: 100, ...o },
    );
  }

  /** Sends a signal and waits for the exit code (SIGKILL = `kill -9`). */
  async kill(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 30_000): Promise<number | null> {
    if (!this.running) return this.proc?.exitCode ?? null;
    this.proc?.kill(signal);
    return within(this.exitPromise, timeoutMs, `${this.name} exit after ${signal}`);
  }

  /** Sends a signal without waiting (SIGSTOP/SIGCONT for zombie tests). */
  signal(signal: NodeJS.Signals): void {
    this.proc?.kill(signal);
  }

  exited(): Promise<number | null> {
    return this.exitPromise;
  }

  tail(n = 20): string {
    return this.raw.slice(-n).join('\n');
  }
}
