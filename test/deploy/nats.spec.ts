/**
 * deploy/nats/values.yaml (values for the official nats Helm chart) holds the durability settings Gantry needs in
 * production, and the addresses it yields are the ones the Kubernetes manifests and docs use.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { compareVersions, natsInstall, natsValues } from './support/nats';

const ROOT = join(__dirname, '..', '..');
const MIN_NATS = '2.12.3';

describe('deploy/nats/values.yaml', () => {
  const v = natsValues();

  it('runs three clustered servers with JetStream on the file store only', () => {
    expect(v.config.cluster).toMatchObject({ enabled: true, replicas: 3 });
    expect(v.config.jetstream.enabled).toBe(true);
    expect(v.config.jetstream.fileStore).toMatchObject({ enabled: true, pvc: { enabled: true } });
    expect(v.config.jetstream.memoryStore?.enabled ?? false).toBe(false);
  });

  it('fsyncs every write before acknowledging it (sync_interval: always)', () => {
    expect(v.config.jetstream.merge).toMatchObject({ sync_interval: 'always' });
  });

  it(`pins a nats-server release >= ${MIN_NATS}`, () => {
    const version = /^(\d+\.\d+\.\d+)(-[a-z0-9]+)?$/.exec(v.container.image.tag)?.[1];
    expect(version).toBeDefined();
    expect(compareVersions(version!, MIN_NATS)).toBeGreaterThanOrEqual(0);
  });

  it('spreads the servers over nodes and keeps quorum through disruptions', () => {
    expect(v.podTemplate.topologySpreadConstraints['kubernetes.io/hostname']).toEqual({
      maxSkew: 1,
      whenUnsatisfiable: 'DoNotSchedule',
    });
    expect(v.podTemplate.topologySpreadConstraints['topology.kubernetes.io/zone']).toBeDefined();
    expect(v.podDisruptionBudget.enabled).toBe(true);
  });

  it('exposes monitoring for KEDA and Prometheus and ships nats-box for backups', () => {
    expect(v.config.monitor).toEqual({ enabled: true, port: 8222 });
    expect(v.promExporter).toMatchObject({ enabled: true, podMonitor: { enabled: true } });
    expect(v.natsBox.enabled).toBe(true);
  });

  it('states the install command that yields the release and namespace the manifests use', () => {
    const install = natsInstall();
    expect(install.valuesFile).toBe('deploy/nats/values.yaml');
    expect(install.chartVersion).toMatch(/^\d+\.\d+\.\d+$/);
    const config = readFileSync(join(ROOT, 'deploy', 'base', 'kustomization.yaml'), 'utf8');
    expect(config).toContain(`namespace: ${install.namespace}`);
  });

  it('is what docs/operations.md tells operators to run', () => {
    const ops = readFileSync(join(ROOT, 'docs', 'operations.md'), 'utf8');
    expect(ops).toContain(MIN_NATS);
    expect(ops).toContain('sync_interval: always');
    expect(ops).toContain('NATS_REPLICAS=3');
    expect(ops).toContain('deploy/nats/values.yaml');
  });
});
