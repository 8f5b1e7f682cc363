/**
 * The repair path of batch submits. A durable consumer (`gateway_batch_repair_v1`, shared by every gateway replica)
 * receives each batch manifest. A `committed` manifest needs nothing. An `accepted` one is left alone (nak with a
 * delay) until it is BATCH_REPAIR_AFTER_MS old — the gateway that wrote it is normally done by then — and then, unless
 * a `committed` manifest has appeared meanwhile, its missing job records are written from the stored specs and the
 * batch is committed. Creating a job is idempotent (one id, one first revision), so a repair racing a slow original,
 * or two gateways repairing at once, still yield each job once.
 *
 * A plain pull loop rather than the Nest JetStream transport: the gateway is an HTTP application that connects to
 * NATS in the background, and this loop starts once NATS is there; settlement is explicit here (ack, nak with delay).
 */
import { CHANNELS, CONSUMERS, STREAMS, type BatchManifest, type Clock } from '@gantry/contracts';
import { decodePayload, type NatsHandle } from '@gantry/jetstream';
import type { Logger } from '@gantry/telemetry';
import type { ConsumerMessages, JsMsg } from '@nats-io/jetstream';
import { BatchManifests } from './batch-manifests';

export interface BatchRepairOptions {
  /** Age of an accepted, uncommitted manifest before it is repaired. */
  repairAfterMs: number;
  onRepaired?: (batchId: string, created: number) => void;
}

export class BatchRepairer {
  private messages: ConsumerMessages | undefined;
  private loop: Promise<void> | undefined;
  private stopped = false;

  constructor(
    private readonly nats: NatsHandle,
    private readonly clock: Clock,
    private readonly logger: Logger,
    private readonly o: BatchRepairOptions,
  ) {}

  async start(): Promise<void> {
    const consumer = await this.nats.js.consumers.get(STREAMS.batches, CONSUMERS.batchRepair);
    if (this.stopped) return;
    // Few at a time: what a gateway has pulled waits for the AckWait if that gateway dies.
    this.messages = await consumer.consume({ max_messages: 8 });
    this.loop = (async () => {
      for await (const m of this.messages!) {
        await this.handle(m).catch((err: unknown) => {
          this.logger.warn({ err, seq: m.seq }, 'batch repair failed; retrying later');
          m.nak(5_000);
        });
      }
    })();
  }

  /** Decides one manifest's fate. Exposed for tests. */
  async handle(m: JsMsg): Promise<void> {
    let manifest: BatchManifest;
    try {
      manifest = decodePayload(CHANNELS.batches, m.data);
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      this.logger.error({ seq: m.seq, subject: m.subject, reason }, 'not a batch manifest; dropping it');
      m.term();
      return;
    }
    if (manifest.state === 'committed') {
      m.ack();
      return;
    }
    const manifests = new BatchManifests(this.nats, this.clock);
    const latest = await manifests.read(manifest.id);
    if (latest?.state === 'committed') {
      m.ack();
      return;
    }
    const age = this.clock.now().getTime() - Date.parse(manifest.createdAt);
    if (Number.isFinite(age) && age < this.o.repairAfterMs) {
      m.nak(Math.max(50, this.o.repairAfterMs - age));
      return;
    }
    const heartbeat = setInterval(() => m.working(), 5_000);
    try {
      const specs = await manifests.specs(manifest);
      let created = 0;
      const { failed, lastError } = await manifests.createJobs(specs, () => created++);
      if (failed.length > 0)
        throw new Error(`${failed.length} job record(s) could not be written: ${String(lastError)}`, {
          cause: lastError,
        });
      await manifests.commit(manifest);
      if (created > 0) {
        this.logger.warn(
          { batchId: manifest.id, created, total: specs.length },
          'batch repaired: wrote the job records its gateway did not',
        );
      }
      this.o.onRepaired?.(manifest.id, created);
      m.ack();
    } finally {
      clearInterval(heartbeat);
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    // Stopping: a consumer that fails to close expires on the server; the loop's own errors were logged where they
    // happened, here we only wait for it to end.
    await this.messages?.close().catch(() => undefined);
    await this.loop?.catch(() => undefined);
  }
}
