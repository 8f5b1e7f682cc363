/**
 * Gantry on a real 3-node nats-server cluster (loopback, routes, JetStream on every node) with R1 streams — the only
 * safe replication on the 2.9 servers this box has (see replicas-gate.e2e.ts). Clients fail over between nodes when
 * the node they use dies; losing the node that holds the jobs stream makes Gantry unavailable (submits answer 503)
 * until it returns, and then nothing accepted is lost and nothing ran twice (whole-history check).
 * Figures (unavailability, recovery) are printed as `[reliability] …` lines for docs/reliability.md.
 */
import { STREAMS } from '@gantry/contracts';
import { GantryCluster, assertWholeHistory, waitFor, type NatsCluster } from '@gantry/testing';

const report = (what: string, figures: Record<string, unknown>) =>
  process.stdout.write(`[reliability] ${what} ${JSON.stringify(figures)}\n`);

describe('Gantry on a 3-node NATS cluster (R1 streams)', () => {
  let cluster: GantryCluster;
  let nats: NatsCluster;
  const accepted: string[] = [];

  beforeAll(async () => {
    cluster = await GantryCluster.start({ natsNodes: 3, workers: 2, env: { WORKER_SLOTS: '4' } });
    nats = cluster.natsCluster!;
  });

  afterAll(async () => {
    await cluster?.stop();
  });

  /** Submits `n` short jobs; returns how many were answered 202 (kept in `accepted`) and the other statuses seen. */
  async function submitSome(n: number, tag: string): Promise<{ ok: number; refused: number[] }> {
    const refused: number[] = [];
    let ok = 0;
    for (let i = 0; i < n; i++) {
      const r = await cluster
        .api<{ id: string; title?: string }>('POST', '/v1/jobs', {
          type: 'noop',
          input: { durationMs: 50 },
          metadata: { tag },
        })
        .catch(() => ({ status: 0, body: { id: '' } }));
      if (r.status === 202) {
        ok++;
        accepted.push(r.body.id);
      } else {
        refused.push(r.status);
        if (r.status !== 503) process.stdout.write(`submit answered ${r.status}: ${JSON.stringify(r.body)}\n`);
      }
    }
    return { ok, refused };
  }

  const allCompleted = () =>
    waitFor(
      async () => {
        for (const id of accepted) if ((await cluster.job<{ status: string }>(id)).status !== 'completed') return false;
        return true;
      },
      { what: 'every accepted job completed', timeoutMs: 180_000, intervalMs: 500 },
    );

  it('streams live on the cluster, placed by JetStream on some node', async () => {
    expect((await submitSome(10, 'warmup')).ok).toBe(10);
    await allCompleted();
    const where = await nats.streamCluster(STREAMS.jobs);
    expect(nats.nodes.map((n) => n.name)).toContain(where?.leader);
    expect(where?.replicas).toEqual([]); // R1: the leader is the only copy
  });

  it('clients fail over when a node that does not hold the jobs stream dies, and nothing stops', async () => {
    const holder = await nats.streamLeader(STREAMS.jobs);
    const victim = nats.nodes.find((n) => n.name !== holder)!;
    const killedAt = Date.now();
    await victim.server.kill();
    // Streams on the victim (dispatch, buckets: JetStream places each R1 stream on a node of its choice) are away
    // until it returns; submits that need them answer 503. Count what was accepted and what was refused.
    const during = await submitSome(20, 'node-down');
    await victim.server.restart();
    const restartedAt = Date.now();
    await nats.waitForJetStream();
    await allCompleted();
    report('non-holder node kill -9', {
      node: victim.name,
      acceptedWhileDown: during.ok,
      refusedWhileDown: during.refused.length,
      downMs: restartedAt - killedAt,
      allCompletedAfterRestartMs: Date.now() - restartedAt,
    });
    for (const status of during.refused) expect([503, 0]).toContain(status);
  });

  it('losing the node that holds the jobs stream: unavailable until it returns, then nothing lost and nothing run twice', async () => {
    // Work in flight when the node dies.
    expect((await submitSome(30, 'before-loss')).ok).toBe(30);
    const holder = nats.node((await nats.streamLeader(STREAMS.jobs))!);
    const killedAt = Date.now();
    await holder.server.kill();
    const during = await submitSome(5, 'holder-down');
    expect(during.ok).toBe(0); // no write can be acknowledged: a 202 would be a lie
    for (const status of during.refused) expect([503, 0]).toContain(status);

    await holder.server.restart();
    const restartedAt = Date.now();
    const firstAccepted = await waitFor(
      async () => ((await submitSome(1, 'after-return')).ok === 1 ? Date.now() : undefined),
      { what: 'a submit accepted after the node returned', timeoutMs: 120_000, intervalMs: 200 },
    );
    await allCompleted();
    const whole = await assertWholeHistory(cluster.natsUrl, { expectIds: accepted });
    report('jobs-stream holder kill -9', {
      node: holder.name,
      downMs: restartedAt - killedAt,
      submitsAgainAfterRestartMs: firstAccepted - restartedAt,
      allCompletedAfterRestartMs: Date.now() - restartedAt,
      jobs: whole.jobs,
      revisions: whole.revisions,
      lost: 0,
    });
    expect(whole.jobs).toBe(accepted.length);
    // Generous: a node's return, the stream's recovery and 35 jobs on a loaded 2-core machine.
  }, 400_000);
});
