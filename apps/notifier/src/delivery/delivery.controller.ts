import { Controller, Inject } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import type { WebhookDelivery } from '@gantry/contracts';
import { JetStreamHandler, PoisonMessageError, type JetStreamContext } from '@gantry/jetstream';
import { DeliveryService } from './delivery.service';

function isDelivery(d: unknown): d is WebhookDelivery {
  const x = d as Partial<WebhookDelivery> | null;
  return (
    !!x &&
    x.v === 1 &&
    typeof x.url === 'string' &&
    typeof x.webhookId === 'string' &&
    typeof x.tenant === 'string' &&
    typeof x.attempts === 'number' &&
    typeof x.notBefore === 'number' &&
    typeof x.body === 'object' &&
    x.body !== null
  );
}

@Controller()
export class DeliveryController {
  constructor(@Inject(DeliveryService) private readonly deliveries: DeliveryService) {}

  @JetStreamHandler('deliveries')
  async deliver(@Payload() d: unknown, @Ctx() ctx: JetStreamContext): Promise<void> {
    if (!isDelivery(d)) throw new PoisonMessageError('not a webhook delivery');
    await this.deliveries.handle(d, ctx);
  }
}
