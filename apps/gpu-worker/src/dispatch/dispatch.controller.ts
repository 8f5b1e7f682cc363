import { Controller, Inject } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import { CHANNELS, type DispatchPayload } from '@gantry/contracts';
import { JetStreamHandler, type JetStreamContext } from '@gantry/jetstream';
import { AttemptRunner } from '../runner/attempt-runner';

/**
 * Thin handler: the transport has checked the payload against the dispatch channel (a malformed one — a batch
 * included — is terminated as poison before it gets here); the runner runs its attempts (one, or a batch) and decides
 * the ack.
 */
@Controller()
export class DispatchController {
  constructor(@Inject(AttemptRunner) private readonly runner: AttemptRunner) {}

  @JetStreamHandler('dispatch', CHANNELS.dispatch)
  async dispatch(@Payload() m: DispatchPayload, @Ctx() ctx: JetStreamContext): Promise<void> {
    await this.runner.handle(m, ctx);
  }
}
