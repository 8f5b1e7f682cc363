import { Module, type DynamicModule } from '@nestjs/common';
import { DeliveryController } from './delivery/delivery.controller';
import { DeliveryService } from './delivery/delivery.service';
import { IntakeController } from './intake/intake.controller';
import { IntakeService } from './intake/intake.service';

@Module({})
export class NotifierModule {
  static register(intake: IntakeService, deliveries: DeliveryService): DynamicModule {
    return {
      module: NotifierModule,
      controllers: [IntakeController, DeliveryController],
      providers: [
        { provide: IntakeService, useValue: intake },
        { provide: DeliveryService, useValue: deliveries },
      ],
    };
  }
}
