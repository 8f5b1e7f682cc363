import { Module, type DynamicModule } from '@nestjs/common';
import { DeadLetterController } from './dead-letters/dead-letter.controller';
import { DeadLetterService } from './dead-letters/dead-letter.service';
import { DeliveryController } from './delivery/delivery.controller';
import { DeliveryService } from './delivery/delivery.service';
import { IntakeController } from './intake/intake.controller';
import { IntakeService } from './intake/intake.service';

export interface NotifierServices {
  intake: IntakeService;
  deliveries: DeliveryService;
  deadLetters: DeadLetterService;
}

@Module({})
export class NotifierModule {
  static register(s: NotifierServices): DynamicModule {
    return {
      module: NotifierModule,
      controllers: [IntakeController, DeliveryController, DeadLetterController],
      providers: [
        { provide: IntakeService, useValue: s.intake },
        { provide: DeliveryService, useValue: s.deliveries },
        { provide: DeadLetterService, useValue: s.deadLetters },
      ],
    };
  }
}
