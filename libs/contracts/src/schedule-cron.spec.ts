import { cronProblem, dueNow, isTimeZone, latestDueAtOrBefore, nextDueAfter } from './schedule-cron';
import { scheduleJobId, scheduleKey, toScheduleView, type ScheduleRecord } from './schedule';
import { isNoCallbackJobId, SUBJECT_TOKEN, SUBJECTS } from './names';
import { CHANNELS } from './channels';

const at = (iso: string) => Date.parse(iso);
const iso = (ms: number | undefined) => (ms === undefined ? undefined : new Date(ms).toISOString());

/** The due times after `fromIso`, `n` of them, walking with nextDueAfter as the scheduler does. */
function walk(cron: string, tz: string, fromIso: string, n: number): string[] {
  const out: string[] = [];
  let t = at(fromIso);
  for (let i = 0; i < n; i++) {
    const next = nextDueAfter(cron, tz, t);
    if (next === undefined) break;
    out.push(iso(next)!);
    t = next;
  }
  return out;
}

describe('cron due times', () => {
  it('accepts 5- and 6-field crons and refuses the rest with a reason', () => {
    expect(cronProblem('*/5 * * * *')).toBeUndefined();
    expect(cronProblem('*/2 * * * * *')).toBeUndefined();
    expect(cronProblem('0 30 9 * * 1-5')).toBeUndefined();
    expect(cronProblem('* * * *')).toMatch(/5 fields/);
    expect(cronProblem('* * * * * * *')).toMatch(/5 fields/);
    expect(cronProblem('61 * * * *')).toMatch(/not a valid cron/);
    expect(cronProblem('0 0 31 2 *')).toMatch(/not a valid cron/);
    expect(cronProblem('')).toMatch(/5 fields/);
  });

  it('knows IANA time zones', () => {
    expect(isTimeZone('UTC')).toBe(true);
    expect(isTimeZone('Europe/Paris')).toBe(true);
    expect(isTimeZone('Mars/Olympus')).toBe(false);
    expect(isTimeZone('')).toBe(false);
  });

  it('walks a 6-field cron every 2 s, strictly after the instant given', () => {
    expect(walk('*/2 * * * * *', 'UTC', '2026-12-02T10:00:00.000Z', 3)).toEqual([
      '2026-12-02T10:00:02.000Z',
      '2026-12-02T10:00:04.000Z',
      '2026-12-02T10:00:06.000Z',
    ]);
    expect(iso(nextDueAfter('*/2 * * * * *', 'UTC', at('2026-12-02T10:00:01.500Z')))).toBe('2026-12-02T10:00:02.000Z');
    expect(iso(latestDueAtOrBefore('*/2 * * * * *', 'UTC', at('2026-12-02T10:00:02.000Z')))).toBe(
      '2026-12-02T10:00:02.000Z',
    );
    expect(iso(latestDueAtOrBefore('*/2 * * * * *', 'UTC', at('2026-12-02T10:00:03.999Z')))).toBe(
      '2026-12-02T10:00:02.000Z',
    );
  });

  it('reads the cron in its time zone', () => {
    // 09:00 in Paris is 08:00 UTC in winter.
    expect(walk('0 9 * * *', 'Europe/Paris', '2026-12-02T00:00:00Z', 1)).toEqual(['2026-12-02T08:00:00.000Z']);
    expect(walk('0 9 * * *', 'UTC', '2026-12-02T00:00:00Z', 1)).toEqual(['2026-12-02T09:00:00.000Z']);
  });

  it('spring forward in Europe/Paris: a local time that does not exist runs once, an hour later on the wall clock', () => {
    // 2026-03-29: 02:00 CET → 03:00 CEST. 02:30 does not exist that day; it runs at 03:30 CEST (01:30 UTC).
    expect(walk('30 2 * * *', 'Europe/Paris', '2026-03-28T12:00:00Z', 3)).toEqual([
      '2026-03-29T01:30:00.000Z',
      '2026-03-30T00:30:00.000Z',
      '2026-03-31T00:30:00.000Z',
    ]);
    // Hourly: the hour that does not exist is simply not there; every real hour runs once.
    const hours = walk('0 * * * *', 'Europe/Paris', '2026-03-28T23:30:00Z', 4);
    expect(hours).toEqual([
      '2026-03-29T00:00:00.000Z',
      '2026-03-29T01:00:00.000Z',
      '2026-03-29T02:00:00.000Z',
      '2026-03-29T03:00:00.000Z',
    ]);
  });

  it('fall back in Europe/Paris: a local time that happens twice runs once', () => {
    // 2026-10-25: 03:00 CEST → 02:00 CET; 02:30 happens at 00:30 UTC and again at 01:30 UTC: it runs at the first.
    expect(walk('30 2 * * *', 'Europe/Paris', '2026-10-24T12:00:00Z', 3)).toEqual([
      '2026-10-25T00:30:00.000Z',
      '2026-10-26T01:30:00.000Z',
      '2026-10-27T01:30:00.000Z',
    ]);
    const dues = walk('30 2 * * *', 'Europe/Paris', '2026-10-24T12:00:00Z', 3).map(at);
    expect(new Set(dues).size).toBe(3);
  });

  it('collapses due times missed while no scheduler ran into the latest one', () => {
    const cron = '*/2 * * * * *';
    // Next due was 10:00:02; the scheduler comes back at 10:00:11.3: one due time, 10:00:10, then 10:00:12.
    const d = dueNow(cron, 'UTC', at('2026-12-02T10:00:02Z'), at('2026-12-02T10:00:11.300Z'));
    expect(iso(d.due)).toBe('2026-12-02T10:00:10.000Z');
    expect(iso(d.next)).toBe('2026-12-02T10:00:12.000Z');
    // On time: the due time itself.
    const onTime = dueNow(cron, 'UTC', at('2026-12-02T10:00:02Z'), at('2026-12-02T10:00:02.004Z'));
    expect(iso(onTime.due)).toBe('2026-12-02T10:00:02.000Z');
    expect(iso(onTime.next)).toBe('2026-12-02T10:00:04.000Z');
    // Not yet: nothing, the same next due time.
    const early = dueNow(cron, 'UTC', at('2026-12-02T10:00:02Z'), at('2026-12-02T10:00:01.900Z'));
    expect(early.due).toBeUndefined();
    expect(iso(early.next)).toBe('2026-12-02T10:00:02.000Z');
    // Daily missed for three days: one job, the latest day.
    const daily = dueNow('0 6 * * *', 'Europe/Paris', at('2026-11-28T05:00:00Z'), at('2026-12-02T12:00:00Z'));
    expect(iso(daily.due)).toBe('2026-12-02T05:00:00.000Z');
    expect(iso(daily.next)).toBe('2026-12-03T05:00:00.000Z');
  });
});

describe('schedule records', () => {
  const record: ScheduleRecord = {
    v: 1,
    id: '01KBEXAMPLE0000000000000000',
    tenant: 'ta',
    name: 'nightly',
    cron: '0 2 * * *',
    timezone: 'Europe/Paris',
    job: { type: 'noop', callbackToken: 'secret' },
    spec: {
      tenant: 'ta',
      type: 'noop',
      input: {},
      priority: 'normal',
      pool: 'default',
      timeoutSeconds: 60,
      maxAttempts: 3,
      retryDelaysMs: [1000],
      metadata: {},
    },
    overlap: 'skip',
    paused: false,
    nextRunAt: '2026-12-03T01:00:00.000Z',
    lastDueAt: null,
    lastJobId: null,
    createdAt: '2026-12-02T10:00:00.000Z',
    updatedAt: '2026-12-02T10:00:00.000Z',
  };

  it('round-trips through its channel and refuses a malformed one', () => {
    expect(CHANNELS.schedules.parse(JSON.parse(JSON.stringify(record)))).toEqual(record);
    expect(() => CHANNELS.schedules.parse({ ...record, overlap: 'maybe' })).toThrow(/overlap/);
    expect(() => CHANNELS.schedules.parse({ ...record, spec: { ...record.spec, priority: 'x' } })).toThrow(/priority/);
  });

  it('never shows the callback token, and names jobs and keys deterministically', () => {
    expect(toScheduleView(record).job).toEqual({ type: 'noop' });
    expect(record.job.callbackToken).toBe('secret');
    expect(scheduleJobId(record.id, 1_764_669_600_000)).toBe(`${record.id}_1764669600000`);
  });

  it("gives a schedule's job the no-callback id form when the job has no callback, deterministically", () => {
    const ulid = '01KBG7Y3ZQ9W2M4N6P8R0T1V3X';
    const quiet = scheduleJobId(ulid, 1_764_669_600_000, false);
    expect(quiet).toBe('01kbg7y3zq9w2m4n6p8r0t1v3x_1764669600000');
    expect(scheduleJobId(ulid, 1_764_669_600_000, false)).toBe(quiet);
    expect(isNoCallbackJobId(quiet)).toBe(true);
    expect(SUBJECTS.job(quiet)).toBe(`gantry.v1.job_nocb.${quiet}`);
    expect(SUBJECT_TOKEN.test(quiet)).toBe(true);
    // With a callback: the plain form, on the subject the notifier reads.
    const loud = scheduleJobId(ulid, 1_764_669_600_000, true);
    expect(loud).toBe(`${ulid}_1764669600000`);
    expect(isNoCallbackJobId(loud)).toBe(false);
    expect(SUBJECTS.job(loud)).toBe(`gantry.v1.job.${loud}`);
    // A schedule id that is not a ULID (or one without a letter) keeps the plain form: never an ambiguous id.
    expect(scheduleJobId('SCHED0001', 5, false)).toBe('SCHED0001_5');
    expect(scheduleJobId('01234567890123456789012345', 5, false)).toBe('01234567890123456789012345_5');
    expect(isNoCallbackJobId('01234567890123456789012345_5')).toBe(false);
    // The suffix is digits only, and the ULID part lower case.
    expect(isNoCallbackJobId('01kbg7y3zq9w2m4n6p8r0t1v3x_12a')).toBe(false);
    expect(isNoCallbackJobId('01KBG7Y3ZQ9W2M4N6P8R0T1V3X_12')).toBe(false);
    expect(scheduleKey('ta', record.id)).toBe(`ta.${record.id}`);
    expect(() => scheduleKey('t.a', record.id)).toThrow();
  });
});
