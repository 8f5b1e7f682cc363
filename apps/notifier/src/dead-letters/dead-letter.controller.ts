import { Controller, Inject } from '@nestjs/common';
import { MessagePattern, Payload } from '@nestjs/microservices';
import { SUBJECTS, type FailedListReply, type FailedListRequest, type FailedWebhookView } from '@gantry/contracts';
import { RpcError } from '@gantry/jetstream';
import { DeadLetterService } from './dead-letter.service';

/** Request/reply for the gateway's `/v1/webhooks/failed` routes; any notifier replica answers (queue group). */
@Controller()
export class DeadLetterController {
  constructor(@Inject(DeadLetterService) private readonly deadLetters: DeadLetterService) {}

  @MessagePattern(SUBJECTS.notifierRpc('failed-list'))
  list(@Payload() req: Partial<FailedListRequest> | undefined): Promise<FailedListReply> {
    const r = req ?? {};
    if (r.cursor !== undefined && typeof r.cursor !== 'string') throw new RpcError(400, 'Invalid request', 'cursor');
    return this.deadLetters.list({
      limit: r.limit ?? 50,
      ...(r.cursor !== undefined ? { cursor: r.cursor } : {}),
      ...(r.tenant !== undefined ? { tenant: r.tenant } : {}),
    });
  }

  @MessagePattern(SUBJECTS.notifierRpc('replay'))
  replay(@Payload() req: { id?: unknown } | undefined): Promise<FailedWebhookView> {
    return this.deadLetters.replay(typeof req?.id === 'string' ? req.id : '');
  }
}
