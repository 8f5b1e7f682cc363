import fc from 'fast-check';
import type { GpuInfo, GpuStatus } from '@gantry/contracts';
import { Capacity, type Reservation } from './capacity';

const gpu = (index: number, memoryTotalMb: number): GpuInfo => ({
  index,
  uuid: `GPU-${index}`,
  name: 'Fake GPU',
  memoryTotalMb,
});

function worker(
  c: Capacity,
  id: string,
  o: { pool?: string; slots?: number; slotsPerGpu?: number; gpus?: GpuStatus[]; draining?: boolean } = {},
) {
  c.upsertWorker({
    id,
    pool: o.pool ?? 'default',
    slots: o.slots ?? 2,
    slotsPerGpu: o.slotsPerGpu ?? 2,
    gpus: o.gpus ?? [],
    draining: o.draining ?? false,
    ready: true,
  });
}

/** Places and reserves in one go, as the dispatcher does. */
function take(
  c: Capacity,
  jobId: string,
  tenant: string,
  req: { pool?: string; gpuCount?: number; memoryMb?: number },
) {
  const p = c.place({ pool: req.pool ?? 'default', gpuCount: req.gpuCount ?? -1, gpuMemoryMb: req.memoryMb ?? 0 });
  if (!p.ok) return p;
  c.reserve({
    jobId,
    tenant,
    pool: req.pool ?? 'default',
    workerId: p.workerId,
    gpuIndices: p.gpuIndices,
    memoryMb: p.memoryMb,
  });
  return p;
}

describe('Capacity', () => {
  it('counts global tokens; a cap lowered at runtime below what is held frees nothing and admits nothing', () => {
    const c = new Capacity(3);
    worker(c, 'w1', { slots: 10 });
    for (const id of ['a', 'b', 'c']) expect(take(c, id, 't', {}).ok).toBe(true);
    expect(c.globalFree).toBe(0);
    c.maxConcurrent = 1;
    expect(c.globalFree).toBe(0);
    expect(c.used).toBe(3);
    c.release('a');
    c.release('b');
    expect(c.globalFree).toBe(0);
    c.release('c');
    expect(c.globalFree).toBe(1);
    c.maxConcurrent = 0;
    expect(c.globalFree).toBe(0);
  });

  it('enforces the tenant cap and gives the token back on release (never negative)', () => {
    const c = new Capacity(10, 2);
    worker(c, 'w1', { slots: 10 });
    take(c, 'a', 'acme', {});
    expect(c.tenantBlocked('acme')).toBe(false);
    take(c, 'b', 'acme', {});
    expect(c.tenantBlocked('acme')).toBe(true);
    expect(c.tenantBlocked('other')).toBe(false);
    c.release('a');
    c.release('a');
    expect(c.tenantUsed('acme')).toBe(1);
    expect(c.tenantBlocked('acme')).toBe(false);
    expect(new Capacity(10).tenantBlocked('anyone')).toBe(false);
  });

  it('uses worker slots of the job’s pool only, skipping draining and not-ready workers', () => {
    const c = new Capacity(100);
    worker(c, 'w1', { slots: 1 });
    worker(c, 'w2', { slots: 1, draining: true });
    worker(c, 'gpu-pool', { slots: 4, pool: 'gpu' });
    c.upsertWorker({ id: 'w3', pool: 'default', slots: 3, slotsPerGpu: 2, gpus: [], draining: false });
    expect(c.poolFreeSlots('default')).toBe(1);
    expect(take(c, 'a', 't', {})).toMatchObject({ ok: true, workerId: 'w1' });
    expect(take(c, 'b', 't', {})).toEqual({ ok: false, reason: 'no-slot' });
    expect(c.setReady('w3', true)).toBe(true);
    expect(c.setReady('w3', true)).toBe(false);
    expect(take(c, 'b', 't', {})).toMatchObject({ ok: true, workerId: 'w3' });
    expect(take(c, 'x', 't', { pool: 'nowhere' })).toEqual({ ok: false, reason: 'no-worker' });
    expect(c.poolSlots('default')).toBe(5);
  });

  it('places GPU jobs best-fit on memory and never oversubscribes a GPU', () => {
    const c = new Capacity(100);
    worker(c, 'big', { slots: 8, slotsPerGpu: 4, gpus: [gpu(0, 80_000), gpu(1, 80_000)] });
    worker(c, 'small', { slots: 8, slotsPerGpu: 4, gpus: [gpu(0, 24_000)] });
    // 20 GB fits the 24 GB card best.
    expect(take(c, 'a', 't', { gpuCount: 1, memoryMb: 20_000 })).toMatchObject({ workerId: 'small', gpuIndices: [0] });
    // The small card has 4 GB left: the next 20 GB job goes to a big card.
    expect(take(c, 'b', 't', { gpuCount: 1, memoryMb: 20_000 })).toMatchObject({ workerId: 'big' });
    expect(take(c, 'c', 't', { gpuCount: 2, memoryMb: 61_000 })).toEqual({ ok: false, reason: 'no-memory' });
    c.release('b');
    expect(take(c, 'c', 't', { gpuCount: 2, memoryMb: 60_000 })).toMatchObject({
      workerId: 'big',
      gpuIndices: [0, 1],
      memoryMb: 60_000,
    });
    const big = c.worker('big')!;
    expect(big.gpus.map((g) => g.reservedMb)).toEqual([60_000, 60_000]);
    expect(take(c, 'd', 't', { gpuCount: 1, memoryMb: 20_001 })).toEqual({ ok: false, reason: 'no-memory' });
    expect(take(c, 'e', 't', { gpuCount: 1, memoryMb: 100_000 })).toEqual({ ok: false, reason: 'never-fits' });
    expect(take(c, 'f', 't', { gpuCount: 3, memoryMb: 1 })).toEqual({ ok: false, reason: 'never-fits' });
  });

  it('counts GPU slots: jobs without a GPU request take one GPU slot on GPU workers, CPU-only jobs none', () => {
    const c = new Capacity(100);
    worker(c, 'w', { slots: 4, slotsPerGpu: 1, gpus: [gpu(0, 16_000)] });
    expect(take(c, 'a', 't', {})).toMatchObject({ ok: true, gpuIndices: [0], memoryMb: 0 });
    expect(take(c, 'b', 't', {})).toMatchObject({ ok: false, reason: 'no-memory' });
    expect(take(c, 'c', 't', { gpuCount: 0 })).toMatchObject({ ok: true, gpuIndices: [] });
  });

  it('recounts a worker heard of after the reservations that name it (takeover), and forgets a lost one', () => {
    const c = new Capacity(10);
    const r: Reservation = {
      jobId: 'running-1',
      tenant: 't',
      pool: 'default',
      workerId: 'late',
      gpuIndices: [0],
      memoryMb: 5_000,
    };
    c.reserve(r);
    expect(c.used).toBe(1);
    worker(c, 'late', { slots: 2, gpus: [gpu(0, 10_000)] });
    expect(c.worker('late')).toMatchObject({ used: 1 });
    expect(c.worker('late')!.gpus[0]).toMatchObject({ reservedMb: 5_000, jobs: 1 });
    // A heartbeat refreshes without losing what is reserved.
    worker(c, 'late', { slots: 2, gpus: [gpu(0, 10_000)] });
    expect(c.worker('late')!.gpus[0]!.reservedMb).toBe(5_000);
    expect(c.removeWorker('late').map((x) => x.jobId)).toEqual(['running-1']);
    expect(c.worker('late')).toBeUndefined();
    expect(c.used).toBe(1);
    c.release('running-1');
    expect(c.used).toBe(0);
    // Reserving the same job twice moves it instead of counting it twice.
    worker(c, 'w', { slots: 2 });
    c.reserve({ ...r, workerId: 'w', gpuIndices: [] });
    c.reserve({ ...r, workerId: 'w', gpuIndices: [] });
    expect(c.used).toBe(1);
    expect(c.worker('w')!.used).toBe(1);
  });

  it('never exceeds global, tenant, slot or GPU memory limits under any sequence of places and releases (property)', () => {
    const req = fc.record({
      tenant: fc.constantFrom('a', 'b', 'c'),
      gpuCount: fc.constantFrom(-1, 0, 1, 1, 2),
      memoryMb: fc.constantFrom(0, 1_000, 8_000, 20_000, 40_000, 80_000),
      release: fc.nat({ max: 3 }),
    });
    fc.assert(
      fc.property(
        fc.array(req, { minLength: 1, maxLength: 200, size: 'max' }),
        fc.integer({ min: 1, max: 12 }),
        fc.integer({ min: 1, max: 5 }),
        (ops, max, tenantCap) => {
          const c = new Capacity(max, tenantCap);
          worker(c, 'w1', { slots: 4, slotsPerGpu: 2, gpus: [gpu(0, 81_559), gpu(1, 81_559)] });
          worker(c, 'w2', { slots: 3, slotsPerGpu: 3, gpus: [gpu(0, 24_576)] });
          worker(c, 'w3', { slots: 2 });
          const held: string[] = [];
          ops.forEach((o, k) => {
            if (o.release === 0 && held.length > 0) c.release(held.splice(k % held.length, 1)[0]!);
            if (c.globalFree === 0 || c.tenantBlocked(o.tenant)) return;
            const id = `j${k}`;
            const p = take(c, id, o.tenant, { gpuCount: o.gpuCount, memoryMb: o.memoryMb });
            if (p.ok) held.push(id);
            expect(c.used).toBeLessThanOrEqual(max);
            for (const t of ['a', 'b', 'c']) expect(c.tenantUsed(t)).toBeLessThanOrEqual(tenantCap);
            for (const w of c.allWorkers()) {
              expect(w.used).toBeLessThanOrEqual(w.slots);
              for (const g of w.gpus) {
                expect(g.reservedMb).toBeLessThanOrEqual(g.memoryTotalMb);
                expect(g.jobs).toBeLessThanOrEqual(w.slotsPerGpu);
              }
            }
          });
          for (const id of held) c.release(id);
          expect(c.used).toBe(0);
          for (const w of c.allWorkers()) {
            expect(w.used).toBe(0);
            for (const g of w.gpus) expect([g.reservedMb, g.jobs]).toEqual([0, 0]);
          }
        },
      ),
      { numRuns: 150 },
    );
  });

  describe('live GPU state (v1.1)', () => {
    const live = (index: number, total: number, used: number, extra: Partial<GpuStatus> = {}): GpuStatus => ({
      ...gpu(index, total),
      memoryUsedMb: used,
      memoryFreeMb: total - used,
      health: 'ok',
      ...extra,
    });

    it('never places on a cordoned GPU, with or without declared memory, and resumes once it is uncordoned', () => {
      const c = new Capacity(10);
      worker(c, 'w1', { slots: 4, gpus: [live(0, 80_000, 0, { health: 'cordoned' }), live(1, 80_000, 0)] });
      expect(take(c, 'a', 't', {})).toMatchObject({ ok: true, gpuIndices: [1] });
      expect(take(c, 'b', 't', { gpuCount: 1, memoryMb: 1000 })).toMatchObject({ ok: true, gpuIndices: [1] });
      expect(take(c, 'c', 't', { gpuCount: 1, memoryMb: 1000 })).toEqual({ ok: false, reason: 'no-memory' });
      expect(take(c, 'd', 't', { gpuCount: 2, memoryMb: 1000 })).toEqual({ ok: false, reason: 'no-memory' });
      worker(c, 'w1', { slots: 4, gpus: [live(0, 80_000, 0), live(1, 80_000, 0)] });
      expect(take(c, 'c', 't', { gpuCount: 1, memoryMb: 1000 })).toMatchObject({ ok: true, gpuIndices: [0] });
    });

    it('admits declared memory only within live free memory, less unclaimed reservations and the margin', () => {
      const c = new Capacity(10, undefined, 500);
      // 80 GB GPU with 60 GB used by something outside Gantry: the reservation budget alone would admit 40 GB.
      worker(c, 'w1', { slots: 4, slotsPerGpu: 4, gpus: [live(0, 80_000, 60_000)] });
      expect(take(c, 'big', 't', { gpuCount: 1, memoryMb: 40_000 })).toEqual({ ok: false, reason: 'no-memory' });
      // free 20 000 − margin 500 = 19 500
      expect(take(c, 'a', 't', { gpuCount: 1, memoryMb: 19_500 })).toMatchObject({ ok: true });
      c.release('a');
      expect(take(c, 'a', 't', { gpuCount: 1, memoryMb: 10_000 })).toMatchObject({ ok: true });
      // The reservation is not visible as used memory yet: 20 000 − (10 000 − 60 000 → 0)… used still counts the
      // outside process, so the unclaimed part is max(0, 10 000 − 60 000) = 0 and 9 500 more would fit by the sample.
      expect(c.liveHeadroomMb(c.worker('w1')!.gpus[0]!)).toBe(19_500);
      // On an otherwise idle GPU, an unclaimed reservation is held back from the live free memory.
      const d = new Capacity(10, undefined, 500);
      worker(d, 'w2', { slots: 4, slotsPerGpu: 4, gpus: [live(0, 24_000, 0)] });
      expect(take(d, 'x', 't', { gpuCount: 1, memoryMb: 16_000 })).toMatchObject({ ok: true });
      expect(take(d, 'y', 't', { gpuCount: 1, memoryMb: 8_000 })).toEqual({ ok: false, reason: 'no-memory' });
      expect(take(d, 'y', 't', { gpuCount: 1, memoryMb: 7_500 })).toMatchObject({ ok: true });
      // The job's memory shows up in the next sample: nothing changes for what is left.
      d.release('y');
      worker(d, 'w2', { slots: 4, slotsPerGpu: 4, gpus: [live(0, 24_000, 16_000)] });
      expect(d.liveHeadroomMb(d.worker('w2')!.gpus[0]!)).toBe(7_500);
      // A job that grew past its reservation leaves less for others than the budget says.
      worker(d, 'w2', { slots: 4, slotsPerGpu: 4, gpus: [live(0, 24_000, 22_000)] });
      expect(take(d, 'z', 't', { gpuCount: 1, memoryMb: 4_000 })).toEqual({ ok: false, reason: 'no-memory' });
      expect(take(d, 'z', 't', { gpuCount: 1, memoryMb: 1_500 })).toMatchObject({ ok: true });
    });

    it('a GPU nearly full by its live sample takes no job of unspecified memory either', () => {
      const c = new Capacity(10, undefined, 1_000);
      worker(c, 'w1', { slots: 4, gpus: [live(0, 24_000, 23_500), live(1, 24_000, 2_000)] });
      expect(take(c, 'a', 't', {})).toMatchObject({ ok: true, gpuIndices: [1] });
      expect(take(c, 'b', 't', {})).toMatchObject({ ok: true, gpuIndices: [1] });
      expect(take(c, 'c', 't', {})).toEqual({ ok: false, reason: 'no-memory' });
    });

    it('judges GPUs without a live sample (older workers, MIG instances) on the reservation budget alone', () => {
      const c = new Capacity(10, undefined, 1_000);
      worker(c, 'w1', { slots: 4, gpus: [{ ...gpu(100, 9_728), mig: true, memoryUsedMb: null, memoryFreeMb: null }] });
      expect(take(c, 'a', 't', { gpuCount: 1, memoryMb: 9_728 })).toMatchObject({ ok: true, gpuIndices: [100] });
    });

    it('reserves a default (learned) memory for a job of unspecified GPUs only where it fits', () => {
      const c = new Capacity(10, undefined, 500);
      worker(c, 'w1', { slots: 4, slotsPerGpu: 4, gpus: [live(0, 24_000, 20_000), live(1, 24_000, 0)] });
      const p = c.place({ pool: 'default', gpuCount: -1, gpuMemoryMb: 12_000 });
      expect(p).toEqual({ ok: true, workerId: 'w1', gpuIndices: [1], memoryMb: 12_000 });
      // On a CPU-only worker the same job takes a CPU slot and reserves nothing.
      const d = new Capacity(10);
      worker(d, 'cpu', { slots: 2 });
      expect(d.place({ pool: 'default', gpuCount: -1, gpuMemoryMb: 12_000 })).toEqual({
        ok: true,
        workerId: 'cpu',
        gpuIndices: [],
        memoryMb: 0,
      });
    });
  });
});
