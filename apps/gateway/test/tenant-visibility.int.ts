/**
 * No route shows a client another tenant's job ids (API.md §3), against a real nats-server and the real gateway: the
 * test plays the scheduler's part for `GET /v1/workers` (a view naming running jobs of two tenants, created by real
 * submits), and each client key must see only its own tenant's ids; the admin key sees every id. The same holds
 * across the whole stack in test/e2e/tenant-isolation.e2e.ts.
 */
import { SUBJECTS, type WorkerView } from '@gantry/contracts';
import { replyOk } from '@gantry/jetstream';
import { ADMIN, CLIENT, OTHER, startStack, type Client } from './harness';

describe('tenant visibility of job ids (real NATS)', () => {
  let s: Awaited<ReturnType<typeof startStack>>;
  let api: Client;
  let mine: string[];
  let theirs: string[];
  let view: WorkerView[];

  beforeAll(async () => {
    s = await startStack();
    api = s.api;
    const submit = async (key: string) =>
      (await api.as(key).json<{ id: string }>('POST', '/v1/jobs', { type: 'noop', input: {} })).body.id;
    mine = [await submit(CLIENT), await submit(CLIENT)];
    theirs = [await submit(OTHER), await submit(OTHER)];
    const worker = (id: string, runningJobs: string[]): WorkerView => ({
      id,
      pool: 'default',
      slots: 4,
      busy: runningJobs.length,
      gpus: [],
      runningJobs,
      lastHeartbeatAt: new Date().toISOString(),
      draining: false,
    });
    // Interleaved, plus an id no job has any more (retention): a client sees neither the other tenant's nor that one.
    view = [worker('w1', [mine[0]!, theirs[0]!, '01ZZZZZZZZZZZZZZZZZZZZZZZZ']), worker('w2', [theirs[1]!, mine[1]!])];
    s.handle.nc.subscribe(SUBJECTS.schedulerRpc('workers'), { callback: (_e, m) => replyOk(m, view) });
  });
  afterAll(async () => s?.stop());

  const workers = async (key: string) => {
    const a = await api.as(key).json<WorkerView[]>('GET', '/v1/workers');
    expect(a.status).toBe(200);
    return a.body;
  };

  it('a client key sees only its own tenant’s running job ids', async () => {
    const body = await workers(CLIENT);
    expect(body.map((w) => [w.id, w.runningJobs])).toEqual([
      ['w1', [mine[0]]],
      ['w2', [mine[1]]],
    ]);
    for (const id of theirs) expect(JSON.stringify(body)).not.toContain(id);
    // Everything else of the view is as the scheduler gave it.
    expect(body[0]).toMatchObject({ pool: 'default', slots: 4, busy: 3, draining: false });
  });

  it('the other tenant’s key sees only its ids; the admin key sees every id', async () => {
    expect((await workers(OTHER)).map((w) => w.runningJobs)).toEqual([[theirs[0]], [theirs[1]]]);
    expect((await workers(ADMIN)).map((w) => w.runningJobs)).toEqual(view.map((w) => w.runningJobs));
  });

  it('the job routes answer another tenant’s job ids with 404 (the listing is checked in the e2e test)', async () => {
    for (const path of [`/v1/jobs/${theirs[0]}`, `/v1/jobs/${theirs[0]}/events`]) {
      expect((await api.as(CLIENT).json('GET', path)).status).toBe(404);
    }
    expect((await api.as(OTHER).json('GET', `/v1/jobs/${theirs[0]}`)).status).toBe(200);
    expect((await api.as(CLIENT).json('POST', `/v1/jobs/${theirs[0]}/cancel`)).status).toBe(404);
  });
});
