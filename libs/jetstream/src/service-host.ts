/**
 * The one way a Gantry service starts and stops. Each `<app>.app.ts` builds its parts in order through a
 * `ServiceHost`; every part that was started registers how to close it, and `close()` closes them in reverse order of
 * start, like bullmq's `Worker.close()`: every step runs even when an earlier one throws or hangs (each has a bound),
 * failures are logged with the step's name, and calling it twice returns the same promise.
 *
 * The host also holds the ops endpoint (`/healthz`, `/readyz`, `/metrics`), started first so that a service waiting
 * for NATS is alive but not ready, and a readiness holder the app fills in once it knows how to judge itself.
 */
import type { DynamicModule, INestMicroservice } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import {
  NestPinoLogger,
  startOpsServer,
  type Logger,
  type OpsServer,
  type Readiness,
  type Registry,
} from '@gantry/telemetry';
import { NatsHandle, type NatsAuth } from './connection';
import { provision, type Topology } from './provision';
import type { JetStreamServer } from './server';

/** How long one close step may take unless it names its own bound. */
export const DEFAULT_CLOSE_STEP_MS = 10_000;

export interface CloseStep {
  name: string;
  run: () => Promise<void> | void;
  /** Upper bound for this step; the next step starts when it is over (default `DEFAULT_CLOSE_STEP_MS`). */
  timeoutMs?: number;
}

/** A close step that did not end well: it threw, or it was still running when its bound was over. */
export interface CloseFailure {
  step: string;
  error: unknown;
}

/**
 * Runs `steps` one after the other; each is bounded and a failure does not stop the ones after it. Resolves with the
 * failures (empty when all went well); never rejects.
 */
export async function closeInOrder(steps: readonly CloseStep[]): Promise<CloseFailure[]> {
  const failures: CloseFailure[] = [];
  for (const step of steps) {
    const bound = step.timeoutMs ?? DEFAULT_CLOSE_STEP_MS;
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        Promise.resolve().then(step.run),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new CloseTimeoutError(step.name, bound)), bound);
        }),
      ]);
    } catch (error) {
      failures.push({ step: step.name, error });
    } finally {
      clearTimeout(timer);
    }
  }
  return failures;
}

/** A close step that was still running at the end of its bound (the host moved on to the next one). */
export class CloseTimeoutError extends Error {
  override readonly name = 'CloseTimeoutError';
  readonly code = 'CLOSE_TIMEOUT';
  constructor(
    readonly step: string,
    readonly timeoutMs: number,
  ) {
    super(`closing ${step} took longer than ${timeoutMs} ms`);
  }
}

const NOT_YET: Readiness = { ready: false, detail: { starting: true } };

/** What `/readyz` answers; `starting` until the app sets its judge. */
export class ReadinessHolder {
  private judge: (() => Readiness | Promise<Readiness>) | undefined;
  private stopping = false;

  /** From now on `/readyz` asks `judge`. */
  set(judge: () => Readiness | Promise<Readiness>): void {
    this.judge = judge;
  }

  /** The service is closing: not ready, whatever the judge says (load balancers stop sending work first). */
  markStopping(): void {
    this.stopping = true;
  }

  async current(): Promise<Readiness> {
    if (this.stopping) return { ready: false, detail: { stopping: true } };
    return this.judge ? this.judge() : NOT_YET;
  }
}

export interface ServiceHostOptions {
  /** How the service names itself in logs: `scheduler`, `worker`, `notifier`, `gateway`. */
  service: string;
  /** This replica's id (NATS connection name, logs). */
  id: string;
  logger: Logger;
  registry: Registry;
  /** Where the ops endpoint listens; absent for a service that serves its own (the gateway's HTTP app). */
  ops?: { host: string; port: number };
}

export interface ConnectOptions {
  servers: string[];
  auth?: NatsAuth;
  /** Connection name (default: the host's id). */
  name?: string;
}

export class ServiceHost {
  readonly readiness = new ReadinessHolder();
  private readonly steps: CloseStep[] = [];
  private closing: Promise<void> | undefined;
  private opsServer: OpsServer | undefined;

  private constructor(private readonly o: ServiceHostOptions) {}

  /**
   * Starts a service: runs `build` with a fresh host (the ops endpoint already listening). If `build` throws, what it
   * had started is closed (in reverse order) before the error is passed on, so a failed start leaks nothing.
   */
  static async start<T>(o: ServiceHostOptions, build: (host: ServiceHost) => Promise<T>): Promise<T> {
    const host = new ServiceHost(o);
    try {
      if (o.ops) {
        const ops = await startOpsServer({
          ...o.ops,
          registry: o.registry,
          readiness: () => host.readiness.current(),
        });
        host.opsServer = ops;
        host.onClose('ops endpoint', () => ops.close());
        o.logger.info({ url: ops.url, id: o.id }, `${o.service} ops endpoint listening`);
      }
      return await build(host);
    } catch (err) {
      await host.close();
      throw err;
    }
  }

  get id(): string {
    return this.o.id;
  }

  /** Base URL of `/healthz`, `/readyz` and `/metrics` (when the host serves them). */
  get opsUrl(): string {
    if (!this.opsServer) throw new Error(`${this.o.service} has no ops endpoint of its own`);
    return this.opsServer.url;
  }

  /**
   * Registers how to close something just started. Steps close in reverse order of registration: register each
   * part right after it started, so that it closes before what it depends on.
   */
  onClose(name: string, run: () => Promise<void> | void, timeoutMs?: number): void {
    this.steps.push({ name, run, ...(timeoutMs !== undefined ? { timeoutMs } : {}) });
  }

  /** Connects to NATS (closed by draining, after everything started later). */
  async connect(o: ConnectOptions): Promise<NatsHandle> {
    const nats = await NatsHandle.connect({
      servers: o.servers,
      name: o.name ?? this.o.id,
      logger: this.o.logger,
      ...(o.auth ? { auth: o.auth } : {}),
    });
    this.onClose('nats', () => nats.drain());
    return nats;
  }

  /** Creates or raises the streams, consumers and buckets this service uses (idempotent). */
  provision(nats: NatsHandle, topology: Topology): Promise<void> {
    return provision(nats, topology, this.o.logger);
  }

  /**
   * Creates the Nest microservice that hosts the service's handlers over `strategy` (not yet listening: call
   * `listen()` when the service is ready for messages). Its close waits for handlers in flight up to `closeTimeoutMs`
   * (the strategy's own drain bound plus a margin).
   */
  async microservice(
    module: DynamicModule,
    strategy: JetStreamServer,
    closeTimeoutMs = DEFAULT_CLOSE_STEP_MS,
  ): Promise<INestMicroservice> {
    const app = await NestFactory.createMicroservice(module, {
      strategy,
      logger: new NestPinoLogger(this.o.logger),
    });
    this.onClose('transport', () => app.close(), closeTimeoutMs);
    return app;
  }

  /**
   * Closes every registered part in reverse order of start; each step bounded, none skipped because another
   * failed. Failures are logged; the promise never rejects. Idempotent.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.readiness.markStopping();
      const failures = await closeInOrder([...this.steps].reverse());
      for (const f of failures)
        this.o.logger.error({ step: f.step, err: f.error }, `${this.o.service}: closing ${f.step} failed`);
    })();
    return this.closing;
  }
}
