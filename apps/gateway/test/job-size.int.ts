/**
 * MAX_JOB_BYTES (real NATS, real HTTP): a job over the limit, alone or inside a batch, is a 413 problem naming the
 * limit and nothing is written; a job at the limit is accepted; `metadata` over 8 KiB stays a 400; a bad value of the
 * variable stops the gateway at boot.
 */
import { ConfigError, loadConfig } from '@gantry/config';
import { STREAMS } from '@gantry/contracts';
import { gatewaySpec } from '../src/config';
import { CLIENT, expectProblem, startStack, type Client } from './harness';

const LIMIT = 4_096;

/** A noop job whose JSON is exactly `bytes` long. */
function jobOf(bytes: number): { type: string; input: { result: string } } {
  const bare = JSON.stringify({ type: 'noop', input: { result: '' } }).length;
  return { type: 'noop', input: { result: 'x'.repeat(bytes - bare) } };
}

describe('MAX_JOB_BYTES (real NATS)', () => {
  let s: Awaited<ReturnType<typeof startStack>>;
  let api: Client;
  const jobMessages = async () => (await s.handle.jsm.streams.info(STREAMS.jobs)).state.messages;
  const batchMessages = async () => (await s.handle.jsm.streams.info(STREAMS.batches)).state.messages;

  beforeAll(async () => {
    s = await startStack({ MAX_JOB_BYTES: String(LIMIT) });
    api = s.api.as(CLIENT);
  });
  afterAll(async () => s?.stop());

  it('accepts a job of exactly MAX_JOB_BYTES and refuses one byte more with a 413 naming the limit', async () => {
    expect(JSON.stringify(jobOf(LIMIT)).length).toBe(LIMIT);
    expect((await api.json('POST', '/v1/jobs', jobOf(LIMIT))).status).toBe(202);
    const before = await jobMessages();
    const p = expectProblem(await api.json('POST', '/v1/jobs', jobOf(LIMIT + 1)), 413);
    expect(p.detail).toMatch(/MAX_JOB_BYTES/);
    expect(p.detail).toContain(String(LIMIT));
    expect(await jobMessages()).toBe(before);
  });

  it('counts bytes, not characters (multi-byte UTF-8)', async () => {
    const before = await jobMessages();
    // 1,500 characters of 3 bytes each: 4,500 bytes for a JSON of ~1,540 characters.
    const p = expectProblem(
      await api.json('POST', '/v1/jobs', { type: 'noop', input: { result: '€'.repeat(1_500) } }),
      413,
    );
    expect(p.detail).toMatch(/MAX_JOB_BYTES/);
    expect(await jobMessages()).toBe(before);
  });

  it('refuses a whole batch with one job over the limit (413 naming it), creating nothing', async () => {
    const jobs = [jobOf(100), jobOf(LIMIT), jobOf(LIMIT + 10), jobOf(200)];
    const [j, b] = [await jobMessages(), await batchMessages()];
    const p = expectProblem(await api.json('POST', '/v1/batches', { jobs }), 413);
    expect(p.detail).toMatch(/jobs\[2\].*MAX_JOB_BYTES/);
    expect([await jobMessages(), await batchMessages()]).toEqual([j, b]);
    // The same batch without the big job goes through.
    expect((await api.json('POST', '/v1/batches', { jobs: [jobs[0], jobs[1], jobs[3]] })).status).toBe(202);
  });

  it('keeps metadata over 8 KiB a 400 naming the field, even when the job is also over MAX_JOB_BYTES', async () => {
    const before = await jobMessages();
    const p = expectProblem(
      await api.json('POST', '/v1/jobs', { type: 'noop', metadata: { pad: 'x'.repeat(9 * 1024) } }),
      400,
    );
    expect(p.errors?.map((e) => e.field)).toContain('metadata');
    expect(await jobMessages()).toBe(before);
  });

  it('validates the variable at boot', () => {
    for (const bad of ['0', '-1', 'lots', '1e9', String(2 * 1024 * 1024)]) {
      expect(() => loadConfig(gatewaySpec, { MAX_JOB_BYTES: bad })).toThrow(ConfigError);
    }
    expect(loadConfig(gatewaySpec, {}).MAX_JOB_BYTES).toBe(65_536);
  });
});
