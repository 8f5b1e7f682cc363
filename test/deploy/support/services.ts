/**
 * What the deploy tests know about the services: each one's configuration spec (the same objects the apps
 * validate at boot), the port variable its probes must use, and small readers for env files.
 */
import { readFileSync } from 'node:fs';
import { loadConfig, type ConfigOf, type Refinement, type Spec } from '@gantry/config';
import { gatewayRefinements, gatewaySpec } from '../../../apps/gateway/src/config';
import { schedulerSpec } from '../../../apps/scheduler/src/config';
import { notifierRefinements, notifierSpec } from '../../../apps/notifier/src/config';
import { workerSpec } from '../../../apps/gpu-worker/src/config';

export type ServiceName = 'gateway' | 'scheduler' | 'notifier' | 'gpu-worker';

export interface ServiceDescription {
  spec: Spec;
  refinements: readonly Refinement<Spec>[];
  /** The variable holding the port of /healthz, /readyz and /metrics. */
  portVariable: string;
  /** The variable holding the bind address of that port. */
  hostVariable: string;
}

export const SERVICES: Record<ServiceName, ServiceDescription> = {
  gateway: {
    spec: gatewaySpec,
    refinements: gatewayRefinements as unknown as Refinement<Spec>[],
    portVariable: 'GATEWAY_PORT',
    hostVariable: 'GATEWAY_HOST',
  },
  scheduler: { spec: schedulerSpec, refinements: [], portVariable: 'SCHEDULER_HTTP_PORT', hostVariable: 'HTTP_HOST' },
  notifier: {
    spec: notifierSpec,
    refinements: notifierRefinements as unknown as Refinement<Spec>[],
    portVariable: 'NOTIFIER_HTTP_PORT',
    hostVariable: 'HTTP_HOST',
  },
  'gpu-worker': { spec: workerSpec, refinements: [], portVariable: 'WORKER_HTTP_PORT', hostVariable: 'HTTP_HOST' },
};

export const SERVICE_NAMES = Object.keys(SERVICES) as ServiceName[];

/** Validates `env` exactly as the service does at boot; throws the service's ConfigError listing every problem. */
export function loadServiceConfig(service: ServiceName, env: Record<string, string>): ConfigOf<Spec> {
  const d = SERVICES[service];
  return loadConfig(d.spec, env, d.refinements);
}

/** Variables the service treats as secrets (redacted in /v1/config): they must come from a Secret. */
export function secretVariables(service: ServiceName): string[] {
  return Object.entries(SERVICES[service].spec)
    .filter(([, v]) => v.secret === true)
    .flatMap(([name, v]) => [name, ...(v.aliases ?? [])]);
}

/** Every variable any service reads, with aliases. */
export function allVariables(): Set<string> {
  return new Set(
    SERVICE_NAMES.flatMap((s) => Object.entries(SERVICES[s].spec).flatMap(([n, v]) => [n, ...(v.aliases ?? [])])),
  );
}

/** `KEY=value` lines (comments and blank lines skipped), as `kubectl create secret --from-env-file` and compose read them. */
export function readEnvFile(file: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const raw of readFileSync(file, 'utf8').split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const eq = line.indexOf('=');
    if (eq <= 0) throw new Error(`${file}: "${line}" is not KEY=value`);
    out[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return out;
}
