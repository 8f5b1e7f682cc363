/**
 * The start-up every scheduler integration test repeated: a real nats-server for one `describe` block, one connection
 * to it, and the streams and buckets the test names provisioned as the services provision them; drained and disposed
 * after the block. (Not in @gantry/testing: that library sits below @gantry/jetstream in the layers.)
 */
import { NatsHandle, provision, type Topology } from '@gantry/jetstream';
import { NatsServer } from '@gantry/testing';
import type { Logger } from '@gantry/telemetry';

export interface RealNats {
  /** Set once the block's `beforeAll` has run. */
  readonly server: NatsServer;
  readonly nats: NatsHandle;
}

/** Call inside `describe`: registers the block's `beforeAll` (start, connect, provision) and `afterAll`. */
export function realNats(name: string, logger: Logger, topology: Topology): RealNats {
  let server: NatsServer | undefined;
  let nats: NatsHandle | undefined;
  beforeAll(async () => {
    server = await NatsServer.start();
    nats = await NatsHandle.connect({ servers: [server.url], name, logger });
    await provision(nats, topology, logger);
  });
  afterAll(async () => {
    await nats?.drain();
    await server?.dispose();
  });
  const started = <T>(v: T | undefined): T => {
    if (v === undefined) throw new Error('realNats: used before its beforeAll ran');
    return v;
  };
  return {
    get server() {
      return started(server);
    },
    get nats() {
      return started(nats);
    },
  };
}
