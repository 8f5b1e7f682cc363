/**
 * Request/reply endpoints the gateway calls. Every scheduler replica subscribes; only the leader answers (standbys
 * stay silent), so a caller gets the leader's view or a timeout that it turns into a 503.
 */
import { Controller, Inject } from '@nestjs/common';
import { MessagePattern, Payload } from '@nestjs/microservices';
import { SUBJECTS, type PositionsRequest, type QueueConfigUpdate, type TenantsRequest } from '@gantry/contracts';
import { NO_REPLY, RpcError } from '@gantry/jetstream';
import { SchedulerService } from '../scheduler.service';

@Controller()
export class SchedulerRpcController {
  constructor(@Inject(SchedulerService) private readonly scheduler: SchedulerService) {}

  private lead<T>(fn: () => T): T | typeof NO_REPLY {
    return this.scheduler.isLeader ? fn() : NO_REPLY;
  }

  @MessagePattern(SUBJECTS.schedulerRpc('queue'))
  queue() {
    return this.lead(() => this.scheduler.queueState());
  }

  @MessagePattern(SUBJECTS.schedulerRpc('metrics'))
  metrics() {
    return this.lead(() => this.scheduler.queueMetrics());
  }

  @MessagePattern(SUBJECTS.schedulerRpc('concurrency'))
  concurrency() {
    return this.lead(() => this.scheduler.concurrency());
  }

  @MessagePattern(SUBJECTS.schedulerRpc('workers'))
  workers() {
    return this.lead(() => this.scheduler.workers());
  }

  @MessagePattern(SUBJECTS.schedulerRpc('positions'))
  positions(@Payload() req: PositionsRequest) {
    return this.lead(() => this.scheduler.positions(req));
  }

  @MessagePattern(SUBJECTS.schedulerRpc('tenants'))
  tenants(@Payload() req: TenantsRequest) {
    return this.lead(() => {
      const tenant = req?.tenant;
      if (tenant !== undefined && (typeof tenant !== 'string' || !/^[A-Za-z0-9_-]{1,64}$/.test(tenant)))
        throw new RpcError(400, 'Invalid tenant', 'tenant must match [A-Za-z0-9_-]{1,64}');
      return this.scheduler.tenants(tenant === undefined ? {} : { tenant });
    });
  }

  @MessagePattern(SUBJECTS.schedulerRpc('pause'))
  pause() {
    return this.lead(() => this.scheduler.pause());
  }

  @MessagePattern(SUBJECTS.schedulerRpc('resume'))
  resume() {
    return this.lead(() => this.scheduler.resume());
  }

  @MessagePattern(SUBJECTS.schedulerRpc('drain'))
  drain() {
    return this.lead(() => this.scheduler.drain());
  }

  @MessagePattern(SUBJECTS.schedulerRpc('clear'))
  clear() {
    return this.lead(() => this.scheduler.clear());
  }

  @MessagePattern(SUBJECTS.schedulerRpc('list-sync'))
  listSync() {
    return this.lead(() => this.scheduler.listSync());
  }

  @MessagePattern(SUBJECTS.schedulerRpc('config'))
  config(@Payload() update: QueueConfigUpdate) {
    return this.lead(() => {
      const bad = (v: unknown) => v !== undefined && (typeof v !== 'number' || !Number.isInteger(v) || v < 0);
      if (!update || bad(update.maxConcurrentJobs) || bad(update.maxQueueSize) || update.maxQueueSize === 0) {
        throw new RpcError(
          400,
          'Invalid configuration',
          'maxConcurrentJobs must be an integer ≥ 0 and maxQueueSize ≥ 1',
        );
      }
      return this.scheduler.updateConfig(update);
    });
  }
}
