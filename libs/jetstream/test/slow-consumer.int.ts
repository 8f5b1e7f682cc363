/**
 * The scheduler's rebuild consumer (DeliverLastPerSubject over every job subject) takes seconds to create at 1M jobs,
 * longer than the client's API timeout under load. Here a real stream with many subjects and a very short API timeout
 * play that part: the create outlasts the timeout the same way, on a real nats-server.
 */
import { AckPolicy, DeliverPolicy, StorageType, jetstreamManager } from '@nats-io/jetstream';
import { NatsHandle, openSlowOrderedConsumer } from '@gantry/jetstream';
import { NatsServer } from '@gantry/testing';
import { createLogger } from '@gantry/telemetry';

const logger = createLogger('slow-consumer-test', 'silent');
const STREAM = 'SLOW_CREATE';
const N = 30_000;
const SHORT_MS = 20;

async function consumerNames(nats: NatsHandle): Promise<string[]> {
  const names: string[] = [];
  for await (const c of nats.jsm.consumers.list(STREAM)) names.push(c.name);
  return names.sort();
}

describe('opening a consumer whose creation outlasts the API timeout (real nats-server)', () => {
  let server: NatsServer;
  let nats: NatsHandle;

  beforeAll(async () => {
    server = await NatsServer.start();
    nats = await NatsHandle.connect({ servers: [server.url], name: 'slow-consumer-test', logger, timeoutMs: 60_000 });
    await nats.jsm.streams.add({ name: STREAM, subjects: ['slow.>'], storage: StorageType.File });
    // One message per subject, pipelined.
    let next = 0;
    await Promise.all(
      Array.from({ length: 256 }, async () => {
        while (next < N) {
          const i = next++;
          await nats.js.publish(`slow.${i}`, `m${i}`);
        }
      }),
    );
  }, 180_000);

  afterAll(async () => {
    await nats?.drain();
    await server?.dispose();
  });

  afterEach(async () => {
    for (const name of await consumerNames(nats)) await nats.jsm.consumers.delete(STREAM, name);
  });

  it('the trap: a plain create with a timeout shorter than the work times out and leaves a live consumer behind', async () => {
    // The create request alone (the ordered consumer API sends a stream info first, which could be the one to time
    // out on a loaded machine).
    const jsm = await jetstreamManager(nats.nc, { timeout: SHORT_MS, checkAPI: false });
    const started = Date.now();
    await expect(
      jsm.consumers.add(STREAM, {
        name: 'plain_1',
        filter_subject: 'slow.>',
        deliver_policy: DeliverPolicy.LastPerSubject,
        ack_policy: AckPolicy.None,
        mem_storage: true,
        inactive_threshold: 5 * 60 * 1e9,
      }),
    ).rejects.toThrow(/timeout/i);
    // The server carries on with the create: the consumer shows up although the caller got an error.
    const deadline = started + 60_000;
    let names: string[] = [];
    while (Date.now() < deadline && !names.includes('plain_1')) names = await consumerNames(nats);
    expect(names).toEqual(['plain_1']);
  }, 90_000);

  it('retries with a longer timeout, deletes what the timed-out attempts left, and delivers every subject', async () => {
    const timedOut: number[] = [];
    const consumer = await openSlowOrderedConsumer(
      nats,
      STREAM,
      { filter_subjects: 'slow.>', deliver_policy: DeliverPolicy.LastPerSubject },
      {
        timeoutsMs: [SHORT_MS, 120_000],
        backoffMs: () => 10,
        onTimeout: (attempt) => timedOut.push(attempt),
        namePrefix: 'rebuild',
        logger,
        what: 'test',
      },
    );
    expect(timedOut).toEqual([1]);
    // Only the live consumer is left: the first attempt's is gone (not waiting for the server's inactivity expiry).
    expect(await consumerNames(nats)).toEqual(['rebuild-a2_1']);

    const seen = new Set<string>();
    const messages = await consumer.consume({ max_messages: 2_048 });
    for await (const m of messages) {
      seen.add(m.subject);
      if (m.info.pending === 0) break;
    }
    expect(seen.size).toBe(N);
  }, 120_000);

  it('throws after the last attempt, and leaves no consumer behind', async () => {
    const timedOut: number[] = [];
    await expect(
      openSlowOrderedConsumer(
        nats,
        STREAM,
        { filter_subjects: 'slow.>', deliver_policy: DeliverPolicy.LastPerSubject },
        {
          timeoutsMs: [SHORT_MS],
          attempts: 2,
          backoffMs: () => 10,
          onTimeout: (attempt) => timedOut.push(attempt),
          namePrefix: 'giveup',
          logger,
          what: 'test',
        },
      ),
    ).rejects.toThrow(/timeout/i);
    expect(timedOut).toEqual([1, 2]);
    expect(await consumerNames(nats)).toEqual([]);
  }, 120_000);
});
