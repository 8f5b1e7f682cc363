/**
 * Composition of one scheduler replica: the ops endpoint, NATS and provisioning, the scheduler service (projection,
 * leadership, dispatch) and the request/reply endpoints (a Nest microservice over JetStream). `main.ts` runs it with
 * the process's configuration and signals.
 */
import { hostname } from 'node:os';
import { bucketDeclarations, newWorkerId, streamDeclarations, systemClock, topologyFor } from '@gantry/contracts';
import { JetStreamServer, ServiceHost } from '@gantry/jetstream';
import { JobStore } from '@gantry/job-store';
import { OutputStore } from '@gantry/storage';
import type { Logger, Registry } from '@gantry/telemetry';
import { SchedulerModule } from './app.module';
import type { SchedulerConfig } from './config';
import { SchedulerService } from './scheduler.service';

export interface SchedulerApp {
  readonly id: string;
  readonly opsUrl: string;
  readonly service: SchedulerService;
  /** Stops leading and timers, closes the endpoints, drains NATS, closes the ops endpoint. */
  close(): Promise<void>;
}

export function startScheduler(
  config: SchedulerConfig,
  o: { logger: Logger; registry: Registry },
): Promise<SchedulerApp> {
  const { logger, registry } = o;
  const id = newWorkerId(`scheduler-${hostname()}`);
  const ops = { host: config.HTTP_HOST, port: config.SCHEDULER_HTTP_PORT };
  return ServiceHost.start({ service: 'scheduler', id, logger, registry, ops }, async (host) => {
    const nats = await host.connect({ servers: config.NATS_URL, auth: config });
    const topology = topologyFor(config, { leaderLeaseMs: config.LEADER_LEASE_MS });
    const streams = streamDeclarations(topology);
    const buckets = bucketDeclarations(topology);
    await host.provision(nats, {
      streams: [streams.jobs, streams.dispatch, streams.list, streams.demand],
      buckets: [buckets.workers, buckets.leader, buckets.config, buckets.schedules],
    });

    const outputs = new OutputStore(config);
    host.onClose('output store', () => outputs.destroy());
    const service = new SchedulerService(
      id,
      config,
      nats,
      new JobStore(nats, systemClock),
      systemClock,
      registry,
      logger,
      outputs,
    );
    host.readiness.set(() => ({
      ready: service.ready,
      detail: { nats: nats.connected, leader: service.isLeader, schedulerId: id },
    }));
    const app = await host.microservice(
      SchedulerModule.register(service),
      new JetStreamServer({ nats, bindings: {}, logger }),
    );
    await app.listen();
    await service.start();
    host.onClose('scheduler service', () => service.stop());
    logger.info({ schedulerId: id }, 'scheduler started');
    return { id, opsUrl: host.opsUrl, service, close: () => host.close() };
  });
}
