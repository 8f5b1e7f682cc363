/** One NATS connection per process, with JetStream and KV handles, reconnecting forever. */
import { readFileSync } from 'node:fs';
import {
  connect,
  credsAuthenticator,
  nkeyAuthenticator,
  type ConnectionOptions,
  type NatsConnection,
} from '@nats-io/transport-node';
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { jserrors } from '@nats-io/jetstream/internal';
import { Kvm } from '@nats-io/kv';
import type { Logger } from '@gantry/telemetry';
import { sleep } from './async';
import { Backoff } from './backoff';
import { isNatsUnavailable } from './errors';
import { coalesceWrites } from './write-coalescing';

export interface NatsHandleOptions {
  servers: string[];
  /** Shown in `nats server report connections`. */
  name: string;
  logger: Logger;
  /** Request timeout for JetStream API calls. */
  timeoutMs?: number;
  /** How this service authenticates (absent: no credentials, for a server without authorization). */
  auth?: NatsAuth;
}

/**
 * NATS credentials from the environment (docs/operations.md, "NATS credentials"): user and password, a token, an
 * nkey seed file, or a `.creds` file (JWT + seed, decentralized auth). At most one kind.
 */
export interface NatsAuth {
  NATS_USER?: string | undefined;
  NATS_PASSWORD?: string | undefined;
  NATS_TOKEN?: string | undefined;
  NATS_NKEY_SEED_FILE?: string | undefined;
  NATS_CREDS_FILE?: string | undefined;
}

/** A bad combination of NATS credential variables. */
export class NatsAuthConfigError extends Error {
  override readonly name = 'NatsAuthConfigError';
  readonly code = 'NATS_AUTH_CONFIG';
}

/** The connect options for `auth`; throws NatsAuthConfigError on a bad combination or an unreadable file. */
export function natsAuthOptions(auth: NatsAuth | undefined): Partial<ConnectionOptions> {
  if (!auth) return {};
  const kinds = [
    auth.NATS_USER || auth.NATS_PASSWORD ? 'NATS_USER/NATS_PASSWORD' : undefined,
    auth.NATS_TOKEN ? 'NATS_TOKEN' : undefined,
    auth.NATS_NKEY_SEED_FILE ? 'NATS_NKEY_SEED_FILE' : undefined,
    auth.NATS_CREDS_FILE ? 'NATS_CREDS_FILE' : undefined,
  ].filter((k): k is string => !!k);
  if (kinds.length > 1)
    throw new NatsAuthConfigError(`set only one kind of NATS credentials, not ${kinds.join(' and ')}`);
  if ((auth.NATS_USER && !auth.NATS_PASSWORD) || (!auth.NATS_USER && auth.NATS_PASSWORD)) {
    throw new NatsAuthConfigError('NATS_USER and NATS_PASSWORD go together');
  }
  const read = (name: string, path: string): Uint8Array => {
    try {
      return new TextEncoder().encode(readFileSync(path, 'utf8').trim());
    } catch (err) {
      throw new NatsAuthConfigError(`${name}: cannot read ${path}: ${(err as Error).message}`);
    }
  };
  if (auth.NATS_USER) return { user: auth.NATS_USER, pass: auth.NATS_PASSWORD! };
  if (auth.NATS_TOKEN) return { token: auth.NATS_TOKEN };
  if (auth.NATS_NKEY_SEED_FILE) {
    return { authenticator: nkeyAuthenticator(read('NATS_NKEY_SEED_FILE', auth.NATS_NKEY_SEED_FILE)) };
  }
  if (auth.NATS_CREDS_FILE) {
    return { authenticator: credsAuthenticator(read('NATS_CREDS_FILE', auth.NATS_CREDS_FILE)) };
  }
  return {};
}

function parseVersion(v: string): [number, number, number] {
  const [a = 0, b = 0, c = 0] = v
    .split('-')[0]!
    .split('.')
    .map((x) => Number(x) || 0);
  return [a, b, c];
}

export function versionAtLeast(have: string, want: string): boolean {
  const h = parseVersion(have);
  const w = parseVersion(want);
  for (let i = 0; i < 3; i++) {
    if (h[i]! !== w[i]!) return h[i]! > w[i]!;
  }
  return true;
}

/**
 * The JetStream manager, whose creation asks the server for the account's JetStream info. The connection itself is
 * retried until the server answers (`waitOnFirstConnect`); this first API call is retried the same way while the broker
 * cannot answer it (a timeout on a loaded or starting server, a cluster without a meta leader yet), instead of failing
 * the service's start on one slow answer. Any other refusal (JetStream disabled on the account, a permission) fails it.
 */
async function managerOnceAnswered(nc: NatsConnection, timeout: number, logger: Logger): Promise<JetStreamManager> {
  const backoff = new Backoff({ initialMs: 250, maxMs: 5_000 });
  for (;;) {
    try {
      return await jetstreamManager(nc, { timeout });
    } catch (err) {
      if (nc.isClosed() || !isTransientApiError(err)) throw err;
      const retryInMs = backoff.next();
      logger.warn({ err: String(err), retryInMs }, 'JetStream did not answer yet; retrying');
      await sleep(retryInMs);
    }
  }
}

/** A first API call the broker could not answer yet (not a refusal): timeouts and 503s. */
function isTransientApiError(err: unknown): boolean {
  return isNatsUnavailable(err) && !(err instanceof jserrors.JetStreamNotEnabled);
}

export class NatsHandle {
  private closed = false;

  private constructor(
    readonly nc: NatsConnection,
    readonly js: JetStreamClient,
    readonly jsm: JetStreamManager,
    readonly kvm: Kvm,
    private readonly logger: Logger,
    private readonly options: NatsHandleOptions,
  ) {}

  /** Connects (retrying until the server answers) and logs every connection status change. */
  static async connect(o: NatsHandleOptions): Promise<NatsHandle> {
    const nc = await connect({
      ...natsAuthOptions(o.auth),
      servers: o.servers,
      name: o.name,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
      waitOnFirstConnect: true,
      pingInterval: 5_000,
      maxPingOut: 3,
      timeout: 5_000,
      // Every JetStream publish is a request; capturing an async stack trace for each costs measurable CPU on the
      // hot paths (a dispatch, a compare-and-set) for stacks we do not need: errors carry their subject and cause.
      noAsyncTraces: true,
    });
    // A turn's frames leave in one write (write-coalescing.ts); re-applied after each reconnect (a new transport).
    coalesceWrites(nc);
    const timeout = o.timeoutMs ?? 5_000;
    const js = jetstream(nc, { timeout });
    let jsm: JetStreamManager;
    try {
      jsm = await managerOnceAnswered(nc, timeout, o.logger);
    } catch (err) {
      await nc.close().catch(() => undefined);
      throw err;
    }
    const handle = new NatsHandle(nc, js, jsm, new Kvm(js), o.logger, o);
    void handle.watchStatus();
    o.logger.info({ server: nc.getServer(), version: handle.serverVersion }, 'connected to NATS');
    return handle;
  }

  /**
   * A second connection to the same servers, named `<name>-<suffix>`: for calls that are slow on the server (on 2.9
   * an API call is handled on the connection's read loop, so everything else sent on it waits behind) and for what
   * must not share their fate. The caller drains it.
   */
  sibling(suffix: string, o: { timeoutMs?: number } = {}): Promise<NatsHandle> {
    return NatsHandle.connect({
      ...this.options,
      name: `${this.options.name}-${suffix}`,
      timeoutMs: o.timeoutMs ?? this.options.timeoutMs,
    });
  }

  get serverVersion(): string {
    return this.nc.info?.version ?? '0.0.0';
  }

  /** Gates JetStream features added after 2.9 (the oldest server Gantry supports). */
  serverAtLeast(version: string): boolean {
    return versionAtLeast(this.serverVersion, version);
  }

  /** True while connected (not reconnecting, not closed). */
  get connected(): boolean {
    return !this.closed && !this.nc.isClosed() && !this.nc.isDraining() && this.reconnecting === false;
  }

  private reconnecting = false;

  private async watchStatus(): Promise<void> {
    for await (const s of this.nc.status()) {
      switch (s.type) {
        case 'disconnect':
          this.reconnecting = true;
          this.logger.warn({ status: s.type }, 'NATS connection lost; reconnecting');
          break;
        case 'reconnect':
          this.reconnecting = false;
          coalesceWrites(this.nc);
          this.logger.info({ status: s.type, server: this.nc.getServer() }, 'NATS reconnected');
          break;
        case 'error':
          this.logger.error({ status: s.type, err: String(s.error) }, 'NATS error');
          break;
        default:
          break;
      }
    }
  }

  /** Drains subscriptions and flushes pending publishes, then closes. Safe to call twice. */
  async drain(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      await this.nc.drain();
    } catch {
      // The drain failed; closing is all that is left, and a close that fails too leaves nothing to do.
      await this.nc.close().catch(() => undefined);
    }
  }
}
