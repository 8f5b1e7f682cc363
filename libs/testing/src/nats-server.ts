/**
 * A real `nats-server -js` for tests and local runs: loopback only, a random port, its own store directory.
 * It can be stopped, killed (`kill -9`) and restarted on the same port and store to test durability.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, accessSync, constants, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { freePort } from './ports';
import { within } from './wait';

export function natsServerBinary(): string {
  const fromEnv = process.env['NATS_SERVER_BIN'];
  if (fromEnv) return fromEnv;
  const dirs = [...(process.env['PATH'] ?? '').split(delimiter), '/usr/sbin', '/usr/local/sbin', '/usr/local/bin'];
  for (const d of dirs) {
    const p = join(d, 'nats-server');
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      /* not here */
    }
  }
  throw new Error('nats-server not found: install it (Debian: apt-get install nats-server) or set NATS_SERVER_BIN');
}

/** The version of a nats-server binary (`nats-server --version` → `2.9.10`). */
export function natsServerVersion(bin = natsServerBinary()): string {
  const out = execFileSync(bin, ['--version'], { encoding: 'utf8' });
  const m = /v?(\d+\.\d+\.\d+[-\w.]*)/.exec(out);
  if (!m) throw new Error(`cannot read the version of ${bin}: ${out}`);
  return m[1]!;
}

export interface NatsServerOptions {
  port?: number;
  /** JetStream store; a fresh temp dir when absent (removed on stop unless `keepStore`). */
  storeDir?: string;
  keepStore?: boolean;
  /** HTTP monitoring port (for /jsz), off when absent. */
  monitorPort?: number;
  /** Extra nats-server arguments. */
  args?: string[];
  /** Print the server's log to stderr. */
  verbose?: boolean;
  /** Own process group, so a terminal's Ctrl-C reaches only the owner (which stops the server last). */
  detached?: boolean;
  /**
   * Require a user and password (`true`: a generated password for user `gantry`). The server then runs from a config
   * file with an `authorization` block; clients use {@link NatsServer.authEnv}.
   */
  auth?: boolean | NatsUser;
}

/** A NATS user and password. */
export interface NatsUser {
  user: string;
  password: string;
}

/** nats-server configuration text requiring `user` (a quoted string is a literal in NATS's config syntax). */
export function natsAuthorizationConfig(user: NatsUser): string {
  return `authorization {\n  users = [\n    { user: ${JSON.stringify(user.user)}, password: ${JSON.stringify(user.password)} }\n  ]\n}\n`;
}

export class NatsServer {
  private proc: ChildProcess | undefined;
  private log = '';
  private readonly ownsStore: boolean;
  /** The user clients must authenticate as (undefined: the server requires none). */
  readonly user: NatsUser | undefined;

  private constructor(
    readonly port: number,
    readonly storeDir: string,
    private readonly options: NatsServerOptions,
  ) {
    this.ownsStore = !options.storeDir && !options.keepStore;
    this.user =
      options.auth === true
        ? { user: 'gantry', password: randomBytes(18).toString('base64url') }
        : options.auth || undefined;
  }

  /** NATS_USER / NATS_PASSWORD for services (empty without auth). */
  authEnv(): Record<string, string> {
    return this.user ? { NATS_USER: this.user.user, NATS_PASSWORD: this.user.password } : {};
  }

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  get pid(): number | undefined {
    return this.proc?.pid;
  }

  static async start(options: NatsServerOptions = {}): Promise<NatsServer> {
    const port = options.port ?? (await freePort());
    const storeDir = options.storeDir ?? mkdtempSync(join(tmpdir(), 'gantry-nats-'));
    const server = new NatsServer(port, storeDir, options);
    await server.launch();
    return server;
  }

  private async launch(): Promise<void> {
    const args = ['-js', '-a', '127.0.0.1', '-p', String(this.port), '-sd', this.storeDir];
    if (this.options.monitorPort) args.push('-m', String(this.options.monitorPort));
    if (this.user) {
      // A config file rather than --user/--pass: the password stays out of the process list.
      mkdirSync(this.storeDir, { recursive: true });
      const conf = join(this.storeDir, 'gantry-auth.conf');
      writeFileSync(conf, natsAuthorizationConfig(this.user), { mode: 0o600 });
      args.unshift('-c', conf);
    }
    args.push(...(this.options.args ?? []));
    const proc = spawn(natsServerBinary(), args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: this.options.detached ?? false,
    });
    this.proc = proc;
    this.log = '';
    const ready = new Promise<void>((resolve, reject) => {
      const onData = (b: Buffer) => {
        const s = b.toString();
        this.log += s;
        if (this.options.verbose) process.stderr.write(s);
        if (this.log.includes('Server is ready')) resolve();
      };
      proc.stdout?.on('data', onData);
      proc.stderr?.on('data', onData);
      proc.once('exit', (code) => reject(new Error(`nats-server exited (${code}) before it was ready:\n${this.log}`)));
    });
    await within(ready, 15_000, 'nats-server start');
  }

  private async waitExit(): Promise<void> {
    const p = this.proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    await within(new Promise<void>((r) => p.once('exit', () => r())), 15_000, 'nats-server exit');
  }

  /** Graceful stop (SIGTERM) keeping the store. */
  async stop(): Promise<void> {
    this.proc?.kill('SIGTERM');
    await this.waitExit();
    this.proc = undefined;
  }

  /** `kill -9`, keeping the store. */
  async kill(): Promise<void> {
    this.proc?.kill('SIGKILL');
    await this.waitExit();
    this.proc = undefined;
  }

  /** Starts again on the same port and store. */
  async restart(): Promise<void> {
    if (this.proc) await this.stop();
    await this.launch();
  }

  /** Stops and removes a store this harness created. */
  async dispose(): Promise<void> {
    await this.stop();
    if (this.ownsStore && existsSync(this.storeDir)) rmSync(this.storeDir, { recursive: true, force: true });
  }

  logText(): string {
    return this.log;
  }
}
