import { newId, newWorkerId } from './ids';

describe('ids', () => {
  it('are ULIDs, unique and increasing within a process', () => {
    const ids = Array.from({ length: 10_000 }, () => newId());
    for (const id of ids.slice(0, 100)) expect(id).toMatch(/^[0-9A-HJKMNP-TV-Z]{26}$/);
    expect(new Set(ids).size).toBe(ids.length);
    expect([...ids].sort()).toEqual(ids);
  });

  it('worker ids carry a clean prefix', () => {
    expect(newWorkerId('gpu box/1')).toMatch(/^gpu-box-1-[0-9a-hjkmnp-tv-z]{26}$/);
  });
});
