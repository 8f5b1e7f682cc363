import { Module, type DynamicModule } from '@nestjs/common';
import { DispatchController } from './dispatch/dispatch.controller';
import { AttemptRunner } from './runner/attempt-runner';

@Module({})
export class WorkerModule {
  static register(runner: AttemptRunner): DynamicModule {
    return {
      module: WorkerModule,
      controllers: [DispatchController],
      providers: [{ provide: AttemptRunner, useValue: runner }],
    };
  }
}
