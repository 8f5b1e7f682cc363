import { Controller, Inject } from '@nestjs/common';
import { Payload } from '@nestjs/microservices';
import type { JobEvent } from '@gantry/contracts';
import { JetStreamHandler, PoisonMessageError } from '@gantry/jetstream';
import { IntakeService } from './intake.service';

@Controller()
export class IntakeController {
  constructor(@Inject(IntakeService) private readonly intake: IntakeService) {}

  @JetStreamHandler('intake')
  async onEvent(@Payload() e: JobEvent): Promise<void> {
    if (!e || typeof e.type !== 'string' || !e.job || typeof e.job.id !== 'string')
      throw new PoisonMessageError('not a job event');
    await this.intake.handle(e);
  }
}
