import type { GpuInfo } from '@gantry/contracts';
import { GpuHealthTracker } from './gpu-health';

const A = 'GPU-aaaaaaaa-0000-0000-0000-000000000000';
const B = 'GPU-bbbbbbbb-0000-0000-0000-000000000000';
const M0 = 'MIG-bbbbbbbb-0000-0000-0000-000000000010';
const M1 = 'MIG-bbbbbbbb-0000-0000-0000-000000000011';
const devices: GpuInfo[] = [
  { index: 0, uuid: A, name: 'H100', memoryTotalMb: 81559 },
  { index: 200, uuid: M0, name: 'H100 MIG 1g.10gb', memoryTotalMb: 9728, mig: true, parentUuid: B },
  { index: 201, uuid: M1, name: 'H100 MIG 1g.10gb', memoryTotalMb: 9728, mig: true, parentUuid: B },
];
const settings = { recheckMs: 60_000, startFailureLimit: 3, cordonXids: [48, 79] };

describe('GpuHealthTracker', () => {
  it('cordons a GPU on new uncorrected ECC errors, and lifts it after a clean probe past the quiet time', () => {
    const h = new GpuHealthTracker(devices, settings);
    expect(h.observe([{ uuid: A, eccErrors: 0 }], 0)).toEqual([]);
    expect(h.observe([{ uuid: A, eccErrors: 2 }], 1_000)).toEqual([
      { uuid: A, health: 'cordoned', kind: 'ecc', reason: 'ECC: 2 uncorrected errors (was 0)' },
    ]);
    expect(h.status(A)).toEqual({ health: 'cordoned', cordonReason: 'ECC: 2 uncorrected errors (was 0)' });
    // The same count is no new error; but the quiet time has not passed yet.
    expect(h.observe([{ uuid: A, eccErrors: 2 }], 30_000)).toEqual([]);
    expect(h.isCordoned(A)).toBe(true);
    // A new error restarts the quiet time.
    expect(h.observe([{ uuid: A, eccErrors: 3 }], 40_000)).toEqual([]);
    expect(h.observe([{ uuid: A, eccErrors: 3 }], 90_000)).toEqual([]);
    expect(h.observe([{ uuid: A, eccErrors: 3 }], 100_000)).toEqual([
      { uuid: A, health: 'ok', kind: 'ecc', reason: 'clean probe' },
    ]);
    expect(h.status(A)).toEqual({ health: 'ok' });
  });

  it('cordons on a listed XID only, every MIG instance of the GPU with it', () => {
    const h = new GpuHealthTracker(devices, settings);
    expect(h.xid(B, 13, 0)).toEqual([]); // a job's own fault
    expect(h.xid(B, 79, 0).map((c) => [c.uuid, c.kind, c.reason])).toEqual([
      [M0, 'xid', 'XID 79'],
      [M1, 'xid', 'XID 79'],
    ]);
    expect(h.isCordoned(A)).toBe(false);
  });

  it('cordons after start failures of several distinct jobs in a row; one job failing again does not count twice', () => {
    const h = new GpuHealthTracker(devices, settings);
    expect(h.attemptEnded([A], 'j1', true, 0)).toEqual([]);
    expect(h.attemptEnded([A], 'j1', true, 0)).toEqual([]);
    expect(h.attemptEnded([A], 'j2', true, 0)).toEqual([]);
    expect(h.attemptEnded([A], 'j3', false, 0)).toEqual([]); // a good run resets the count
    expect(h.attemptEnded([A], 'j4', true, 0)).toEqual([]);
    expect(h.attemptEnded([A], 'j5', true, 0)).toEqual([]);
    expect(h.attemptEnded([A], 'j6', true, 0)).toEqual([
      { uuid: A, health: 'cordoned', kind: 'start-failures', reason: 'attempts of 3 jobs in a row failed at start' },
    ]);
    const off = new GpuHealthTracker(devices, { ...settings, startFailureLimit: 0 });
    for (const j of ['a', 'b', 'c', 'd']) expect(off.attemptEnded([A], j, true, 0)).toEqual([]);
  });

  it('admin cordons stay until an admin uncordons; an admin uncordon also lifts an automatic cordon', () => {
    const h = new GpuHealthTracker(devices, settings);
    expect(h.cordon('GPU-unknown', 'x')).toBeUndefined();
    expect(h.cordon(A, 'fan noise')).toEqual([{ uuid: A, health: 'cordoned', kind: 'admin', reason: 'fan noise' }]);
    expect(h.observe([{ uuid: A, eccErrors: 0 }], 10_000_000)).toEqual([]); // a clean probe does not lift it
    expect(h.status(A)).toEqual({ health: 'cordoned', cordonReason: 'fan noise' });
    expect(h.uncordon(A)).toEqual([{ uuid: A, health: 'ok', kind: 'admin', reason: 'uncordoned by an admin' }]);
    expect(h.uncordon(A)).toEqual([]); // already ok
    // A physical GPU's UUID names its MIG instances.
    expect(h.xid(B, 48, 0)).toHaveLength(2);
    expect(h.uncordon(B)?.map((c) => [c.uuid, c.health, c.kind])).toEqual([
      [M0, 'ok', 'xid'],
      [M1, 'ok', 'xid'],
    ]);
  });
});
