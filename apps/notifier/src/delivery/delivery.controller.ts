import { Controller, Inject } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import { CHANNELS, type WebhookDelivery } from '@gantry/contracts';
import { JetStreamHandler, type JetStreamContext } from '@gantry/jetstream';
import { DeliveryService } from './delivery.service';

@Controller()
export class DeliveryController {
  constructor(@Inject(DeliveryService) private readonly deliveries: DeliveryService) {}

  /** The transport has checked the delivery against the webhooks channel (a malformed one never gets here). */
  @JetStreamHandler('deliveries', CHANNELS.webhooks)
  async deliver(@Payload() d: WebhookDelivery, @Ctx() ctx: JetStreamContext): Promise<void> {
    await this.deliveries.handle(d, ctx);
  }
}
