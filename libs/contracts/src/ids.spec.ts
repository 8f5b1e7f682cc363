import { newId, newJobId, newWorkerId, randomToken } from './ids';
import { isNoCallbackJobId, SUBJECTS } from './names';

describe('ids', () => {
  it('are ULIDs, unique and increasing within a process', () => {
    const ids = Array.from({ length: 10_000 }, () => newId());
    for (const id of ids.slice(0, 100)) expect(id).toMatch(/^[0-9A-HJKMNP-TV-Z]{26}$/);
    expect(new Set(ids).size).toBe(ids.length);
    expect([...ids].sort()).toEqual(ids);
  });

  it('job ids say whether the job has a callback, and so which subject it lives on', () => {
    const loud = Array.from({ length: 1_000 }, () => newJobId(true));
    const quiet = Array.from({ length: 1_000 }, () => newJobId(false));
    for (const id of loud) {
      expect(id).toMatch(/^[0-9A-HJKMNP-TV-Z]{26}$/);
      expect(isNoCallbackJobId(id)).toBe(false);
      expect(SUBJECTS.job(id)).toBe(`gantry.v1.job.${id}`);
    }
    for (const id of quiet) {
      expect(id).toMatch(/^[0-9a-hjkmnp-tv-z]{26}$/);
      expect(isNoCallbackJobId(id)).toBe(true);
      expect(SUBJECTS.job(id)).toBe(`gantry.v1.job_nocb.${id}`);
      expect(SUBJECTS.jobIdFromSubject(SUBJECTS.job(id))).toBe(id);
    }
    expect(new Set(quiet).size).toBe(quiet.length);
    expect([...quiet].sort()).toEqual(quiet);
    // Ids minted before the no-callback form (upper case, even all digits) and other ids keep the shared subject.
    expect(SUBJECTS.job('01234567890123456789012345')).toBe('gantry.v1.job.01234567890123456789012345');
    expect(SUBJECTS.job('job-c')).toBe('gantry.v1.job.job-c');
    expect(SUBJECTS.job('abcdefghijklmnopqrstuvwxyz')).toBe('gantry.v1.job.abcdefghijklmnopqrstuvwxyz'); // i, l, o, u
    expect(SUBJECTS.jobIdFromSubject('gantry.v1.job.job-c')).toBe('job-c');
  });

  it('worker ids carry a clean prefix', () => {
    expect(newWorkerId('gpu box/1')).toMatch(/^gpu-box-1-[0-9a-hjkmnp-tv-z]{26}$/);
  });

  it('random tokens are 8 base64url characters, distinct, every character drawn', () => {
    const tokens = Array.from({ length: 20_000 }, () => randomToken());
    for (const t of tokens) expect(t).toMatch(/^[A-Za-z0-9_-]{8}$/);
    expect(new Set(tokens).size).toBe(tokens.length);
    const seen = new Set(tokens.join(''));
    expect(seen.size).toBe(64);
  });
});
