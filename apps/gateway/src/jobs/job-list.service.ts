/**
 * `GET /v1/jobs`: newest first from the listing index pages the leader writes (see the scheduler's
 * list-index-writer). A request reads pages from the tenant's head backwards, filters entries by status, type and
 * priority as the page records them, and reads full records only for the jobs it returns. It examines at most
 * MAX_PAGES pages, so no request scans every job: when a filter is rare the page can be short while `nextCursor`
 * still leads on.
 *
 * Read-your-writes: before reading pages, the request asks the leading scheduler to bring the index up to every job
 * revision stored so far (`list-sync`: the leader waits until its writer has applied the jobs stream up to its last
 * sequence, then writes the dirty pages). So a job answered 202 by any replica — single, batch or idempotent — is in
 * the pages this request reads, under its current status, without a second write on the submit path and without
 * reading any job that is not returned. No leader → 503 (Retry-After), like the queue routes.
 */
import { Inject, Injectable } from '@nestjs/common';
import {
  CHANNELS,
  SCHEDULER_RPC,
  STREAMS,
  SUBJECTS,
  type JobStatus,
  type ListEntry,
  type ListPage,
  type Priority,
} from '@gantry/contracts';
import { decodePayload, type NatsHandle } from '@gantry/jetstream';
import type { StoredMsg } from '@nats-io/jetstream';
import { problems } from '../http/problem';
import { GatewayNats } from '../nats/gateway-nats';
import { GatewayRpc } from '../nats/gateway-rpc';

export interface ListFilter {
  tenant: string;
  status?: JobStatus;
  type?: string;
  priority?: Priority;
  limit: number;
  cursor?: string;
}

interface Cursor {
  /** The page to continue in. */
  b: number;
  /** Continue with entries older than this createSeq. */
  s: number;
}

const MAX_PAGES = 64;

function encodeCursor(c: Cursor): string {
  return Buffer.from(JSON.stringify(c)).toString('base64url');
}

function decodeCursor(raw: string): Cursor {
  try {
    const c = JSON.parse(Buffer.from(raw, 'base64url').toString('utf8')) as Cursor;
    if (Number.isInteger(c.b) && Number.isInteger(c.s) && c.b >= 0 && c.s >= 0) return c;
  } catch {
    // fall through
  }
  throw problems.validation([{ field: 'cursor', message: 'is not a cursor returned by this API' }]);
}

/**
 * One listing message, or null when the broker says there is none (direct get's answer to "no message found").
 * Any other error is a 503 that changes nothing: until v1.1 it was read as "no page", so a broker blip answered 200
 * with a listing missing jobs (or empty), which users read as loss.
 */
async function readListing(nats: NatsHandle, subject: string): Promise<StoredMsg | null> {
  try {
    return await nats.jsm.direct.getMessage(STREAMS.list, { last_by_subj: subject });
  } catch {
    throw problems.unavailable('the listing could not be read (NATS unavailable); try again', 2, 'nats-unavailable');
  }
}

@Injectable()
export class JobListService {
  constructor(
    @Inject(GatewayNats) private readonly nats: GatewayNats,
    @Inject(GatewayRpc) private readonly rpc: GatewayRpc,
  ) {}

  private async page(nats: NatsHandle, tenant: string, bucket: number): Promise<ListPage | undefined> {
    const msg = await readListing(nats, SUBJECTS.listPage(tenant, bucket));
    return msg ? decodePayload(CHANNELS.listPages, msg.data) : undefined;
  }

  /** Ids (newest first) matching the filter, and the cursor to continue from. */
  async find(f: ListFilter): Promise<{ ids: string[]; nextCursor: string | null }> {
    const nats = this.nats.handle();
    const cursor = f.cursor ? decodeCursor(f.cursor) : undefined;
    await this.rpc.call(SCHEDULER_RPC['list-sync']);
    let bucket: number | null;
    let before = Number.MAX_SAFE_INTEGER;
    if (cursor) {
      bucket = cursor.b;
      before = cursor.s;
    } else {
      const head = await readListing(nats, SUBJECTS.listHead(f.tenant));
      bucket = head ? decodePayload(CHANNELS.listHeads, head.data).bucket : null;
    }
    const ids: string[] = [];
    let pages = 0;
    while (bucket !== null && pages < MAX_PAGES) {
      const page = await this.page(nats, f.tenant, bucket);
      pages++;
      if (!page) break;
      const matches = (e: ListEntry) =>
        e[0] < before &&
        (!f.status || e[2] === f.status) &&
        (!f.type || e[3] === f.type) &&
        (!f.priority || e[4] === f.priority);
      for (const e of page.entries) {
        if (!matches(e)) continue;
        ids.push(e[1]);
        if (ids.length === f.limit) {
          const more = page.entries.some((x) => x[0] < e[0]) || page.prev !== null;
          return { ids, nextCursor: more ? encodeCursor({ b: bucket, s: e[0] }) : null };
        }
      }
      bucket = page.prev;
      before = Number.MAX_SAFE_INTEGER;
    }
    // Page budget spent with more pages left: return what was found and where to go on.
    return {
      ids,
      nextCursor:
        bucket !== null && pages >= MAX_PAGES ? encodeCursor({ b: bucket, s: Number.MAX_SAFE_INTEGER }) : null,
    };
  }
}
