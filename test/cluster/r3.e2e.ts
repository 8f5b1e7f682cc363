/**
 * R3 streams — what production runs — on a 3-node cluster, when the nats-server on the PATH (or NATS_SERVER_BIN) is
 * 2.11.0 or newer: on older servers replicated compare-and-set is unsafe and Gantry refuses NATS_REPLICAS > 1
 * (replicas-gate.e2e.ts), so this suite skips itself there. It is also how a user checks their own server version:
 * `NATS_SERVER_BIN=/path/to/nats-server npm run chaos -- test/cluster/r3.e2e.ts`.
 * Killing the jobs stream's leader must cost a leader election (a few seconds of 503), never an accepted job.
 */
import { STREAMS } from '@gantry/contracts';
import { versionAtLeast } from '@gantry/jetstream';
import { GantryCluster, assertWholeHistory, natsServerVersion, waitFor, type NatsCluster } from '@gantry/testing';

const version = natsServerVersion();

(versionAtLeast(version, '2.11.0') ? describe : describe.skip)(`R3 streams on nats-server ${version}`, () => {
  let cluster: GantryCluster;
  let nats: NatsCluster;
  const accepted: string[] = [];

  beforeAll(async () => {
    cluster = await GantryCluster.start({ natsNodes: 3, workers: 2, env: { NATS_REPLICAS: '3', WORKER_SLOTS: '4' } });
    nats = cluster.natsCluster!;
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  const submit = async (): Promise<boolean> => {
    const r = await cluster
      .api<{ id: string }>('POST', '/v1/jobs', { type: 'noop', input: { durationMs: 50 } })
      .catch(() => ({ status: 0, body: { id: '' } }));
    if (r.status === 202) accepted.push(r.body.id);
    else expect([503, 0]).toContain(r.status);
    return r.status === 202;
  };

  it('keeps every stream on three nodes and survives the loss of the jobs stream leader', async () => {
    for (let i = 0; i < 30; i++) expect(await submit()).toBe(true);
    const before = await nats.streamCluster(STREAMS.jobs);
    expect(before?.replicas).toHaveLength(2);
    const leader = nats.node(before!.leader!);
    const killedAt = Date.now();
    await leader.server.kill();
    await waitFor(() => submit(), { what: 'a submit accepted under a new leader', timeoutMs: 60_000, intervalMs: 200 });
    const electedMs = Date.now() - killedAt;
    const after = await nats.streamLeader(STREAMS.jobs);
    expect(after).not.toBe(leader.name);
    await leader.server.restart();
    await waitFor(
      async () => {
        for (const id of accepted) if ((await cluster.job<{ status: string }>(id)).status !== 'completed') return false;
        return true;
      },
      { what: 'every accepted job completed', timeoutMs: 180_000, intervalMs: 500 },
    );
    const whole = await assertWholeHistory(cluster.natsUrl, { expectIds: accepted });
    process.stdout.write(
      `[reliability] R3 jobs-stream leader kill -9 ${JSON.stringify({ version, electedMs, jobs: whole.jobs, lost: 0 })}\n`,
    );
  });
});
