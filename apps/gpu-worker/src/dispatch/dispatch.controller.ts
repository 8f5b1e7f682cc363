import { Controller, Inject } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import type { DispatchMessage } from '@gantry/contracts';
import { JetStreamHandler, PoisonMessageError, type JetStreamContext } from '@gantry/jetstream';
import { AttemptRunner } from '../runner/attempt-runner';

/** Thin handler: decode, validate, run the attempt use case; the runner decides the ack. */
@Controller()
export class DispatchController {
  constructor(@Inject(AttemptRunner) private readonly runner: AttemptRunner) {}

  @JetStreamHandler('dispatch')
  async dispatch(@Payload() m: DispatchMessage, @Ctx() ctx: JetStreamContext): Promise<void> {
    if (
      !m ||
      m.v !== 1 ||
      typeof m.jobId !== 'string' ||
      !Number.isInteger(m.attempt) ||
      !Array.isArray(m.gpuIndices)
    ) {
      throw new PoisonMessageError('not a dispatch message');
    }
    await this.runner.handle(m, ctx);
  }
}
