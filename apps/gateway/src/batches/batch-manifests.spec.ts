import type { NewJobSpec } from '@gantry/contracts';
import { splitIntoParts } from './batch-manifests';

const spec = (id: string, pad = 0): NewJobSpec => ({
  id,
  tenant: 'default',
  type: 'noop',
  input: {},
  priority: 'normal',
  pool: 'default',
  timeoutSeconds: 60,
  maxAttempts: 1,
  retryDelaysMs: [],
  metadata: pad ? { pad: 'x'.repeat(pad) } : {},
});

describe('splitIntoParts', () => {
  it('packs specs in order into parts under the limit', () => {
    const specs = Array.from({ length: 50 }, (_, i) => spec(`j${i}`, 1_000));
    const parts = splitIntoParts(specs, 10_000);
    expect(parts.length).toBeGreaterThan(1);
    expect(parts.flat().map((s) => s.id)).toEqual(specs.map((s) => s.id));
    for (const p of parts) expect(Buffer.byteLength(JSON.stringify(p))).toBeLessThanOrEqual(10_000 + 100);
  });

  it('refuses a spec larger than a part', () => {
    expect(() => splitIntoParts([spec('big', 20_000)], 10_000)).toThrow(/larger than/);
  });
});
