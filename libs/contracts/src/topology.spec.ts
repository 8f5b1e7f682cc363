import { DEFAULT_TOPOLOGY, bucketDeclarations, streamDeclarations, topologyFor } from './topology';

describe('topologyFor', () => {
  it('takes replicas and retention from the variables and keeps the other defaults', () => {
    const t = topologyFor({ NATS_REPLICAS: 3, JOB_RETENTION_HOURS: 2 });
    expect(t).toEqual({ ...DEFAULT_TOPOLOGY, replicas: 3, retentionMs: 7_200_000 });
    expect(streamDeclarations(t).jobs.num_replicas).toBe(3);
    expect(bucketDeclarations(t).workers.replicas).toBe(3);
  });

  it('lets a service set what only it owns, over the defaults', () => {
    const t = topologyFor({ NATS_REPLICAS: 1, JOB_RETENTION_HOURS: 168 }, { leaderLeaseMs: 9_000 });
    expect(t.leaderLeaseMs).toBe(9_000);
    expect(bucketDeclarations(t).leader.ttlMs).toBe(9_000);
    expect(t.webhookAckWaitMs).toBe(DEFAULT_TOPOLOGY.webhookAckWaitMs);
  });
});
