import 'reflect-metadata';
import { hostname } from 'node:os';
import { NestFactory } from '@nestjs/core';
import { bucketDeclarations, newWorkerId, streamDeclarations, systemClock, topologyFor } from '@gantry/contracts';
import { loadConfigOrExit, runService } from '@gantry/config';
import { JetStreamServer, NatsHandle, provision } from '@gantry/jetstream';
import { JobStore } from '@gantry/job-store';
import { OutputStore } from '@gantry/storage';
import { createLogger, createRegistry, NestPinoLogger, startOpsServer, startTelemetry } from '@gantry/telemetry';
import { SchedulerModule } from './app.module';
import { schedulerSpec } from './config';
import { SchedulerService } from './scheduler.service';

runService('scheduler', async () => {
  const config = loadConfigOrExit('scheduler', schedulerSpec);
  const telemetry = startTelemetry('scheduler');
  const logger = createLogger('scheduler', config.LOG_LEVEL);
  const registry = createRegistry('scheduler');
  const id = newWorkerId(`scheduler-${hostname()}`);
  // Filled in as the service comes up; the ops endpoint reads it from the start.
  const live: { service?: SchedulerService; nats?: NatsHandle } = {};

  const ops = await startOpsServer({
    host: config.HTTP_HOST,
    port: config.SCHEDULER_HTTP_PORT,
    registry,
    readiness: () => ({
      ready: !!live.service?.ready,
      detail: { nats: live.nats?.connected ?? false, leader: live.service?.isLeader ?? false, schedulerId: id },
    }),
  });
  logger.info({ url: ops.url, schedulerId: id }, 'scheduler ops endpoint listening');

  const nats = await NatsHandle.connect({ servers: config.NATS_URL, name: id, logger, auth: config });
  live.nats = nats;
  const topology = topologyFor(config, { leaderLeaseMs: config.LEADER_LEASE_MS });
  const streams = streamDeclarations(topology);
  const buckets = bucketDeclarations(topology);
  await provision(
    nats,
    {
      streams: [streams.jobs, streams.dispatch, streams.list, streams.demand],
      buckets: [buckets.workers, buckets.leader, buckets.config],
    },
    logger,
  );

  const service = new SchedulerService(
    id,
    config,
    nats,
    new JobStore(nats, systemClock),
    systemClock,
    registry,
    logger,
    new OutputStore(config),
  );
  live.service = service;
  const app = await NestFactory.createMicroservice(SchedulerModule.register(service), {
    strategy: new JetStreamServer({ nats, bindings: {}, logger }),
    logger: new NestPinoLogger(logger),
  });
  await app.listen();
  await service.start();
  logger.info({ schedulerId: id }, 'scheduler started');

  return async (signal) => {
    logger.info({ signal }, 'scheduler stopping');
    await service.stop().catch((err: unknown) => logger.error({ err }, 'stop failed'));
    await app.close().catch(() => undefined);
    await nats.drain();
    await ops.close();
    await telemetry.shutdown();
  };
});
