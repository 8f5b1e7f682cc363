/**
 * The routes the deploy probes and monitors name (/healthz, /readyz, /metrics) exist in the code: the gateway's
 * health controller declares them, and the ops server of the other services answers them over real HTTP.
 */
import 'reflect-metadata';
import { PATH_METADATA, METHOD_METADATA } from '@nestjs/common/constants';
import { RequestMethod } from '@nestjs/common';
import { createRegistry, startOpsServer, type OpsServer } from '@gantry/telemetry';
import { HealthController } from '../../apps/gateway/src/health/health.controller';

const PROBED = ['/healthz', '/readyz', '/metrics'];

describe('routes named by probes and monitors', () => {
  it('the gateway serves GET /healthz, /readyz and /metrics at its root', () => {
    expect(Reflect.getMetadata(PATH_METADATA, HealthController)).toBe('/');
    const proto = HealthController.prototype as unknown as Record<string, object>;
    const routes = Object.getOwnPropertyNames(HealthController.prototype)
      .filter((m) => m !== 'constructor' && Reflect.getMetadata(METHOD_METADATA, proto[m]!) === RequestMethod.GET)
      .map((m) => `/${String(Reflect.getMetadata(PATH_METADATA, proto[m]!)).replace(/^\//, '')}`);
    expect(routes).toEqual(expect.arrayContaining(PROBED));
  });

  describe('the ops server of the scheduler, notifier and workers', () => {
    let ops: OpsServer;
    let ready = false;
    beforeAll(async () => {
      ops = await startOpsServer({
        host: '127.0.0.1',
        port: 0,
        registry: createRegistry('deploy-test'),
        readiness: () => ({ ready, detail: {} }),
      });
    });
    afterAll(() => ops.close());

    it.each(PROBED)('answers GET %s', async (path) => {
      ready = true;
      const res = await fetch(`${ops.url}${path}`);
      expect(res.status).toBe(200);
    });

    it('reports not ready with 503 on /readyz while staying alive on /healthz', async () => {
      ready = false;
      expect((await fetch(`${ops.url}/readyz`)).status).toBe(503);
      expect((await fetch(`${ops.url}/healthz`)).status).toBe(200);
    });
  });
});
