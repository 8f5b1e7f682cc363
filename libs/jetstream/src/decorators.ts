import { EventPattern } from '@nestjs/microservices';

/**
 * Marks a controller method as the handler of a JetStream consumer binding (see {@link JetStreamServerOptions}).
 * The method receives the decoded payload (`@Payload()`) and a {@link JetStreamContext} (`@Ctx()`).
 */
export function JetStreamHandler(binding: string): MethodDecorator {
  return EventPattern<string>(binding);
}
