import { apiKeys, DEV_API_KEYS, fairShareSpec, refuseDevKeysInProduction, webhookSecrets } from './common';
import { bool, ConfigError, int, intList, loadConfig, natsServers, redactConfig, str } from './env';

describe('loadConfig', () => {
  const spec = {
    PORT: int({ default: 8080, min: 1, max: 65535, doc: 'port' }),
    DELAYS: intList({ default: [1, 2], doc: 'delays' }),
    FLAG: bool({ default: false, doc: 'flag' }),
    NAME: str({ default: 'x', pattern: /^[a-z]+$/, doc: 'name' }),
    MAX: int({ default: 4, aliases: ['OLD_MAX'], doc: 'alias' }),
    NATS: natsServers({ default: ['nats://127.0.0.1:4222'], doc: 'servers' }),
    SECRET: str({ default: '', secret: true, doc: 'secret' }),
  };

  it('applies defaults and freezes the result', () => {
    const c = loadConfig(spec, {});
    expect(c).toEqual({
      PORT: 8080,
      DELAYS: [1, 2],
      FLAG: false,
      NAME: 'x',
      MAX: 4,
      NATS: ['nats://127.0.0.1:4222'],
      SECRET: '',
    });
    expect(Object.isFrozen(c)).toBe(true);
  });

  it('lists every bad variable at once', () => {
    try {
      loadConfig(spec, { PORT: '70000', DELAYS: '1,,2', FLAG: 'maybe', NAME: 'A1', NATS: 'http://x' });
      throw new Error('expected a ConfigError');
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      const vars = (err as ConfigError).problems.map((p) => p.variable).sort();
      expect(vars).toEqual(['DELAYS', 'FLAG', 'NAME', 'NATS', 'PORT']);
      expect((err as Error).message).toContain('PORT="70000"');
    }
  });

  it('reads aliases and redacts secrets', () => {
    const c = loadConfig(spec, { OLD_MAX: '9', SECRET: 's3cret' });
    expect(c.MAX).toBe(9);
    expect(redactConfig(spec, c)['SECRET']).toBe('[redacted]');
  });

  it('parses API keys with roles and tenants and refuses dev keys in production', () => {
    const keys = apiKeys('keys');
    expect(keys.parse(undefined)).toEqual(DEV_API_KEYS);
    expect(keys.parse('adminkey01:admin,clientkey1:client:acme')).toEqual([
      { key: 'adminkey01', role: 'admin', tenant: 'default' },
      { key: 'clientkey1', role: 'client', tenant: 'acme' },
    ]);
    expect(() => keys.parse('short:admin')).toThrow();
    expect(() => keys.parse('longenough:root')).toThrow(/admin or client/);
    expect(() => keys.parse('longenough:client:bad tenant')).toThrow();
    expect(refuseDevKeysInProduction({ NODE_ENV: 'production', API_KEYS: [...DEV_API_KEYS] }, {})).toHaveLength(1);
    expect(refuseDevKeysInProduction({ NODE_ENV: 'development', API_KEYS: [...DEV_API_KEYS] }, {})).toHaveLength(0);
  });

  it('parses per-tenant webhook secrets (two during a rotation)', () => {
    const s = webhookSecrets('secrets');
    const a = 'whsec_' + Buffer.from('tenant-a-secret-000001').toString('base64');
    const b = 'whsec_' + Buffer.from('tenant-a-secret-000002').toString('base64');
    expect(s.parse(`acme=${a} ${b},other=${a}`)).toEqual({ acme: [a, b], other: [a] });
    expect(() => s.parse(`acme=${a} ${a} ${a}`)).toThrow();
    expect(() => s.parse('acme=nope')).toThrow();
  });

  it('parses TENANT_WEIGHTS and lists every bad entry at once', () => {
    const w = fairShareSpec.TENANT_WEIGHTS;
    expect(w.parse(undefined)).toEqual({});
    expect({ ...w.parse(' acme=3, other_team=1000 ,x-1=1') }).toEqual({ acme: 3, other_team: 1000, 'x-1': 1 });
    expect(() => w.parse('acme=0')).toThrow(/1–1000/);
    expect(() => w.parse('acme=1001')).toThrow(/1–1000/);
    expect(() => w.parse('acme=1.5')).toThrow(/1–1000/);
    expect(() => w.parse('acme')).toThrow(/tenant=weight/);
    expect(() => w.parse('bad tenant=2')).toThrow(/tenant=weight/);
    expect(() => w.parse('a=1,a=2')).toThrow(/twice/);
    expect(() => w.parse('a=0,b=x')).toThrow(/weight of a .*; weight of b/);
    expect(() => loadConfig(fairShareSpec, { TENANT_WEIGHTS: 'a=0', FAIR_SHARE_HALF_LIFE_SECONDS: '0' })).toThrow(
      /TENANT_WEIGHTS[\s\S]*FAIR_SHARE_HALF_LIFE_SECONDS/,
    );
    expect(loadConfig(fairShareSpec, {}).FAIR_SHARE_HALF_LIFE_SECONDS).toBe(300);
  });
});
