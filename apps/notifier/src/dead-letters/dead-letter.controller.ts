import { Controller, Inject } from '@nestjs/common';
import { Payload } from '@nestjs/microservices';
import {
  NOTIFIER_RPC,
  type FailedListReply,
  type FailedListRequest,
  type FailedWebhookView,
  type ReplayRequest,
} from '@gantry/contracts';
import { RpcHandler } from '@gantry/jetstream';
import { DeadLetterService } from './dead-letter.service';

/**
 * Request/reply for the gateway's `/v1/webhooks/failed` routes; any notifier replica answers (queue group). The
 * transport has checked each request against its declaration (400 otherwise).
 */
@Controller()
export class DeadLetterController {
  constructor(@Inject(DeadLetterService) private readonly deadLetters: DeadLetterService) {}

  @RpcHandler(NOTIFIER_RPC['failed-list'])
  list(@Payload() req: FailedListRequest): Promise<FailedListReply> {
    return this.deadLetters.list(req);
  }

  @RpcHandler(NOTIFIER_RPC.replay)
  replay(@Payload() req: ReplayRequest): Promise<FailedWebhookView> {
    return this.deadLetters.replay(req.id);
  }
}
