/**
 * The deletion-cost helper (deploy/deletion-cost/controller.mjs). Its decisions are pure functions tested directly;
 * one pass is then run end to end against real worker ops servers (the gpu-worker's own WorkerMetrics behind
 * @gantry/telemetry's ops server, on separate loopback addresses like pod IPs) and, since no Kubernetes cluster
 * exists here, a recording stand-in for the API server that answers the two calls the helper makes.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { createRegistry, startOpsServer, type OpsServer } from '@gantry/telemetry';
import { WorkerMetrics } from '../../apps/gpu-worker/src/runner/worker-metrics';
import {
  BUSY_METRIC,
  DELETION_COST_ANNOTATION,
  deletionCost,
  parseBusySlots,
  planPatches,
  reconcileOnce,
  settingsFromEnv,
} from '../../deploy/deletion-cost/controller.mjs';

describe('deletion-cost helper', () => {
  it('reads the busy-slots gauge from Prometheus text', () => {
    const text = [
      '# HELP gantry_worker_slots_busy Slots running an attempt',
      '# TYPE gantry_worker_slots_busy gauge',
      'gantry_worker_slots_busy_other 9',
      'gantry_worker_slots_busy{service="gpu-worker"} 3',
    ].join('\n');
    expect(parseBusySlots(text)).toBe(3);
    expect(parseBusySlots('gantry_worker_slots_busy 0\n')).toBe(0);
    expect(parseBusySlots('gantry_worker_slots_total 2\n')).toBeUndefined();
  });

  it('costs a pod its busy slots, as an int32 string', () => {
    expect(deletionCost(0)).toBe('0');
    expect(deletionCost(2)).toBe('2');
    expect(deletionCost(-1)).toBe('0');
    expect(deletionCost(1e12)).toBe('2147483647');
  });

  it('patches only live pods whose busy count is known and whose annotation differs', () => {
    const pod = (name: string, cost?: string, deleting = false) => ({
      metadata: {
        name,
        annotations: cost === undefined ? undefined : { [DELETION_COST_ANNOTATION]: cost },
        deletionTimestamp: deleting ? '2026-01-01T00:00:00Z' : undefined,
      },
    });
    const busy = new Map([
      ['a', 2],
      ['b', 0],
      ['d', 1],
    ]);
    expect(planPatches([pod('a', '0'), pod('b', '0'), pod('c'), pod('d', undefined, true)], busy)).toEqual([
      { name: 'a', cost: '2' },
    ]);
  });

  describe('one pass against worker metrics and an API server stand-in', () => {
    const workers: OpsServer[] = [];
    let api: Server;
    const patches: { path: string; type: string | undefined; auth: string | undefined; body: unknown }[] = [];
    let listAuth: string | undefined;
    let listQuery = '';

    beforeAll(async () => {
      // Two workers on their own loopback addresses and one shared port, as pods are.
      const busy = [2, 0];
      for (const [i, b] of busy.entries()) {
        const registry = createRegistry('gpu-worker');
        new WorkerMetrics(registry, () => ({ slots: 2, busy: b, gpus: 1 }));
        workers.push(
          await startOpsServer({
            host: `127.0.0.${i + 2}`,
            port: i === 0 ? 0 : workers[0]!.port,
            registry,
            readiness: () => ({ ready: true, detail: {} }),
          }),
        );
      }
      const port = workers[0]!.port;
      const pods = {
        items: [
          {
            metadata: { name: 'busy', annotations: { [DELETION_COST_ANNOTATION]: '0' } },
            status: { phase: 'Running', podIP: '127.0.0.2' },
          },
          {
            metadata: { name: 'idle', annotations: { [DELETION_COST_ANNOTATION]: '0' } },
            status: { phase: 'Running', podIP: '127.0.0.3' },
          },
          { metadata: { name: 'fresh' }, status: { phase: 'Running', podIP: '127.0.0.3' } },
          { metadata: { name: 'gone' }, status: { phase: 'Running', podIP: '127.0.0.4' } },
          { metadata: { name: 'pending' }, status: { phase: 'Pending' } },
        ],
      };
      const body = (req: IncomingMessage) =>
        new Promise<string>((resolve) => {
          let s = '';
          req.on('data', (c: Buffer) => (s += c.toString()));
          req.on('end', () => resolve(s));
        });
      api = createServer((req, res) => {
        void (async () => {
          const url = new URL(req.url ?? '/', 'http://x');
          if (req.method === 'GET' && url.pathname === '/api/v1/namespaces/gantry/pods') {
            listAuth = req.headers.authorization;
            listQuery = url.searchParams.get('labelSelector') ?? '';
            res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(pods));
          } else if (req.method === 'PATCH' && url.pathname.startsWith('/api/v1/namespaces/gantry/pods/')) {
            patches.push({
              path: url.pathname,
              type: req.headers['content-type'],
              auth: req.headers.authorization,
              body: JSON.parse(await body(req)),
            });
            res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
          } else res.writeHead(404).end('{}');
        })();
      });
      await new Promise<void>((r) => api.listen(0, '127.0.0.1', () => r()));
      expect(port).toBeGreaterThan(0);
    });

    afterAll(async () => {
      for (const w of workers) await w.close();
      await new Promise<void>((r) => api.close(() => r()));
    });

    it('raises the cost of the busy worker, leaves the idle and unreadable ones alone', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'gantry-deletion-cost-'));
      writeFileSync(join(dir, 'token'), 'sa-token\n');
      const settings = settingsFromEnv({
        KUBE_API_URL: `http://127.0.0.1:${(api.address() as AddressInfo).port}`,
        KUBE_TOKEN_FILE: join(dir, 'token'),
        NAMESPACE: 'gantry',
        METRICS_PORT: String(workers[0]!.port),
        METRICS_TIMEOUT_MS: '2000',
      });
      const made = await reconcileOnce(settings);
      expect(made).toEqual([
        { name: 'busy', cost: '2' },
        { name: 'fresh', cost: '0' },
      ]);
      expect(listAuth).toBe('Bearer sa-token');
      expect(listQuery).toBe('app.kubernetes.io/name=gantry,app.kubernetes.io/component=gpu-worker');
      expect(patches).toEqual([
        {
          path: '/api/v1/namespaces/gantry/pods/busy',
          type: 'application/merge-patch+json',
          auth: 'Bearer sa-token',
          body: { metadata: { annotations: { [DELETION_COST_ANNOTATION]: '2' } } },
        },
        {
          path: '/api/v1/namespaces/gantry/pods/fresh',
          type: 'application/merge-patch+json',
          auth: 'Bearer sa-token',
          body: { metadata: { annotations: { [DELETION_COST_ANNOTATION]: '0' } } },
        },
      ]);
      expect(BUSY_METRIC).toBe('gantry_worker_slots_busy');
    });
  });
});
