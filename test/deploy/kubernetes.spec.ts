/**
 * deploy/ rendered per overlay, every object validated against the Kubernetes schemas, and the wiring checked
 * against the code: each service's configuration is loaded with the services' own validation, probes name the
 * routes and ports the services serve, the KEDA trigger names the stream and consumer the contracts define, and
 * secrets, disruption budgets, monitors and network policies fit together.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CONSUMERS, STREAMS, demandConsumer } from '@gantry/contracts';
import { createRegistry } from '@gantry/telemetry';
import { WorkerMetrics } from '../../apps/gpu-worker/src/runner/worker-metrics';
import { renderKustomization, type K8sObject } from './support/kustomize';
import { typeCheckObjects, validateSchemas } from './support/k8s-schema';
import { natsClientPort, natsInstall, natsValues } from './support/nats';
import {
  SERVICE_NAMES,
  SERVICES,
  allVariables,
  loadServiceConfig,
  readEnvFile,
  secretVariables,
  type ServiceName,
} from './support/services';
import {
  componentOf,
  containerPort,
  containersOf,
  find,
  kinds,
  matches,
  podSpec,
  resolveEnv,
  templateLabels,
  type Container,
} from './support/workloads';

const DEPLOY = join(__dirname, '..', '..', 'deploy');
const OVERLAYS = ['production', 'cpu-only'] as const;
const SECRET_NAME = 'gantry-secrets';
const exampleSecret = readEnvFile(join(DEPLOY, 'secrets.example.env'));
const secrets = { [SECRET_NAME]: exampleSecret };
/** The worker's transport closes within WORKER_SHUTDOWN_GRACE_SECONDS + 15 s (apps/gpu-worker/src/main.ts). */
const WORKER_CLOSE_MARGIN_S = 15;

const rendered: Record<(typeof OVERLAYS)[number], K8sObject[]> = {
  production: renderKustomization(join(DEPLOY, 'overlays', 'production')),
  'cpu-only': renderKustomization(join(DEPLOY, 'overlays', 'cpu-only')),
};

function isService(c: string | undefined): c is ServiceName {
  return SERVICE_NAMES.includes(c as ServiceName);
}

/** Each Gantry service Deployment with its one container, effective environment and validated config. */
function services(objects: readonly K8sObject[]) {
  return kinds(objects, 'Deployment')
    .filter((d) => isService(componentOf(d)))
    .map((d) => {
      const service = componentOf(d) as ServiceName;
      const containers = containersOf(d);
      expect(containers).toHaveLength(1);
      const container = containers[0]!;
      const resolved = resolveEnv(container, objects, secrets);
      return { deployment: d, service, container, ...resolved };
    });
}

describe.each(OVERLAYS)('deploy/overlays/%s', (overlay) => {
  const objects = rendered[overlay];

  it('renders the four services, their autoscaling, budgets, monitors and policies', () => {
    expect(new Set(services(objects).map((s) => s.service))).toEqual(new Set(SERVICE_NAMES));
    for (const kind of ['ScaledObject', 'PodDisruptionBudget', 'ServiceMonitor', 'PodMonitor', 'NetworkPolicy'])
      expect(kinds(objects, kind).length).toBeGreaterThan(0);
    for (const o of objects) expect(o.metadata.namespace).toBe(natsInstall().namespace);
  });

  it('validates every object against its Kubernetes schema', () => {
    expect(validateSchemas(objects)).toEqual({});
  });

  it('has no field that its schema lacks (the API server would refuse it)', () => {
    expect(typeCheckObjects(objects)).toEqual({});
  });

  it('gives every service a configuration it accepts at boot, in production mode', () => {
    const { release, namespace } = natsInstall();
    const natsUrl = `nats://${release}.${namespace}.svc.cluster.local:${natsClientPort(natsValues())}`;
    for (const s of services(objects)) {
      expect({ service: s.service, missing: s.missing }).toEqual({ service: s.service, missing: [] });
      const config = loadServiceConfig(s.service, s.env);
      expect(config['NODE_ENV']).toBe('production');
      expect(config['NATS_URL']).toEqual([natsUrl]);
      // Every stream and bucket a service creates is R3 on the three NATS servers.
      expect(config['NATS_REPLICAS']).toBe(natsValues().config.cluster.replicas);
      expect(config[SERVICES[s.service].hostVariable]).toBe('0.0.0.0');
      expect(s.env['OTEL_EXPORTER_OTLP_ENDPOINT']).toMatch(/^https?:\/\//);
      expect(s.env['OTEL_SERVICE_NAME']).toBe(`gantry-${s.service}`);
    }
  });

  it('takes secrets from the Secret only and settings from the ConfigMap, with no unknown variable', () => {
    const known = allVariables();
    const allSecretVars = new Set(SERVICE_NAMES.flatMap(secretVariables));
    for (const cm of kinds(objects, 'ConfigMap')) {
      for (const key of Object.keys((cm['data'] ?? {}) as object)) {
        expect({ key, secret: allSecretVars.has(key) }).toEqual({ key, secret: false });
        expect({ key, known: known.has(key) || key.startsWith('OTEL_') }).toEqual({ key, known: true });
      }
    }
    const referenced = new Set<string>();
    for (const s of services(objects)) {
      for (const name of secretVariables(s.service)) {
        if (s.source[name] !== undefined) expect({ name, source: s.source[name] }).toEqual({ name, source: 'secret' });
      }
      for (const e of s.container.env ?? []) {
        // NODE_OPTIONS is Node's own (heap flags for the scheduler's index), not a Gantry variable.
        const runtime = e.name === 'NODE_OPTIONS';
        expect({ name: e.name, known: known.has(e.name) || e.name.startsWith('OTEL_') || runtime }).toEqual({
          name: e.name,
          known: true,
        });
        const ref = e.valueFrom?.secretKeyRef;
        if (ref) {
          expect(ref.name).toBe(SECRET_NAME);
          expect(ref.key).toBe(e.name);
          referenced.add(ref.key);
        }
      }
    }
    // The example Secret documents exactly the keys the manifests read.
    expect(new Set(Object.keys(exampleSecret))).toEqual(referenced);
  });

  it('points every probe at the route the service serves, on the port it listens on', () => {
    for (const s of services(objects)) {
      const config = loadServiceConfig(s.service, s.env);
      const port = config[SERVICES[s.service].portVariable];
      const c: Container = s.container;
      expect({ service: s.service, readiness: c.readinessProbe?.httpGet?.path }).toEqual({
        service: s.service,
        readiness: '/readyz',
      });
      expect(c.livenessProbe?.httpGet?.path).toBe('/healthz');
      for (const probe of [c.readinessProbe, c.livenessProbe, c.startupProbe]) {
        if (!probe) continue;
        expect({ service: s.service, port: containerPort(c, probe.httpGet?.port) }).toEqual({
          service: s.service,
          port,
        });
      }
    }
  });

  it('runs every container as non-root, read-only, without privilege escalation, from a pinned image', () => {
    for (const d of kinds(objects, 'Deployment')) {
      const pod = podSpec(d) as { securityContext?: { runAsNonRoot?: boolean; runAsUser?: number } };
      expect(pod.securityContext?.runAsNonRoot).toBe(true);
      expect(pod.securityContext?.runAsUser).toBeGreaterThan(0);
      for (const c of containersOf(d)) {
        expect(c.securityContext).toMatchObject({
          allowPrivilegeEscalation: false,
          readOnlyRootFilesystem: true,
          capabilities: { drop: ['ALL'] },
        });
        expect(c.image).toMatch(/^[^@]+:(?!latest$)[\w.-]+$/);
        if (overlay === 'production') expect(c.image.startsWith('gantry/')).toBe(false);
      }
    }
  });

  it('authenticates every service to NATS with the user the NATS release requires', () => {
    const values = readFileSync(join(DEPLOY, 'nats', 'values.yaml'), 'utf8');
    const user = /-\s*user:\s*(\S+)\s*\n\s*password:\s*<< \$NATS_PASSWORD >>/.exec(values)?.[1];
    expect(user).toBe('gantry');
    expect(values).toMatch(
      /NATS_PASSWORD:\s*\n\s*valueFrom:\s*\n\s*secretKeyRef: \{ name: gantry-secrets, key: NATS_PASSWORD \}/,
    );
    for (const s of services(objects)) {
      expect({ service: s.service, user: s.env['NATS_USER'] }).toEqual({ service: s.service, user });
      expect({ service: s.service, password: s.source['NATS_PASSWORD'] }).toEqual({
        service: s.service,
        password: 'secret',
      });
    }
  });

  it('lets GPU workers run the job sandbox: a user-namespaced pod, an unmasked /proc, bwrap’s syscalls', () => {
    for (const s of services(objects).filter((x) => x.service === 'gpu-worker')) {
      const pod = podSpec(s.deployment)!;
      expect(pod['hostUsers']).toBe(false);
      const psc = pod['securityContext'] as Record<string, { type: string } | undefined>;
      expect(psc['seccompProfile']?.type).not.toBe('RuntimeDefault');
      expect(psc['appArmorProfile']?.type).not.toBe('RuntimeDefault');
      const csc = (s.container as { securityContext?: Record<string, unknown> }).securityContext ?? {};
      expect(csc['procMount']).toBe('Unmasked');
      expect(csc['allowPrivilegeEscalation']).toBe(false);
      // The sandbox is not switched off in the cluster.
      expect(s.env['JOB_SANDBOX'] ?? 'bwrap').toBe('bwrap');
    }
  });

  it('drains GPU workers before they stop: grace period, preStop, budget', () => {
    for (const s of services(objects).filter((x) => x.service === 'gpu-worker')) {
      const config = loadServiceConfig('gpu-worker', s.env);
      const grace = (podSpec(s.deployment) as { terminationGracePeriodSeconds?: number }).terminationGracePeriodSeconds;
      const need = (config['WORKER_SHUTDOWN_GRACE_SECONDS'] as number) + WORKER_CLOSE_MARGIN_S;
      expect(grace).toBeGreaterThanOrEqual(need + 10);
      const command = s.container.lifecycle?.preStop?.exec?.command.join(' ') ?? '';
      expect(command).toContain('kill -TERM 1');
      expect(command).toContain('while kill -0 1');
      // KEDA owns the replica count.
      expect((s.deployment['spec'] as { replicas?: number }).replicas).toBeUndefined();
    }
  });

  it('puts GPU workers on GPU nodes with nvidia.com/gpu, or on any node in the CPU-only overlay', () => {
    for (const s of services(objects).filter((x) => x.service === 'gpu-worker')) {
      const pod = podSpec(s.deployment) as {
        nodeSelector?: Record<string, string>;
        tolerations?: { key?: string; operator?: string }[];
      };
      const config = loadServiceConfig('gpu-worker', s.env);
      if (overlay === 'production') {
        expect(s.container.resources?.limits?.['nvidia.com/gpu']).toBe('1');
        expect(s.container.resources?.requests?.['nvidia.com/gpu']).toBe('1');
        expect(pod.nodeSelector).toEqual({ 'nvidia.com/gpu.present': 'true' });
        expect(pod.tolerations).toContainEqual(expect.objectContaining({ key: 'nvidia.com/gpu', operator: 'Exists' }));
        expect(config['GPU_DISCOVERY']).toBe(true);
      } else {
        expect(JSON.stringify(s.container.resources)).not.toContain('nvidia.com/gpu');
        expect(pod.nodeSelector).toBeUndefined();
        expect(pod.tolerations).toBeUndefined();
        expect(config['GPU_DISCOVERY']).toBe(false);
      }
    }
  });

  it("autoscales workers on the pool's demand consumer and busy slots, both of which the code provides", () => {
    const { release, namespace } = natsInstall();
    const [scaled] = kinds(objects, 'ScaledObject');
    const spec = scaled!['spec'] as {
      scaleTargetRef: { name: string; kind?: string };
      triggers: { type: string; name?: string; metadata: Record<string, string> }[];
      advanced: { scalingModifiers: { formula: string; target: string; metricType: string } };
    };
    const worker = services(objects).find((s) => s.deployment.metadata.name === spec.scaleTargetRef.name);
    expect(worker?.service).toBe('gpu-worker');
    const config = loadServiceConfig('gpu-worker', worker!.env);
    const pool = config['WORKER_POOL'] as string;

    const nats = spec.triggers.find((t) => t.type === 'nats-jetstream');
    expect(nats?.metadata).toMatchObject({
      natsServerMonitoringEndpoint: `${release}-headless.${namespace}.svc.cluster.local:${natsValues().config.monitor.port}`,
      account: '$G',
      stream: STREAMS.demand,
      consumer: CONSUMERS.demand(pool),
    });
    // The consumer the contracts declare for the pool (created by the scheduler) is the one KEDA reads.
    expect(demandConsumer(pool)).toMatchObject({
      stream: nats?.metadata['stream'],
      durable_name: nats?.metadata['consumer'],
    });

    // Busy slots: the worker's own gauge, per pool through the pod label the PodMonitor copies.
    const prom = spec.triggers.find((t) => t.type === 'prometheus');
    const registry = createRegistry('gpu-worker');
    new WorkerMetrics(registry, () => ({ slots: 2, busy: 1, gpus: 1 }));
    const busyMetric = 'gantry_worker_slots_busy';
    expect(registry.getSingleMetric(busyMetric)).toBeDefined();
    expect(prom?.metadata['query']).toContain(`${busyMetric}{`);
    expect(prom?.metadata['query']).toContain(`gantry_dev_pool="${pool}"`);
    expect(templateLabels(worker!.deployment)['gantry.dev/pool']).toBe(pool);
    const podMonitor = kinds(objects, 'PodMonitor').find((m) =>
      matches(
        (m['spec'] as { selector: { matchLabels: Record<string, string> } }).selector.matchLabels,
        templateLabels(worker!.deployment),
      ),
    );
    expect((podMonitor?.['spec'] as { podTargetLabels?: string[] }).podTargetLabels).toContain('gantry.dev/pool');

    // Replicas = ceil((queued + busy) / jobs per worker).
    const gpus = Number(worker!.container.resources?.limits?.['nvidia.com/gpu'] ?? 0);
    const slots =
      (config['WORKER_SLOTS'] as number | undefined) ?? (gpus > 0 ? gpus * (config['SLOTS_PER_GPU'] as number) : 2);
    const names = spec.triggers.map((t) => t.name);
    expect(spec.advanced.scalingModifiers.formula).toBe(`${nats?.name} + ${prom?.name}`);
    expect(names).toEqual(expect.arrayContaining([nats?.name, prom?.name]));
    expect(Number(spec.advanced.scalingModifiers.target)).toBe(slots);
    expect(spec.advanced.scalingModifiers.metricType).toBe('AverageValue');
  });

  it('runs two schedulers on different nodes and keeps one through disruptions', () => {
    const [scheduler] = services(objects).filter((s) => s.service === 'scheduler');
    const spec = scheduler!.deployment['spec'] as { replicas: number; strategy: { rollingUpdate: object } };
    expect(spec.replicas).toBe(2);
    expect(spec.strategy.rollingUpdate).toEqual({ maxSurge: 1, maxUnavailable: 0 });
    const spread = (podSpec(scheduler!.deployment) as { topologySpreadConstraints: object[] })
      .topologySpreadConstraints;
    expect(spread).toContainEqual(
      expect.objectContaining({ topologyKey: 'kubernetes.io/hostname', whenUnsatisfiable: 'DoNotSchedule' }),
    );
  });

  it('gives every Gantry service a PodDisruptionBudget that selects its pods and leaves one running', () => {
    for (const s of services(objects)) {
      const budgets = kinds(objects, 'PodDisruptionBudget').filter((p) =>
        matches(
          (p['spec'] as { selector: { matchLabels: Record<string, string> } }).selector.matchLabels,
          templateLabels(s.deployment),
        ),
      );
      expect({ service: s.service, budgets: budgets.length }).toEqual({ service: s.service, budgets: 1 });
      const b = budgets[0]!['spec'] as { minAvailable?: number; maxUnavailable?: number };
      expect(b.maxUnavailable === 1 || (b.minAvailable ?? 0) >= 1).toBe(true);
    }
  });

  it('scrapes every service: Services and monitors select real pods and named ports', () => {
    for (const s of services(objects)) {
      const labels = templateLabels(s.deployment);
      if (s.service === 'gpu-worker') {
        const pm = kinds(objects, 'PodMonitor').find((m) =>
          matches((m['spec'] as { selector: { matchLabels: Record<string, string> } }).selector.matchLabels, labels),
        );
        const endpoint = (pm?.['spec'] as { podMetricsEndpoints: { port: string; path: string }[] })
          .podMetricsEndpoints[0]!;
        expect(containerPort(s.container, endpoint.port)).toBeDefined();
        expect(endpoint.path).toBe('/metrics');
        continue;
      }
      const svc = kinds(objects, 'Service').find((x) =>
        matches((x['spec'] as { selector: Record<string, string> }).selector, labels),
      );
      expect({ service: s.service, hasService: !!svc }).toEqual({ service: s.service, hasService: true });
      const ports = (svc!['spec'] as { ports: { name: string; targetPort: string }[] }).ports;
      for (const p of ports) expect(containerPort(s.container, p.targetPort)).toBeDefined();
      const sm = kinds(objects, 'ServiceMonitor').find((m) =>
        matches(
          (m['spec'] as { selector: { matchLabels: Record<string, string> } }).selector.matchLabels,
          svc!.metadata.labels ?? {},
        ),
      );
      const endpoint = (sm?.['spec'] as { endpoints: { port: string; path: string }[] }).endpoints[0]!;
      expect(ports.map((p) => p.name)).toContain(endpoint.port);
      expect(endpoint.path).toBe('/metrics');
    }
  });

  it('denies ingress by default and lets in what the system needs', () => {
    const policies = kinds(objects, 'NetworkPolicy').map(
      (p) =>
        p['spec'] as {
          podSelector: { matchLabels?: Record<string, string>; matchExpressions?: unknown[] };
          ingress?: { from?: unknown[]; ports?: { port: number }[] }[];
        },
    );
    expect(policies).toContainEqual({ podSelector: {}, policyTypes: ['Ingress'] });
    const allowed = (labels: Record<string, string>, port: number) =>
      policies.some(
        (p) =>
          (matches(p.podSelector.matchLabels, labels) ||
            (p.podSelector.matchExpressions !== undefined &&
              (p.podSelector.matchExpressions as { key: string; values: string[] }[]).every((e) =>
                e.values.includes(labels[e.key] ?? ''),
              ))) &&
          (p.ingress ?? []).some((r) => (r.ports ?? []).some((x) => x.port === port)),
      );
    for (const s of services(objects)) {
      const port = loadServiceConfig(s.service, s.env)[SERVICES[s.service].portVariable] as number;
      expect({ service: s.service, scrape: allowed(templateLabels(s.deployment), port) }).toEqual({
        service: s.service,
        scrape: true,
      });
    }
    const { release } = natsInstall();
    const natsPod = {
      'app.kubernetes.io/name': 'nats',
      'app.kubernetes.io/instance': release,
      'app.kubernetes.io/component': 'nats',
    };
    for (const port of [4222, 6222, 8222])
      expect({ port, allowed: allowed(natsPod, port) }).toEqual({ port, allowed: true });
  });

  it('wires the deletion-cost helper to the worker pods and their metrics port', () => {
    const helper = find(objects, 'Deployment', 'gantry-deletion-cost');
    const [container] = containersOf(helper);
    const { env } = resolveEnv(container!, objects, secrets);
    const worker = services(objects).find((s) => s.service === 'gpu-worker')!;
    const selector = Object.fromEntries(
      env['LABEL_SELECTOR']!.split(',').map((kv) => kv.split('=') as [string, string]),
    );
    expect(matches(selector, templateLabels(worker.deployment))).toBe(true);
    expect(Number(env['METRICS_PORT'])).toBe(loadServiceConfig('gpu-worker', worker.env)['WORKER_HTTP_PORT']);
    const account = (podSpec(helper) as { serviceAccountName: string }).serviceAccountName;
    const binding = kinds(objects, 'RoleBinding').find((b) =>
      (b['subjects'] as { kind: string; name: string }[]).some(
        (x) => x.kind === 'ServiceAccount' && x.name === account,
      ),
    );
    const role = find(objects, 'Role', (binding!['roleRef'] as { name: string }).name);
    expect(role['rules']).toContainEqual(
      expect.objectContaining({ resources: ['pods'], verbs: expect.arrayContaining(['list', 'patch']) }),
    );
    // The Gantry services themselves get no API token.
    for (const s of services(objects))
      expect((podSpec(s.deployment) as { automountServiceAccountToken?: boolean }).automountServiceAccountToken).toBe(
        false,
      );
  });
});
