import 'reflect-metadata';
import { plainToInstance } from 'class-transformer';
import { validate } from 'class-validator';
import fc from 'fast-check';
import { flattenErrors } from '../http/validation';
import { GpuDto, SubmitJobDto } from './job.dto';
import { fastSubmitJobDto } from './job-fast-path';
import { FIELD_RULES } from './job-request.validator';

/** What the validator did before the fast path: class-transformer, then class-validator. */
async function slow(raw: Record<string, unknown>): Promise<{ dto: SubmitJobDto; errors: unknown[] }> {
  const dto = plainToInstance(SubmitJobDto, raw);
  return { dto, errors: flattenErrors(await validate(dto, FIELD_RULES)) };
}

/** Any JSON value of another shape than a field expects. */
const anyJson = fc.oneof(
  fc.constant(null),
  fc.boolean(),
  fc.integer(),
  fc.double(),
  fc.string(),
  fc.constant([]),
  fc.constant({}),
);
/** Mostly valid values (so that whole bodies often are), then boundaries on both sides and wrong types. */
const mostly = <T>(valid: fc.Arbitrary<T>, edges: fc.Arbitrary<unknown>) =>
  fc.oneof({ weight: 12, arbitrary: valid }, { weight: 1, arbitrary: edges }, { weight: 1, arbitrary: anyJson });
// Keys include names of Object.prototype's members now and then (class-transformer drops those).
const key = fc.oneof(
  { weight: 9, arbitrary: fc.string({ maxLength: 8 }) },
  fc.constantFrom('valueOf', 'constructor', 'toString'),
);
const json = (depth: number) =>
  fc.dictionary(key, fc.oneof(fc.jsonValue({ maxDepth: depth }), fc.dictionary(key, fc.jsonValue({ maxDepth: 1 }))));
const field = {
  input: mostly(
    fc.oneof(json(3), fc.constant({ durationMs: 0 }), fc.constant({ a: -0, b: [1, { c: 'é😀' }] })),
    fc.constantFrom(
      { big: 'x'.repeat(256 * 1024) },
      { big: 'x'.repeat(256 * 1024 - 10) },
      { big: 'é'.repeat(128 * 1024) },
      { big: 'é'.repeat(128 * 1024 - 10) },
    ),
  ),
  priority: mostly(fc.constantFrom('urgent', 'high', 'normal', 'low'), fc.constantFrom('URGENT', '')),
  pool: mostly(fc.stringMatching(/^[A-Za-z0-9_-]{1,64}$/), fc.constantFrom('x'.repeat(65), 'a.b', '')),
  callbackUrl: mostly(
    fc.oneof(fc.webUrl(), fc.string({ maxLength: 30 })),
    fc.constantFrom('x'.repeat(2048), 'x'.repeat(2049), '😀'.repeat(1024), '😀'.repeat(1100), '\uFE0F'.repeat(2050)),
  ),
  callbackToken: mostly(
    fc.stringMatching(/^[\x21-\x7e]{1,40}$/),
    fc.constantFrom('a b', 'x'.repeat(4096), 'x'.repeat(4097), '\u0001', 'é', ''),
  ),
  timeoutSeconds: mostly(fc.integer({ min: 1, max: 604_800 }), fc.constantFrom(0, 604_801, 1.5, -1, NaN)),
  maxAttempts: mostly(fc.integer({ min: 1, max: 100 }), fc.constantFrom(0, 101, 2.5)),
  gpu: mostly(
    fc.record(
      { count: fc.integer({ min: 0, max: 16 }), memoryMb: fc.integer({ min: 0, max: 10_000_000 }) },
      { requiredKeys: ['count'] },
    ),
    fc.oneof(
      fc.record(
        { count: fc.oneof(fc.integer({ min: -1, max: 17 }), anyJson), memoryMb: anyJson },
        { requiredKeys: [] },
      ),
      fc.constantFrom({ count: 1, extra: 1 }, [{ count: 1 }], { count: 1, memoryMb: 10_000_001 }),
    ),
  ),
  metadata: mostly(json(2), fc.constantFrom({ big: 'x'.repeat(8 * 1024) }, { big: 'x'.repeat(8 * 1024 - 10) })),
  runAt: mostly(
    fc.constantFrom('2026-12-02T15:00:00.000Z', '2026-12-02T15:00Z', '2026-12-02T15:00:00+01:00'),
    fc.constantFrom('2026-12-02', 'soon', `2026-12-02T15:00:00.${'1'.repeat(60)}Z`),
  ),
  delaySeconds: mostly(fc.nat(), fc.constantFrom(-1, 0.5, 1e300, Infinity)),
};
/** Fields the fast path leaves to class-validator, present now and then. */
const rare = {
  upload: fc.oneof(fc.constant({ url: 'https://example.com/put' }), anyJson),
  dependsOn: fc.oneof(fc.constant(['01JDXJ4V6Y8Q9R2S3T4U5V6W7X']), anyJson),
  ref: fc.oneof(fc.constant('a'), anyJson),
  unknownField: anyJson,
};
const body = fc
  .tuple(
    mostly(fc.constantFrom('noop', 'ffmpeg', 'a', 'x'.repeat(63)), fc.constantFrom('a'.repeat(64), 'Noop', '1a', '')),
    fc.boolean(),
    fc.record(field, { requiredKeys: [] }),
    fc.record(rare, { requiredKeys: [] }),
    fc.nat(9),
  )
  .map(([type, typed, common, extra, dice]) => ({
    ...(typed || dice > 0 ? { type } : {}),
    ...common,
    ...(dice === 0 ? extra : {}),
  })) as fc.Arbitrary<Record<string, unknown>>;

describe('the fast path of job validation', () => {
  it('accepts only what class-validator accepts, with an equal DTO', async () => {
    let taken = 0;
    await fc.assert(
      fc.asyncProperty(body, async (raw) => {
        const fast = fastSubmitJobDto(raw);
        if (!fast) return;
        taken++;
        const ref = await slow(raw);
        expect(ref.errors).toEqual([]);
        expect(fast).toBeInstanceOf(SubmitJobDto);
        expect(fast).toStrictEqual(ref.dto);
        if (ref.dto.gpu) expect(fast.gpu).toBeInstanceOf(GpuDto);
        // Copies: a job type that fills defaults into its input must not change the body (the idempotency hash).
        if (raw['input'] !== undefined) expect(fast.input).not.toBe(raw['input']);
        if (raw['metadata'] !== undefined) expect(fast.metadata).not.toBe(raw['metadata']);
      }),
      { numRuns: 3_000 },
    );
    expect(taken).toBeGreaterThan(100);
  });

  it('takes the common bodies, and leaves the rest to class-validator', async () => {
    const common: Record<string, unknown>[] = [
      { type: 'noop', input: { durationMs: 0 } },
      { type: 'noop' },
      {
        type: 'ffmpeg',
        input: { url: 'https://example.com/a.mp4', preset: 'thumbnail' },
        priority: 'high',
        pool: 'gpu',
        callbackUrl: 'https://example.com/hook',
        callbackToken: 'secret-1',
        timeoutSeconds: 600,
        maxAttempts: 3,
        gpu: { count: 1, memoryMb: 1024 },
        metadata: { customer: 'a' },
        delaySeconds: 5,
      },
      { type: 'noop', runAt: '2026-12-02T15:00:00.000Z' },
    ];
    for (const raw of common) {
      const fast = fastSubmitJobDto(raw);
      expect(fast).toBeDefined();
      expect(fast).toStrictEqual((await slow(raw)).dto);
    }
    const others: Record<string, unknown>[] = [
      { type: 'noop', upload: { url: 'https://example.com/put' } },
      { type: 'noop', dependsOn: ['01JDXJ4V6Y8Q9R2S3T4U5V6W7X'] },
      { type: 'noop', ref: 'a' },
      { type: 'noop', colour: 'red' },
      { input: {} },
      { type: 'noop', priority: null },
      { type: 'noop', gpu: { count: 1, extra: true } },
      { type: 'noop', input: JSON.parse('{"__proto__":{"x":1}}') as Record<string, unknown> },
      { type: 'noop', metadata: { a: [{ toString: 1 }] } },
    ];
    for (const raw of others) expect(fastSubmitJobDto(raw)).toBeUndefined();
  });
});
