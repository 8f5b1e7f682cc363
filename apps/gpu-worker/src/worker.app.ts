/**
 * Composition of one worker process: GPU discovery, executors, the NATS connection and provisioning, the attempt
 * runner, heartbeats, the dispatch consumer (a Nest microservice over JetStream) and the ops endpoint. `main.ts` runs it
 * with the process's configuration and signals; integration tests run it in-process.
 */
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  topologyFor,
  JobTypeRegistry,
  bucketDeclarations,
  loadCatalog,
  newWorkerId,
  streamDeclarations,
  systemClock,
  workerConsumer,
  type GpuInfo,
} from '@gantry/contracts';
import { JetStreamServer, ServiceHost, ensureConsumer } from '@gantry/jetstream';
import { JobStore } from '@gantry/job-store';
import { OutputStore } from '@gantry/storage';
import type { Logger, Registry } from '@gantry/telemetry';
import { WorkerModule } from './app.module';
import type { WorkerConfig } from './config';
import { CatalogExecutor } from './executors/catalog.executor';
import { ExecutorRegistry } from './executors/executor-registry';
import { FfmpegExecutor } from './executors/ffmpeg.executor';
import { NoopExecutor } from './executors/noop.executor';
import { DEFAULT_TRANSFERS, type TransferSettings } from './executors/transfers';
import { GpuHealthTracker } from './gpu/gpu-health';
import { GpuMetrics } from './gpu/gpu-metrics';
import { GpuMonitor } from './gpu/gpu-monitor';
import { NvidiaSmiProbe, noGpus, type GpuProbe } from './gpu/gpu-probe';
import { NvidiaSmiComputeApps, NvidiaSmiTelemetry, TelemetrySampler, type TelemetryPort } from './gpu/gpu-telemetry';
import { PeakMemory } from './gpu/peak-memory';
import { XidLogTail } from './gpu/xid-log';
import { AttemptRunner, LeaseTicker } from './runner/attempt-runner';
import { ParentOutputResolver } from './runner/parent-outputs';
import { S3InputPolicy, jobTenantLookup } from './runner/s3-input-policy';
import { prepareScratch, removeScratch } from './runner/scratch';
import { Sandbox } from './sandbox/sandbox';
import { WorkerMetrics } from './runner/worker-metrics';
import { WorkerService } from './worker.service';

export interface WorkerAppOptions {
  logger: Logger;
  registry: Registry;
  /** GPU discovery (default: nvidia-smi, or none with GPU_DISCOVERY=false). */
  probe?: GpuProbe;
  /** GPU telemetry (default: nvidia-smi's query, when GPUs were discovered through it). */
  telemetry?: TelemetryPort;
  /** Transfer timings (default: the contract's connect 30 s, idle 120 s, 3 attempts). */
  transfers?: Partial<TransferSettings>;
}

export interface WorkerApp {
  readonly id: string;
  readonly slots: number;
  readonly gpus: readonly GpuInfo[];
  readonly scratchRoot: string;
  readonly opsUrl: string;
  readonly runner: AttemptRunner;
  readonly worker: WorkerService;
  readonly gpuMonitor: GpuMonitor;
  /**
   * Graceful stop: announce draining (no new dispatches), stop fetching, let running attempts finish for
   * WORKER_SHUTDOWN_GRACE_SECONDS, then hand the rest back (they are queued again at once), deregister, disconnect.
   */
  shutdown(reason: string): Promise<void>;
}

export function startWorker(config: WorkerConfig, o: WorkerAppOptions): Promise<WorkerApp> {
  const { logger, registry } = o;
  const id = newWorkerId(config.WORKER_ID_PREFIX ?? hostname());
  const ops = { host: config.HTTP_HOST, port: config.WORKER_HTTP_PORT };
  return ServiceHost.start({ service: 'worker', id, logger, registry, ops }, (host) => build(host, id, config, o));
}

async function build(host: ServiceHost, id: string, config: WorkerConfig, o: WorkerAppOptions): Promise<WorkerApp> {
  const { logger, registry } = o;
  host.onClose('log', () => logger.info({ workerId: id }, 'worker stopped'));
  const types = JobTypeRegistry.load(config.JOB_TYPES_FILE);
  const store = new OutputStore(config);
  host.onClose('output store', () => store.destroy());
  const transfers: TransferSettings = { ...DEFAULT_TRANSFERS, allowPrivate: config.ALLOW_PRIVATE_URLS, ...o.transfers };
  const catalog = config.JOB_TYPES_FILE ? loadCatalog(config.JOB_TYPES_FILE) : [];
  const executors = new ExecutorRegistry(types, [
    new NoopExecutor(),
    new FfmpegExecutor(config.FFMPEG, store, transfers),
    new CatalogExecutor(catalog, store, transfers),
  ]);

  const probe =
    o.probe ??
    (config.GPU_DISCOVERY
      ? new NvidiaSmiProbe(
          config.NVIDIA_SMI,
          (err) => logger.warn({ err: String(err) }, 'no GPU found (nvidia-smi missing or failing); CPU-only mode'),
          (err) => logger.warn({ err: String(err) }, 'nvidia-smi -L failed; MIG instances are not discovered'),
        )
      : noGpus);
  const gpus = await probe.discover();
  const slots = config.WORKER_SLOTS ?? (gpus.length > 0 ? gpus.length * config.SLOTS_PER_GPU : 2);
  const scratchRoot = await prepareScratch(config.WORKER_SCRATCH_DIR ?? join(tmpdir(), 'gantry-worker'), id, logger);
  host.onClose('scratch', () => removeScratch(scratchRoot));
  logger.info(
    { workerId: id, pool: config.WORKER_POOL, slots, gpus, scratchRoot, mode: gpus.length > 0 ? 'gpu' : 'cpu-only' },
    'worker identity',
  );
  // Refuses to start (SandboxUnavailableError) where the host cannot sandbox job processes, unless JOB_SANDBOX=off.
  const sandbox = await Sandbox.create(
    {
      mode: config.JOB_SANDBOX,
      bwrap: config.BWRAP,
      uidBase: config.JOB_SANDBOX_UID_BASE,
      slots,
      maxOpenFiles: config.JOB_MAX_OPEN_FILES,
      maxProcesses: config.JOB_MAX_PROCESSES,
      maxFileBytes: config.MAX_SCRATCH_BYTES,
      shmBytes: 64 * 1024 * 1024,
    },
    scratchRoot,
  );
  if (sandbox.enabled) {
    logger.info(
      {
        bwrap: sandbox.settings.bwrap,
        uids: sandbox.privileged ? `${config.JOB_SANDBOX_UID_BASE}-${config.JOB_SANDBOX_UID_BASE + slots - 1}` : 'own',
      },
      sandbox.privileged
        ? 'job sandbox ready: each slot runs as its own uid'
        : 'job sandbox ready: the worker is not root, so job processes keep its uid inside their user namespace',
    );
  } else {
    logger.warn(
      { JOB_SANDBOX: 'off' },
      'JOB_SANDBOX=off: job processes run UNCONFINED as the worker (they can read its environment and files, reach ' +
        'the network and other attempts); never do this on a shared or multi-tenant worker',
    );
  }

  // The GPU monitor is built before the runner and the worker service it reports to.
  const live: { worker?: WorkerService; runner?: AttemptRunner } = {};
  const nats = await host.connect({ servers: config.NATS_URL, auth: config });
  const topology = topologyFor(config);
  const streams = streamDeclarations(topology);
  await host.provision(nats, {
    streams: [streams.jobs, streams.dispatch],
    buckets: [bucketDeclarations(topology).workers],
  });

  const telemetry =
    o.telemetry ??
    (!o.probe && config.GPU_DISCOVERY
      ? new NvidiaSmiTelemetry(config.NVIDIA_SMI, config.GPU_SAMPLE_TIMEOUT_MS)
      : undefined);
  const gpuMonitor = new GpuMonitor({
    devices: gpus,
    ...(telemetry
      ? {
          sampler: new TelemetrySampler(
            telemetry,
            // A sample is shown while the next ones may still be failing or timing out, then reported unknown.
            3 * config.GPU_SAMPLE_INTERVAL_MS + config.GPU_SAMPLE_TIMEOUT_MS,
            (err, n) => {
              if (n === 1 || n % 60 === 0)
                logger.warn({ err: String(err), consecutive: n }, 'GPU telemetry sample failed');
            },
          ),
        }
      : {}),
    ...(config.GPU_XID_LOG ? { xid: new XidLogTail(config.GPU_XID_LOG) } : {}),
    health: new GpuHealthTracker(gpus, {
      recheckMs: config.GPU_CORDON_RECHECK_SECONDS * 1000,
      startFailureLimit: config.GPU_START_FAILURES,
      cordonXids: config.GPU_CORDON_XIDS,
    }),
    ...(telemetry && !o.telemetry
      ? {
          peaks: {
            apps: new NvidiaSmiComputeApps(config.NVIDIA_SMI, config.GPU_SAMPLE_TIMEOUT_MS),
            running: () =>
              [...(live.runner?.running.values() ?? [])].map((a) => ({
                jobId: a.jobId,
                type: a.record.type,
                gpus: a.record.gpus ?? [],
              })),
            memory: new PeakMemory(),
          },
        }
      : {}),
    intervalMs: config.GPU_SAMPLE_INTERVAL_MS,
    onChange: (changes) => live.worker?.gpuHealthChanged(changes),
    onXidError: (err) => logger.warn({ err: String(err), file: config.GPU_XID_LOG }, 'cannot read the XID log'),
  });
  const gpuMetrics = new GpuMetrics(registry, () => gpuMonitor.statuses());

  const metrics = new WorkerMetrics(registry, () => ({
    slots,
    busy: live.runner?.running.size ?? 0,
    gpus: gpus.length,
  }));
  // Job processes die when heartbeats stop succeeding for 60 % of WORKER_LOST_AFTER_MS (before the scheduler could
  // hand their attempts to another worker), even if this process is frozen.
  const lease = new LeaseTicker(Math.floor(config.WORKER_LOST_AFTER_MS * 0.6));
  // The window in which an attempt runs with no running revision stays far inside the lease (docs/architecture.md,
  // "Started revisions").
  const startedRevisionDelayMs = Math.min(config.WORKER_STARTED_REVISION_DELAY_MS, Math.floor(lease.deadlineMs / 4));
  if (startedRevisionDelayMs < config.WORKER_STARTED_REVISION_DELAY_MS) {
    logger.warn(
      { configured: config.WORKER_STARTED_REVISION_DELAY_MS, used: startedRevisionDelayMs },
      'WORKER_STARTED_REVISION_DELAY_MS capped at a quarter of the lease',
    );
  }
  const jobStore = new JobStore(nats, systemClock);
  const runner = new AttemptRunner({
    workerId: id,
    nats,
    jobs: jobStore,
    executors,
    clock: systemClock,
    gpus: () => gpus,
    scratchRoot,
    progressIntervalMs: config.PROGRESS_RECORD_INTERVAL_MS,
    startedRevisionDelayMs,
    readBeforeStart: config.WORKER_READ_BEFORE_START,
    metrics,
    logger,
    lease,
    transfers,
    gpuPeakMb: (jobId) => gpuMonitor.peakOf(jobId),
    slots,
    attemptEnded: (e) => {
      gpuMonitor.attemptFinished(
        e.jobId,
        e.gpuOomRaisedMb !== undefined ? { type: e.type, requestMb: e.gpuOomRaisedMb } : undefined,
      );
      if (e.gpus.length === 0 || e.outcome === 'cancel' || e.outcome === 'shutdown') return;
      // A start failure: the program could not run, crashed or exited with an error soon after it started.
      const early =
        e.outcome === 'fail' &&
        ['SPAWN_FAILED', 'EXIT_CODE', 'SIGNAL'].includes(e.code ?? '') &&
        e.runMs < config.GPU_START_FAILURE_SECONDS * 1000;
      gpuMonitor.attemptEnded(e.gpus, e.jobId, early);
    },
    sandbox: {
      sandbox,
      limits: {
        maxInputBytes: config.MAX_INPUT_BYTES,
        maxScratchBytes: config.MAX_SCRATCH_BYTES,
        maxScratchEntries: 100_000,
      },
    },
    s3Inputs: new S3InputPolicy(config.S3_BUCKET, config.S3_INPUT_BUCKETS, {
      tenantOf: jobTenantLookup(jobStore),
    }),
    parentOutputs: new ParentOutputResolver(config.S3_BUCKET, jobStore),
  });
  live.runner = runner;
  const consumer = workerConsumer(id, slots, config.DISPATCH_ACK_WAIT_MS);
  const worker = new WorkerService(
    {
      id,
      pool: config.WORKER_POOL,
      slots,
      slotsPerGpu: config.SLOTS_PER_GPU,
      gpus,
      jobTypes: executors.types(),
      version: '0.1.0',
    },
    nats,
    runner,
    systemClock,
    { heartbeatMs: config.HEARTBEAT_INTERVAL_MS, lostAfterMs: config.WORKER_LOST_AFTER_MS },
    logger,
    lease,
    async () => {
      await ensureConsumer(nats.jsm, consumer, logger);
    },
    { monitor: gpuMonitor, metrics: gpuMetrics },
  );
  live.worker = worker;
  host.readiness.set(() => ({
    ready: worker.registered && nats.connected && !worker.draining,
    detail: { workerId: id, nats: nats.connected, draining: worker.draining },
  }));
  const graceMs = config.WORKER_SHUTDOWN_GRACE_SECONDS * 1000;
  const strategy = new JetStreamServer({
    nats,
    logger,
    registry,
    bindings: {
      dispatch: {
        consumer,
        maxInFlight: slots,
        // working() every third of AckWait: a late timer still lands well inside it.
        heartbeatMs: Math.floor(config.DISPATCH_ACK_WAIT_MS / 3),
      },
    },
    // In-flight attempts get the grace period, then their hand-back (kill, CAS, ack) a bounded while longer.
    drainTimeoutMs: graceMs + 15_000,
  });
  // The first heartbeat already carries live figures (and any cordon the first sample decides).
  await gpuMonitor.start();
  host.onClose('GPU monitor', () => gpuMonitor.stop());
  await worker.start();
  host.onClose('registration', () => worker.deregister());

  // Closing, in this order: stop taking work (drain), let attempts in flight finish for the grace period (then hand
  // the rest back), close the transport, deregister, stop the GPU monitor, drain NATS, remove scratch.
  let reason = 'close';
  let grace: NodeJS.Timeout | undefined;
  host.onClose('grace timer', () => clearTimeout(grace));
  const app = await host.microservice(WorkerModule.register(runner), strategy, graceMs + 20_000);
  host.onClose('drain', async () => {
    logger.info(
      { reason, running: runner.running.size, graceMs },
      'worker stopping: no new work; finishing in-flight attempts',
    );
    try {
      await worker.drain();
    } finally {
      grace = setTimeout(() => {
        logger.warn({ running: runner.running.size }, 'grace period over; handing the rest back');
        runner.abortAll('shutdown');
      }, graceMs);
    }
  });
  await app.listen();
  logger.info({ workerId: id, slots }, 'worker started');

  return {
    id,
    slots,
    gpus,
    scratchRoot,
    opsUrl: host.opsUrl,
    runner,
    worker,
    gpuMonitor,
    shutdown: (why: string) => {
      reason = why;
      return host.close();
    },
  };
}
