// Gantry deletion-cost helper: keeps busy GPU worker pods from being chosen first when their Deployment scales down.
//
// When KEDA (through the HPA) lowers the worker Deployment's replicas, the ReplicaSet deletes the pods with the lowest
// `controller.kubernetes.io/pod-deletion-cost` annotation first. Every INTERVAL_MS this helper reads each worker pod's
// `gantry_worker_slots_busy` gauge from its /metrics and sets the annotation to the number of busy slots, so idle
// workers go first and a worker running two jobs goes after one running a single job. It is best effort, as the
// annotation itself is: a pod that cannot be read keeps its last value; when every pod is busy one of them is still
// removed, and that worker drains (finishes or hands back its jobs) within its grace period.
//
// It runs in the cluster as the image target `deletion-cost` of the repository's Dockerfile (Node 24, no
// dependencies) with a ServiceAccount that may list and patch pods in its namespace (deploy/base/deletion-cost.yaml).
// Settings: NAMESPACE, LABEL_SELECTOR, METRICS_PORT, INTERVAL_MS, HEALTH_PORT; KUBE_API_URL and KUBE_TOKEN_FILE
// replace the in-cluster API address and token (tests, or running it outside the cluster).
import { readFileSync } from 'node:fs';
import { createServer, request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';

export const DELETION_COST_ANNOTATION = 'controller.kubernetes.io/pod-deletion-cost';
export const BUSY_METRIC = 'gantry_worker_slots_busy';
const SA_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/** The value of the busy-slots gauge in a Prometheus text exposition, or undefined when it is absent. */
export function parseBusySlots(text) {
  for (const line of text.split('\n')) {
    if (!line.startsWith(BUSY_METRIC)) continue;
    const rest = line.slice(BUSY_METRIC.length);
    if (rest[0] !== ' ' && rest[0] !== '{') continue;
    const value = Number(
      rest
        .replace(/^\{[^}]*\}/, '')
        .trim()
        .split(/\s+/)[0],
    );
    if (Number.isFinite(value)) return value;
  }
  return undefined;
}

/** The annotation value for a worker with `busy` slots in use (the annotation is an int32). */
export function deletionCost(busy) {
  return String(Math.max(0, Math.min(2_147_483_647, Math.round(busy))));
}

/**
 * The patches to make: for every live pod whose busy count is known and whose annotation differs from it.
 * @param {Array<{metadata: {name: string, annotations?: Record<string, string>, deletionTimestamp?: string}}>} pods
 * @param {Map<string, number>} busyByPod
 */
export function planPatches(pods, busyByPod) {
  const out = [];
  for (const pod of pods) {
    if (pod.metadata.deletionTimestamp) continue;
    const busy = busyByPod.get(pod.metadata.name);
    if (busy === undefined) continue;
    const cost = deletionCost(busy);
    if (pod.metadata.annotations?.[DELETION_COST_ANNOTATION] !== cost) out.push({ name: pod.metadata.name, cost });
  }
  return out;
}

/** Settings from the environment, with in-cluster defaults. */
export function settingsFromEnv(env = process.env) {
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT ?? '443';
  const apiUrl = env.KUBE_API_URL ?? (host ? `https://${host.includes(':') ? `[${host}]` : host}:${port}` : '');
  if (!apiUrl) throw new Error('KUBE_API_URL or KUBERNETES_SERVICE_HOST must be set');
  const namespace = env.NAMESPACE ?? readOptional(`${SA_DIR}/namespace`)?.trim();
  if (!namespace) throw new Error('NAMESPACE must be set');
  return {
    apiUrl,
    namespace,
    tokenFile: env.KUBE_TOKEN_FILE ?? `${SA_DIR}/token`,
    caFile: env.KUBE_CA_FILE ?? `${SA_DIR}/ca.crt`,
    labelSelector: env.LABEL_SELECTOR ?? 'app.kubernetes.io/name=gantry,app.kubernetes.io/component=gpu-worker',
    metricsPort: Number(env.METRICS_PORT ?? 8082),
    intervalMs: Number(env.INTERVAL_MS ?? 5000),
    metricsTimeoutMs: Number(env.METRICS_TIMEOUT_MS ?? 2000),
    healthPort: Number(env.HEALTH_PORT ?? 8090),
  };
}

function readOptional(file) {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

/** One call to the Kubernetes API; the token is read on every call because projected tokens rotate. */
function kube(settings, method, path, body, contentType) {
  const url = new URL(path, settings.apiUrl);
  const token = readOptional(settings.tokenFile)?.trim();
  const ca = url.protocol === 'https:' ? readOptional(settings.caFile) : undefined;
  const payload = body === undefined ? undefined : JSON.stringify(body);
  const headers = { accept: 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  if (payload !== undefined) {
    headers['content-type'] = contentType;
    headers['content-length'] = Buffer.byteLength(payload);
  }
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = send(url, { method, headers, ca, timeout: 10_000 }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        if ((res.statusCode ?? 500) >= 300) reject(new Error(`${method} ${url.pathname}: ${res.statusCode} ${text}`));
        else resolve(text ? JSON.parse(text) : {});
      });
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${url.pathname}: timed out`)));
    req.on('error', reject);
    if (payload !== undefined) req.write(payload);
    req.end();
  });
}

async function busySlots(settings, pod) {
  const ip = pod.status?.podIP;
  if (!ip || pod.status?.phase !== 'Running') return undefined;
  const host = ip.includes(':') ? `[${ip}]` : ip;
  try {
    const res = await fetch(`http://${host}:${settings.metricsPort}/metrics`, {
      signal: AbortSignal.timeout(settings.metricsTimeoutMs),
    });
    return res.ok ? parseBusySlots(await res.text()) : undefined;
  } catch {
    return undefined;
  }
}

/** One pass: read every worker's busy slots and patch the annotations that changed. Returns the patches made. */
export async function reconcileOnce(settings) {
  const ns = encodeURIComponent(settings.namespace);
  const list = await kube(
    settings,
    'GET',
    `/api/v1/namespaces/${ns}/pods?labelSelector=${encodeURIComponent(settings.labelSelector)}`,
  );
  const pods = list.items ?? [];
  const busy = new Map();
  await Promise.all(
    pods.map(async (pod) => {
      const value = await busySlots(settings, pod);
      if (value !== undefined) busy.set(pod.metadata.name, value);
    }),
  );
  const patches = planPatches(pods, busy);
  for (const p of patches) {
    await kube(
      settings,
      'PATCH',
      `/api/v1/namespaces/${ns}/pods/${encodeURIComponent(p.name)}`,
      { metadata: { annotations: { [DELETION_COST_ANNOTATION]: p.cost } } },
      'application/merge-patch+json',
    );
  }
  return patches;
}

/** Runs until SIGTERM; /healthz answers 200 while the last pass succeeded within three intervals. */
export async function main(env = process.env) {
  const settings = settingsFromEnv(env);
  let lastOk = Date.now();
  const health = createServer((req, res) => {
    const ok = req.url === '/healthz' && Date.now() - lastOk < settings.intervalMs * 3 + 10_000;
    res.writeHead(ok ? 200 : 503, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ status: ok ? 'ok' : 'stale', lastOk: new Date(lastOk).toISOString() }));
  });
  health.listen(settings.healthPort, '0.0.0.0');
  let stopping = false;
  let timer;
  const stop = () => {
    stopping = true;
    clearTimeout(timer);
    health.close();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  const loop = async () => {
    try {
      const patches = await reconcileOnce(settings);
      lastOk = Date.now();
      for (const p of patches) log('info', 'deletion cost set', { pod: p.name, cost: p.cost });
    } catch (err) {
      log('error', 'pass failed', { err: String(err) });
    }
    if (!stopping) timer = setTimeout(() => void loop(), settings.intervalMs);
  };
  log('info', 'started', { namespace: settings.namespace, labelSelector: settings.labelSelector });
  await loop();
}

function log(level, msg, fields) {
  process.stdout.write(`${JSON.stringify({ level, time: new Date().toISOString(), msg, ...fields })}\n`);
}

if (process.argv[1] && /controller\.mjs$/.test(process.argv[1])) {
  main().catch((err) => {
    process.stderr.write(`deletion-cost failed to start: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
