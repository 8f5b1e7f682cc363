import { Module, type DynamicModule } from '@nestjs/common';
import { APP_FILTER, APP_GUARD, APP_INTERCEPTOR, APP_PIPE } from '@nestjs/core';
import type { Clock, JobTypeRegistry } from '@gantry/contracts';
import type { OutputStore } from '@gantry/storage';
import type { Logger, Registry } from '@gantry/telemetry';
import { ConfigController } from './admin/config.controller';
import { ApiKeyGuard } from './auth/auth';
import { WhoamiController } from './auth/whoami.controller';
import { BatchesController } from './batches/batches.controller';
import { BatchesService } from './batches/batches.service';
import { GATEWAY_CONFIG, type GatewayConfig } from './config';
import { JobEventsController } from './events/job-events.controller';
import { JobEventsService } from './events/job-events.service';
import { QueueEventsService } from './events/queue-events.service';
import { SseSlots } from './events/sse-slots';
import { SseStreams } from './events/sse-stream';
import { HealthController } from './health/health.controller';
import { HttpMetrics } from './http/http-metrics';
import { ObserveInterceptor } from './http/observe.interceptor';
import { ProblemFilter } from './http/problem.filter';
import { StrictValidationPipe } from './http/validation';
import { IdempotencyService } from './idempotency/idempotency.service';
import { JobListService } from './jobs/job-list.service';
import { JobRequestValidator } from './jobs/job-request.validator';
import { JobTenants } from './jobs/job-tenants';
import { JobsController } from './jobs/jobs.controller';
import { JobsService } from './jobs/jobs.service';
import { GatewayNats } from './nats/gateway-nats';
import { QueueController } from './queue/queue.controller';
import { GatewayRpc } from './nats/gateway-rpc';
import { SchedulesController } from './schedules/schedules.controller';
import { SchedulesService } from './schedules/schedules.service';
import { TenantsController } from './tenants/tenants.controller';
import { CLOCK, JOB_TYPES, LOGGER, METRICS_REGISTRY, OUTPUT_STORE } from './tokens';
import { FailedWebhooksController } from './webhooks/failed-webhooks.controller';
import { GpuCordonController } from './workers/gpu-cordon.controller';

export interface GatewayDeps {
  config: GatewayConfig;
  logger: Logger;
  clock: Clock;
  types: JobTypeRegistry;
  outputs: OutputStore;
  registry: Registry;
  metrics: HttpMetrics;
  nats: GatewayNats;
}

@Module({})
export class GatewayModule {
  static register(d: GatewayDeps): DynamicModule {
    return {
      module: GatewayModule,
      controllers: [
        JobsController,
        JobEventsController,
        BatchesController,
        QueueController,
        ConfigController,
        HealthController,
        FailedWebhooksController,
        GpuCordonController,
        WhoamiController,
        TenantsController,
        SchedulesController,
      ],
      providers: [
        { provide: GATEWAY_CONFIG, useValue: d.config },
        { provide: LOGGER, useValue: d.logger },
        { provide: CLOCK, useValue: d.clock },
        { provide: JOB_TYPES, useValue: d.types },
        { provide: OUTPUT_STORE, useValue: d.outputs },
        { provide: METRICS_REGISTRY, useValue: d.registry },
        { provide: HttpMetrics, useValue: d.metrics },
        { provide: GatewayNats, useValue: d.nats },
        JobsService,
        JobRequestValidator,
        JobTenants,
        JobListService,
        IdempotencyService,
        BatchesService,
        JobEventsService,
        QueueEventsService,
        SseSlots,
        SseStreams,
        GatewayRpc,
        SchedulesService,
        { provide: APP_GUARD, useClass: ApiKeyGuard },
        { provide: APP_PIPE, useClass: StrictValidationPipe },
        { provide: APP_INTERCEPTOR, useFactory: () => new ObserveInterceptor() },
        { provide: APP_FILTER, useFactory: () => new ProblemFilter(d.logger) },
      ],
    };
  }
}
