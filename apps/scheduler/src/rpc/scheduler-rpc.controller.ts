/**
 * Request/reply endpoints the gateway calls, one per `SCHEDULER_RPC` declaration (the compiler checks each handler
 * against its request and reply types; the transport answers a 400 to a request that fails the declaration's check,
 * e.g. a queue configuration out of `QUEUE_CONFIG_BOUNDS`). Every scheduler replica subscribes; only the leader
 * answers (standbys stay silent), so a caller gets the leader's view or a timeout that it turns into a 503.
 */
import { Controller, Inject } from '@nestjs/common';
import { Payload } from '@nestjs/microservices';
import { SCHEDULER_RPC, type PositionsRequest, type QueueConfigUpdate, type TenantsRequest } from '@gantry/contracts';
import { NO_REPLY, RpcError, RpcHandler } from '@gantry/jetstream';
import { SchedulerService } from '../scheduler.service';

@Controller()
export class SchedulerRpcController {
  constructor(@Inject(SchedulerService) private readonly scheduler: SchedulerService) {}

  private lead<T>(fn: () => T): T | typeof NO_REPLY {
    return this.scheduler.isLeader ? fn() : NO_REPLY;
  }

  @RpcHandler(SCHEDULER_RPC.queue)
  queue() {
    return this.lead(() => this.scheduler.queueState());
  }

  @RpcHandler(SCHEDULER_RPC.metrics)
  metrics() {
    return this.lead(() => this.scheduler.queueMetrics());
  }

  @RpcHandler(SCHEDULER_RPC.concurrency)
  concurrency() {
    return this.lead(() => this.scheduler.concurrency());
  }

  @RpcHandler(SCHEDULER_RPC.workers)
  workers() {
    return this.lead(() => this.scheduler.workers());
  }

  @RpcHandler(SCHEDULER_RPC.positions)
  positions(@Payload() req: PositionsRequest) {
    return this.lead(() => this.scheduler.positions(req));
  }

  @RpcHandler(SCHEDULER_RPC.tenants)
  tenants(@Payload() req: TenantsRequest) {
    return this.lead(() => {
      const tenant = req.tenant;
      if (tenant !== undefined && !/^[A-Za-z0-9_-]{1,64}$/.test(tenant))
        throw new RpcError(400, 'Invalid tenant', 'tenant must match [A-Za-z0-9_-]{1,64}');
      return this.scheduler.tenants(tenant === undefined ? {} : { tenant });
    });
  }

  @RpcHandler(SCHEDULER_RPC.pause)
  pause() {
    return this.lead(() => this.scheduler.pause());
  }

  @RpcHandler(SCHEDULER_RPC.resume)
  resume() {
    return this.lead(() => this.scheduler.resume());
  }

  @RpcHandler(SCHEDULER_RPC.drain)
  drain() {
    return this.lead(() => this.scheduler.drain());
  }

  @RpcHandler(SCHEDULER_RPC.clear)
  clear() {
    return this.lead(() => this.scheduler.clear());
  }

  @RpcHandler(SCHEDULER_RPC['list-sync'])
  listSync() {
    return this.lead(() => this.scheduler.listSync());
  }

  @RpcHandler(SCHEDULER_RPC.config)
  config(@Payload() update: QueueConfigUpdate) {
    return this.lead(() => this.scheduler.updateConfig(update));
  }
}
