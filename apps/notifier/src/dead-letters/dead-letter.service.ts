/**
 * Deliveries that exhausted their attempts, in the dead-letter stream (`gantry.v1.webhook_dlq.<tenant>`, kept for
 * JOB_RETENTION_HOURS). Its stream sequence is the entry's id. Listing reads forward from a cursor (oldest first, as a
 * dead-letter queue is worked through) with direct gets, so a page costs `limit + 1` reads whatever the stream holds.
 * A replay puts the delivery back into the deliveries stream with its attempts reset and the same `webhook-id`, then
 * removes the entry: if the replay fails again it comes back as a new entry.
 */
import {
  CHANNELS,
  SUBJECT_TOKEN,
  SUBJECTS,
  STREAMS,
  type FailedListReply,
  type FailedListRequest,
  type FailedWebhook,
  type FailedWebhookView,
  type WebhookDelivery,
} from '@gantry/contracts';
import { decodePayload, publishJson, RpcError, type NatsHandle } from '@gantry/jetstream';
import type { Logger } from '@gantry/telemetry';
import type { StoredMsg } from '@nats-io/jetstream';
import type { DeliveryQueue } from '../delivery/tenant-lanes';
import type { NotifierMetrics } from '../notifier-metrics';

const DLQ_PREFIX = SUBJECTS.webhookDlqAll.slice(0, -1);
export const MAX_PAGE = 500;

export function toFailedView(id: number, f: FailedWebhook): FailedWebhookView {
  return {
    id: String(id),
    webhookId: f.delivery.webhookId,
    jobId: f.delivery.jobId,
    type: f.delivery.type,
    url: f.delivery.url,
    attempts: f.attempts,
    lastStatus: f.lastStatus ?? null,
    lastError: f.lastError ?? null,
    failedAt: f.failedAt,
  };
}

/** A failed-list or replay request that cannot be served as asked (400/404 for the gateway). */
function badRequest(detail: string): RpcError {
  return new RpcError(400, 'Invalid request', detail);
}

function notFound(id: string): RpcError {
  return new RpcError(404, 'Not found', `no failed webhook ${id}`);
}

function unavailable(id: string): RpcError {
  return new RpcError(
    503,
    'Service unavailable',
    `failed webhook ${id} could not be read (NATS unavailable); nothing changed`,
  );
}

function parseSeq(raw: string | undefined, what: string): number | undefined {
  if (raw === undefined) return undefined;
  if (!/^[1-9][0-9]{0,15}$/.test(raw)) throw badRequest(`${what} is not valid`);
  return Number(raw);
}

export class DeadLetterService {
  constructor(
    private readonly nats: NatsHandle,
    private readonly metrics: NotifierMetrics,
    private readonly logger: Logger,
    private readonly queue: DeliveryQueue,
  ) {}

  /** Records a delivery that will not be attempted again. Idempotent per (delivery, attempts) by message id. */
  async record(d: WebhookDelivery, facts: { attempts: number; lastStatus?: number; lastError?: string }) {
    const failed: FailedWebhook = {
      v: 1,
      delivery: {
        ...d,
        attempts: facts.attempts,
        ...(facts.lastStatus !== undefined ? { lastStatus: facts.lastStatus } : {}),
        ...(facts.lastError !== undefined ? { lastError: facts.lastError } : {}),
      },
      attempts: facts.attempts,
      ...(facts.lastStatus !== undefined ? { lastStatus: facts.lastStatus } : {}),
      ...(facts.lastError !== undefined ? { lastError: facts.lastError } : {}),
      failedAt: new Date().toISOString(),
    };
    await publishJson(this.nats.js, SUBJECTS.webhookDlq(d.tenant), failed, {
      msgID: `${d.webhookId}${d.replayOf ? `.r${d.replayOf}` : ''}.dlq`,
      spanName: 'webhook dead-letter',
    });
    this.metrics.deadLettered();
    this.logger.warn(
      { webhookId: d.webhookId, jobId: d.jobId, url: d.url, attempts: facts.attempts, lastError: facts.lastError },
      'webhook dead-lettered',
    );
  }

  async list(req: FailedListRequest): Promise<FailedListReply> {
    const limit = req.limit ?? 50;
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE)
      throw badRequest(`limit must be an integer from 1 to ${MAX_PAGE}`);
    const from = parseSeq(req.cursor, 'cursor') ?? 1;
    if (req.tenant !== undefined && (typeof req.tenant !== 'string' || !SUBJECT_TOKEN.test(req.tenant)))
      throw badRequest('tenant is not a tenant name');
    const filter = req.tenant ? SUBJECTS.webhookDlq(req.tenant) : SUBJECTS.webhookDlqAll;
    const items: FailedWebhookView[] = [];
    let seq = from;
    for (;;) {
      const m = await this.nats.jsm.direct.getMessage(STREAMS.webhookDlq, { seq, next_by_subj: filter });
      if (!m) return { items, nextCursor: null };
      if (items.length === limit) return { items, nextCursor: String(m.seq) };
      const f = this.decode(m);
      if (f) items.push(toFailedView(m.seq, f));
      seq = m.seq + 1;
    }
  }

  /** Sends a dead-lettered delivery again (same webhook-id, attempts from zero) and removes the entry. */
  async replay(rawId: string): Promise<FailedWebhookView> {
    if (typeof rawId !== 'string' || !/^[1-9][0-9]{0,15}$/.test(rawId)) throw notFound(String(rawId));
    const id = Number(rawId);
    // `getMessage` answers null only for the server's "no message found" (JetStreamApiCodes.NoMessageFound); any other
    // error is the broker failing, not an absent entry: a 503 the operator can retry, never a 404 (until v1.1 every
    // error was read as "no such failed webhook").
    let m: StoredMsg | null;
    try {
      m = await this.nats.jsm.streams.getMessage(STREAMS.webhookDlq, { seq: id });
    } catch (err) {
      this.logger.warn({ err, id }, 'dead letter could not be read for a replay');
      throw unavailable(rawId);
    }
    if (!m || !m.subject.startsWith(DLQ_PREFIX)) throw notFound(rawId);
    const f = this.decode(m);
    if (!f) throw notFound(rawId);
    const d = f.delivery;
    const again: WebhookDelivery = {
      v: 1,
      webhookId: d.webhookId,
      jobId: d.jobId,
      tenant: d.tenant,
      type: d.type,
      url: d.url,
      ...(d.callbackToken ? { callbackToken: d.callbackToken } : {}),
      attempts: 0,
      notBefore: Date.now(),
      body: d.body,
      replayOf: String(id),
    };
    // The message id makes a repeated replay of the same entry (a retried request) one delivery.
    await this.queue.publish(again, { msgID: `${d.webhookId}.r${id}`, spanName: 'webhook replay' });
    await this.nats.jsm.streams.deleteMessage(STREAMS.webhookDlq, id, false).catch((err: unknown) => {
      // Already removed by a concurrent replay: the delivery is queued either way.
      this.logger.debug({ err: String(err), id }, 'dead letter already removed');
    });
    this.metrics.replayed();
    this.logger.info({ id, webhookId: d.webhookId, jobId: d.jobId, url: d.url }, 'webhook replay queued');
    return toFailedView(id, f);
  }

  private decode(m: StoredMsg): FailedWebhook | undefined {
    try {
      return decodePayload(CHANNELS.webhookDlq, m.data);
    } catch (err) {
      this.logger.warn({ seq: m.seq, reason: String(err) }, 'undecodable dead letter skipped');
      return undefined;
    }
  }
}
