import { ConfigError, loadConfig } from '@gantry/config';
import { gatewayRefinements, gatewaySpec } from './config';

describe('gateway configuration', () => {
  it('refuses the dev API keys in production', () => {
    expect(() => loadConfig(gatewaySpec, { NODE_ENV: 'production' }, gatewayRefinements)).toThrow(ConfigError);
    expect(() =>
      loadConfig(gatewaySpec, { NODE_ENV: 'production', API_KEYS: 'dev-admin-key:admin' }, gatewayRefinements),
    ).toThrow(/dev keys are refused/);
    const ok = loadConfig(
      gatewaySpec,
      { NODE_ENV: 'production', API_KEYS: 'a-real-admin-key:admin,tenant-key-123:client:acme' },
      gatewayRefinements,
    );
    expect(ok.API_KEYS).toEqual([
      { key: 'a-real-admin-key', role: 'admin', tenant: 'default' },
      { key: 'tenant-key-123', role: 'client', tenant: 'acme' },
    ]);
  });

  it('lists every bad variable at once', () => {
    try {
      loadConfig(gatewaySpec, { API_KEYS: 'short:admin', POOLS: 'default=8', MAX_JOBS_PER_BATCH: '0' });
      throw new Error('expected a ConfigError');
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      const vars = (err as ConfigError).problems.map((p) => p.variable).sort();
      expect(vars).toEqual(['API_KEYS', 'MAX_JOBS_PER_BATCH', 'POOLS']);
    }
  });

  it('reads MAX_VIDEOS_PER_REQUEST as MAX_JOBS_PER_BATCH and POOLS as inventories', () => {
    const c = loadConfig(gatewaySpec, { MAX_VIDEOS_PER_REQUEST: '7', POOLS: 'default=8x81559,small=4×24576' });
    expect(c.MAX_JOBS_PER_BATCH).toBe(7);
    expect(c.POOLS).toEqual({ default: { gpus: 8, memoryMb: 81559 }, small: { gpus: 4, memoryMb: 24576 } });
  });
});
