import { Module, type DynamicModule } from '@nestjs/common';
import { SchedulerRpcController } from './rpc/scheduler-rpc.controller';
import { SchedulerService } from './scheduler.service';

@Module({})
export class SchedulerModule {
  /** The service is built in main.ts (it owns NATS and timers); Nest hosts the request/reply endpoints. */
  static register(service: SchedulerService): DynamicModule {
    return {
      module: SchedulerModule,
      controllers: [SchedulerRpcController],
      providers: [{ provide: SchedulerService, useValue: service }],
    };
  }
}
