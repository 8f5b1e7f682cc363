/**
 * A whole Gantry for end-to-end tests: a real nats-server, a real S3-compatible store and the four built apps as real
 * processes, with fast liveness timings. Tests drive it over HTTP like a client would.
 */
import { NatsCluster } from './nats-cluster';
import { NatsServer } from './nats-server';
import { freePort } from './ports';
import { ServiceProcess, type ServiceName } from './processes';
import { S3Server } from './s3-server';
import { waitFor, type WaitOptions } from './wait';

export const ADMIN_KEY = 'e2e-admin-key-0001';
export const CLIENT_KEY = 'e2e-client-key-0001';
export const OTHER_TENANT_KEY = 'e2e-other-key-0001';
export const E2E_WEBHOOK_SECRET = 'whsec_ZTJlLXdlYmhvb2stc2VjcmV0LTAwMDAwMQ==';

/** Timings that make failover and loss detection take a second or two instead of ten. */
export const FAST_TIMINGS: Record<string, string> = {
  HEARTBEAT_INTERVAL_MS: '250',
  WORKER_LOST_AFTER_MS: '2000',
  LEADER_LEASE_MS: '1500',
  STATS_INTERVAL_MS: '100',
  PROGRESS_RECORD_INTERVAL_MS: '100',
  RETRY_DELAYS_MS: '200,400,800',
  WEBHOOK_RETRY_DELAYS_MS: '200,400,800',
  WEBHOOK_PROGRESS_INTERVAL_MS: '0',
  WORKER_SHUTDOWN_GRACE_SECONDS: '5',
};

export interface ClusterOptions {
  /** Extra environment for every service. */
  env?: Record<string, string>;
  /** Start nats-server requiring a user and password (the services get NATS_USER / NATS_PASSWORD). */
  natsAuth?: boolean;
  /** Per-service extra environment. */
  serviceEnv?: Partial<Record<ServiceName, Record<string, string>>>;
  workers?: number;
  schedulers?: number;
  notifiers?: number;
  /** NATS nodes: 1 (default) is one server; more is a real cluster on loopback ({@link NatsCluster}). */
  natsNodes?: number;
  /** Do not start the services (start them one by one). */
  manual?: boolean;
  echo?: boolean;
}

export interface ApiResponse<T = unknown> {
  status: number;
  headers: Headers;
  body: T;
}

export class GantryCluster {
  readonly services: ServiceProcess[] = [];
  gatewayUrl = '';

  private constructor(
    /** The NATS server (with `natsNodes` > 1: the cluster's first node; see {@link natsCluster}). */
    readonly nats: NatsServer,
    readonly s3: S3Server,
    private readonly options: ClusterOptions,
    readonly natsCluster?: NatsCluster,
  ) {}

  static async start(options: ClusterOptions = {}): Promise<GantryCluster> {
    const natsCluster = (options.natsNodes ?? 1) > 1 ? await NatsCluster.start({ size: options.natsNodes }) : undefined;
    const nats = natsCluster
      ? natsCluster.nodes[0]!.server
      : await NatsServer.start(options.natsAuth ? { auth: true } : {});
    const s3 = await S3Server.start();
    const c = new GantryCluster(nats, s3, options, natsCluster);
    if (!options.manual) {
      try {
        for (let i = 0; i < (options.schedulers ?? 1); i++) c.spawn('scheduler');
        for (let i = 0; i < (options.workers ?? 1); i++) c.spawn('gpu-worker');
        for (let i = 0; i < (options.notifiers ?? 1); i++) c.spawn('notifier');
        await c.startGateway();
        await c.waitForWorkers(options.workers ?? 1);
      } catch (err) {
        // Leave nothing running behind a failed start.
        await c.stop();
        throw err;
      }
    }
    return c;
  }

  /** What services get as `NATS_URL`: the server, or every node of the cluster. */
  get natsUrl(): string {
    return this.natsCluster?.url ?? this.nats.url;
  }

  baseEnv(): Record<string, string> {
    return {
      NATS_URL: this.natsUrl,
      ...this.nats.authEnv(),
      ...this.s3.env(),
      API_KEYS: `${ADMIN_KEY}:admin,${CLIENT_KEY}:client,${OTHER_TENANT_KEY}:client:other`,
      WEBHOOK_SECRET: E2E_WEBHOOK_SECRET,
      ALLOW_PRIVATE_URLS: 'true',
      GATEWAY_PORT: '0',
      SCHEDULER_HTTP_PORT: '0',
      WORKER_HTTP_PORT: '0',
      NOTIFIER_HTTP_PORT: '0',
      GPU_DISCOVERY: 'false',
      // Tests poll far faster than clients should (waitFor every 25 ms, several at once): reads are not what they test.
      RATE_LIMIT_READS_PER_MINUTE: '1000000',
      ...FAST_TIMINGS,
      ...this.options.env,
    };
  }

  /** Starts one more service process (not waiting for it). */
  spawn(name: ServiceName, env: Record<string, string> = {}): ServiceProcess {
    const p = new ServiceProcess(
      name,
      { ...this.baseEnv(), ...this.options.serviceEnv?.[name], ...env },
      { echo: this.options.echo ?? false },
    );
    p.start();
    this.services.push(p);
    return p;
  }

  async startGateway(env: Record<string, string> = {}): Promise<ServiceProcess> {
    const port = env['GATEWAY_PORT'] ?? String(await freePort());
    const gw = this.spawn('gateway', { ...env, GATEWAY_PORT: port });
    this.gatewayUrl = `http://127.0.0.1:${port}`;
    await waitFor(
      async () => {
        if (!gw.running) throw new Error(`gateway exited: ${gw.tail(10)}`);
        return (await fetch(`${this.gatewayUrl}/readyz`).catch(() => undefined))?.status === 200;
      },
      {
        what: 'gateway ready',
        // Generous: on a shared 2-core machine under load (load average 34 seen) a Node service start has been seen
        // to take over 90 s.
        timeoutMs: 180_000,
        intervalMs: 50,
      },
    );
    return gw;
  }

  of(name: ServiceName): ServiceProcess[] {
    return this.services.filter((s) => s.name === name && s.running);
  }

  async api<T = unknown>(
    method: string,
    path: string,
    body?: unknown,
    key = ADMIN_KEY,
    headers: Record<string, string> = {},
  ): Promise<ApiResponse<T>> {
    const res = await fetch(`${this.gatewayUrl}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${key}`,
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        ...headers,
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      // not JSON
    }
    return { status: res.status, headers: res.headers, body: parsed as T };
  }

  /** Submits a job and returns its id (expects 202). */
  async submit(job: Record<string, unknown>, key = ADMIN_KEY): Promise<string> {
    const r = await this.api<{ id: string }>('POST', '/v1/jobs', job, key);
    if (r.status !== 202) throw new Error(`submit answered ${r.status}: ${JSON.stringify(r.body)}`);
    return r.body.id;
  }

  async job<T = Record<string, unknown>>(id: string, key = ADMIN_KEY): Promise<T> {
    const r = await this.api<T>('GET', `/v1/jobs/${id}`, undefined, key);
    if (r.status !== 200) throw new Error(`GET job answered ${r.status}`);
    return r.body;
  }

  /** Waits until the job view satisfies `predicate` (e.g. a status). */
  async waitForJob<T = Record<string, unknown>>(
    id: string,
    predicate: (job: T) => boolean,
    o: WaitOptions = {},
  ): Promise<T> {
    return waitFor(
      async () => {
        const j = await this.job<T>(id);
        return predicate(j) ? j : undefined;
      },
      { what: `job ${id}`, timeoutMs: 30_000, intervalMs: 50, ...o },
    );
  }

  async waitForStatus(id: string, status: string, o: WaitOptions = {}): Promise<Record<string, unknown>> {
    return this.waitForJob(id, (j) => j['status'] === status, { what: `job ${id} ${status}`, ...o });
  }

  async waitForWorkers(n: number, o: WaitOptions = {}): Promise<{ id: string; busy: number; runningJobs: string[] }[]> {
    return waitFor(
      async () => {
        const r = await this.api<{ id: string; busy: number; runningJobs: string[] }[]>('GET', '/v1/workers');
        return r.status === 200 && Array.isArray(r.body) && r.body.length === n ? r.body : undefined;
      },
      { what: `${n} live worker(s)`, timeoutMs: 120_000, intervalMs: 100, ...o },
    );
  }

  /** Stops everything (SIGKILL for what does not stop in time) and removes temp data. */
  async stop(): Promise<void> {
    await Promise.all(
      this.services.map((s) => s.kill('SIGTERM', 15_000).catch(() => s.kill('SIGKILL').catch(() => undefined))),
    );
    await this.s3.stop().catch(() => undefined);
    if (this.natsCluster) await this.natsCluster.dispose();
    else await this.nats.dispose().catch(() => undefined);
  }

  /** Logs of every service, for a failing test's message. */
  logs(n = 30): string {
    return this.services.map((s) => `--- ${s.name} (pid ${s.pid})\n${s.tail(n)}`).join('\n');
  }
}
