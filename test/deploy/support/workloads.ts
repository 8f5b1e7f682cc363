/** Reading rendered workloads: their containers' effective environment, ports and label selectors. */
import { podContainers, podSpec, type K8sObject } from './kustomize';

export interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: {
    configMapKeyRef?: { name: string; key: string; optional?: boolean };
    secretKeyRef?: { name: string; key: string; optional?: boolean };
    fieldRef?: { fieldPath: string };
  };
}

export interface Probe {
  httpGet?: { path?: string; port: number | string };
}

export interface Container {
  name: string;
  image: string;
  env?: EnvVar[];
  envFrom?: { configMapRef?: { name: string }; secretRef?: { name: string } }[];
  ports?: { name?: string; containerPort: number }[];
  readinessProbe?: Probe;
  livenessProbe?: Probe;
  startupProbe?: Probe;
  lifecycle?: { preStop?: { exec?: { command: string[] } } };
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext?: {
    allowPrivilegeEscalation?: boolean;
    readOnlyRootFilesystem?: boolean;
    runAsNonRoot?: boolean;
    capabilities?: { drop?: string[] };
  };
}

export type Source = 'literal' | 'configMap' | 'secret' | 'field';

export interface ResolvedEnv {
  env: Record<string, string>;
  source: Record<string, Source>;
  /** Secret references that are missing from the secret data and not optional. */
  missing: string[];
}

export function kinds<T extends K8sObject = K8sObject>(objects: readonly K8sObject[], kind: string): T[] {
  return objects.filter((o) => o.kind === kind) as T[];
}

export function find(objects: readonly K8sObject[], kind: string, name: string): K8sObject {
  const o = objects.find((x) => x.kind === kind && x.metadata.name === name);
  if (!o) throw new Error(`no ${kind}/${name}`);
  return o;
}

export function containersOf(o: K8sObject): Container[] {
  return podContainers(o) as unknown as Container[];
}

export function templateLabels(o: K8sObject): Record<string, string> {
  const spec = o['spec'] as { template?: { metadata?: { labels?: Record<string, string> } } } | undefined;
  return spec?.template?.metadata?.labels ?? {};
}

export function componentOf(o: K8sObject): string | undefined {
  return templateLabels(o)['app.kubernetes.io/component'];
}

export function matches(selector: Record<string, string> | undefined, labels: Record<string, string>): boolean {
  if (!selector || Object.keys(selector).length === 0) return false;
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}

export { podSpec };

/**
 * A container's environment as the kubelet builds it: envFrom first, then env (which wins), ConfigMaps taken from
 * the rendered objects and Secrets from `secrets` (the example Secret's data).
 */
export function resolveEnv(
  container: Container,
  objects: readonly K8sObject[],
  secrets: Record<string, Record<string, string>>,
): ResolvedEnv {
  const env: Record<string, string> = {};
  const source: Record<string, Source> = {};
  const missing: string[] = [];
  const configMap = (name: string) => {
    const cm = objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name === name);
    if (!cm) throw new Error(`container ${container.name} uses ConfigMap ${name}, which is not rendered`);
    return (cm['data'] ?? {}) as Record<string, string>;
  };
  for (const from of container.envFrom ?? []) {
    if (from.configMapRef) {
      for (const [k, v] of Object.entries(configMap(from.configMapRef.name))) {
        env[k] = v;
        source[k] = 'configMap';
      }
    }
    if (from.secretRef) {
      for (const [k, v] of Object.entries(secrets[from.secretRef.name] ?? {})) {
        env[k] = v;
        source[k] = 'secret';
      }
    }
  }
  for (const e of container.env ?? []) {
    if (e.value !== undefined) {
      env[e.name] = e.value;
      source[e.name] = 'literal';
    } else if (e.valueFrom?.configMapKeyRef) {
      const ref = e.valueFrom.configMapKeyRef;
      const v = configMap(ref.name)[ref.key];
      if (v !== undefined) {
        env[e.name] = v;
        source[e.name] = 'configMap';
      } else if (!ref.optional) missing.push(`${ref.name}/${ref.key}`);
    } else if (e.valueFrom?.secretKeyRef) {
      const ref = e.valueFrom.secretKeyRef;
      const v = secrets[ref.name]?.[ref.key];
      if (v !== undefined) {
        env[e.name] = v;
        source[e.name] = 'secret';
      } else if (!ref.optional) missing.push(`${ref.name}/${ref.key}`);
    } else if (e.valueFrom?.fieldRef) {
      env[e.name] = `<${e.valueFrom.fieldRef.fieldPath}>`;
      source[e.name] = 'field';
    }
  }
  return { env, source, missing };
}

/** The container port a probe or Service names (by name or number). */
export function containerPort(container: Container, port: number | string | undefined): number | undefined {
  if (typeof port === 'number') return container.ports?.some((p) => p.containerPort === port) ? port : undefined;
  return container.ports?.find((p) => p.name === port)?.containerPort;
}
