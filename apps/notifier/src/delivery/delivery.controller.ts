import { Controller, Inject } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import type { WebhookDelivery } from '@gantry/contracts';
import { JetStreamHandler, PoisonMessageError, type JetStreamContext } from '@gantry/jetstream';
import { DeliveryService } from './delivery.service';

@Controller()
export class DeliveryController {
  constructor(@Inject(DeliveryService) private readonly deliveries: DeliveryService) {}

  @JetStreamHandler('deliveries')
  async deliver(@Payload() d: WebhookDelivery, @Ctx() ctx: JetStreamContext): Promise<void> {
    if (!d || d.v !== 1 || typeof d.url !== 'string' || typeof d.webhookId !== 'string')
      throw new PoisonMessageError('not a delivery');
    await this.deliveries.handle(d, ctx);
  }
}
