import { Controller, Inject } from '@nestjs/common';
import { Payload } from '@nestjs/microservices';
import { CHANNELS, type JobEvent } from '@gantry/contracts';
import { JetStreamHandler } from '@gantry/jetstream';
import { IntakeService } from './intake.service';

@Controller()
export class IntakeController {
  constructor(@Inject(IntakeService) private readonly intake: IntakeService) {}

  /** The transport has checked the event against the jobs channel (a malformed one never gets here). */
  @JetStreamHandler('intake', CHANNELS.jobs)
  async onEvent(@Payload() e: JobEvent): Promise<void> {
    await this.intake.handle(e);
  }
}
