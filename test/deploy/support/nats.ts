/** deploy/nats/values.yaml and the install command written at its top. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';

export const NATS_VALUES_FILE = join(__dirname, '..', '..', '..', 'deploy', 'nats', 'values.yaml');

export interface NatsInstall {
  release: string;
  namespace: string;
  chartVersion: string;
  valuesFile: string;
}

/** The `helm upgrade --install <release> nats/nats --version V --namespace NS … -f FILE` line of the header. */
export function natsInstall(): NatsInstall {
  const text = readFileSync(NATS_VALUES_FILE, 'utf8');
  const command = text
    .split('\n')
    .filter((l) => l.startsWith('#'))
    .map((l) => l.replace(/^#\s?/, ''))
    .join('\n')
    .replace(/\\\n\s*/g, ' ');
  const m = /helm upgrade --install (\S+) nats\/nats (.*)/.exec(command);
  if (!m) throw new Error('values.yaml does not state the helm install command');
  const args = m[2]!.split(/\s+/);
  const arg = (name: string) => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const release = m[1]!;
  const namespace = arg('--namespace') ?? arg('-n');
  const chartVersion = arg('--version');
  const valuesFile = arg('-f') ?? arg('--values');
  if (!namespace || !chartVersion || !valuesFile)
    throw new Error('the install command needs --namespace, --version and -f');
  return { release, namespace, chartVersion, valuesFile };
}

export interface NatsValues {
  config: {
    cluster: { enabled: boolean; replicas: number };
    jetstream: {
      enabled: boolean;
      fileStore: { enabled: boolean; dir: string; pvc: { enabled: boolean; size: string } };
      memoryStore?: { enabled: boolean };
      merge?: Record<string, unknown>;
    };
    monitor: { enabled: boolean; port: number };
    nats?: { port?: number };
  };
  container: { image: { tag: string } };
  podTemplate: { topologySpreadConstraints: Record<string, { maxSkew: number; whenUnsatisfiable: string }> };
  podDisruptionBudget: { enabled: boolean };
  promExporter: { enabled: boolean; podMonitor: { enabled: boolean } };
  natsBox: { enabled: boolean };
}

export function natsValues(): NatsValues {
  return parse(readFileSync(NATS_VALUES_FILE, 'utf8')) as NatsValues;
}

/** Client port of the chart (config.nats.port, 4222 by default). */
export function natsClientPort(v: NatsValues): number {
  return v.config.nats?.port ?? 4222;
}

/** Compares dotted versions: negative when a < b. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}
