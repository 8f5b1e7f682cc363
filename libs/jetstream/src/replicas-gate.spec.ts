import { bucketDeclarations, streamDeclarations, topologyFor } from '@gantry/contracts';
import { assertReplicasSupported, replicasOf, MIN_SERVER_FOR_REPLICAS } from './provision';
import { UnsupportedServerError } from './errors';

describe('NATS_REPLICAS gate on the server version', () => {
  it('refuses replicas > 1 below 2.11.0 with a fatal error that says why and what to do', () => {
    expect(MIN_SERVER_FOR_REPLICAS).toBe('2.11.0');
    for (const v of ['2.9.10', '2.10.29', '2.10.99-beta', '0.0.0']) {
      let err: unknown;
      try {
        assertReplicasSupported(v, 3);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(UnsupportedServerError);
      const e = err as UnsupportedServerError;
      expect(e.exitCode).toBe(69);
      expect(e.message).toContain(`NATS_REPLICAS=3 needs nats-server >= 2.11.0 (connected: ${v})`);
      expect(e.message).toContain('NATS_REPLICAS=1');
    }
  });

  it('allows R1 anywhere and any replicas from 2.11.0 on', () => {
    expect(() => assertReplicasSupported('2.9.10', 1)).not.toThrow();
    for (const v of ['2.11.0', '2.11.0-RC.1', '2.12.3', '3.0.0'])
      expect(() => assertReplicasSupported(v, 3)).not.toThrow();
  });

  it('reads the replicas a topology asks for from its streams and buckets', () => {
    const declared = (replicas: number) => {
      const t = topologyFor({ NATS_REPLICAS: replicas, JOB_RETENTION_HOURS: 1 });
      return { streams: [streamDeclarations(t).jobs], buckets: [bucketDeclarations(t).config] };
    };
    expect(replicasOf({})).toBe(1);
    expect(replicasOf(declared(1))).toBe(1);
    expect(replicasOf(declared(3))).toBe(3);
    expect(replicasOf({ buckets: declared(3).buckets })).toBe(3);
  });
});
