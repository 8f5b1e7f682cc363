import {
  InvalidQueueConfigError,
  parseQueueConfigRecord,
  parseQueueConfigUpdate,
  QUEUE_CONFIG_BOUNDS,
  queueConfigUpdateProblems,
} from './queue-config';

describe('queue config bounds', () => {
  const { maxConcurrentJobs: c, maxQueueSize: q } = QUEUE_CONFIG_BOUNDS;

  it('accepts the bounds themselves and drops unknown fields', () => {
    expect(parseQueueConfigUpdate({ maxConcurrentJobs: c.min, maxQueueSize: q.min, other: 1 })).toEqual({
      maxConcurrentJobs: 0,
      maxQueueSize: 1,
    });
    expect(parseQueueConfigUpdate({ maxConcurrentJobs: c.max, maxQueueSize: q.max })).toEqual({
      maxConcurrentJobs: 1_000_000,
      maxQueueSize: 100_000_000,
    });
    expect(parseQueueConfigUpdate({})).toEqual({});
  });

  it('lists every bad value at once', () => {
    expect(queueConfigUpdateProblems({ maxConcurrentJobs: c.max + 1, maxQueueSize: 0 })).toEqual([
      'maxConcurrentJobs must be an integer from 0 to 1000000',
      'maxQueueSize must be an integer from 1 to 100000000',
    ]);
    for (const bad of [-1, 1.5, '3', null, Number.NaN])
      expect(queueConfigUpdateProblems({ maxConcurrentJobs: bad })).toHaveLength(1);
    for (const bad of [null, [], 'x', 3])
      expect(queueConfigUpdateProblems(bad)).toEqual(['the body must be a JSON object']);
    expect(() => parseQueueConfigUpdate({ maxQueueSize: 0 })).toThrow(InvalidQueueConfigError);
  });

  it('decodes a stored record and refuses one it does not understand', () => {
    const ok = { paused: true, draining: false, maxQueueSize: 5, updatedAt: '2030-01-01T00:00:00.000Z', extra: 1 };
    expect(parseQueueConfigRecord(ok)).toEqual({
      paused: true,
      draining: false,
      maxQueueSize: 5,
      updatedAt: '2030-01-01T00:00:00.000Z',
    });
    expect(() => parseQueueConfigRecord({ ...ok, paused: 'yes' })).toThrow('paused must be a boolean');
    expect(() => parseQueueConfigRecord({ ...ok, updatedAt: undefined })).toThrow('updatedAt must be a string');
    expect(() => parseQueueConfigRecord({ ...ok, maxQueueSize: 0 })).toThrow(InvalidQueueConfigError);
  });
});
