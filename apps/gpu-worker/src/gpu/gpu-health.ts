/**
 * Health of the worker's GPUs, as pure bookkeeping (the clock is passed in). A device is cordoned — no new work, its
 * running attempts handed back — when its physical GPU reports new uncorrected ECC errors or a cordon-worthy XID, when
 * attempts on it keep failing right after they start, or by an admin. An automatic cordon is lifted by a clean probe:
 * a telemetry sample of the GPU at least `recheckMs` after its last error, with no new error. An admin cordon is
 * lifted only by an admin (who may also lift an automatic one).
 */
import type { GpuHealth, GpuInfo } from '@gantry/contracts';

export type CordonKind = 'ecc' | 'xid' | 'start-failures' | 'admin';

export interface HealthChange {
  uuid: string;
  health: GpuHealth;
  kind: CordonKind;
  reason: string;
}

export interface HealthSettings {
  /** Clean time after the last error before a probe may lift an automatic cordon. */
  recheckMs: number;
  /** Consecutive early failures that cordon a device. */
  startFailureLimit: number;
  /** XID codes that cordon. */
  cordonXids: readonly number[];
}

interface DeviceHealth {
  admin?: string;
  auto?: { kind: CordonKind; reason: string; lastErrorAt: number };
  /** Distinct jobs whose attempts failed at start in a row on this device. */
  startFailures: Set<string>;
}

export class GpuHealthTracker {
  private readonly state = new Map<string, DeviceHealth>();
  private readonly eccBaseline = new Map<string, number>();

  constructor(
    private readonly devices: readonly GpuInfo[],
    private readonly settings: HealthSettings,
  ) {
    for (const d of devices) this.state.set(d.uuid, { startFailures: new Set() });
  }

  private physicalOf(d: GpuInfo): string {
    return d.parentUuid ?? d.uuid;
  }

  /** The devices a UUID names: the device itself, or every MIG instance of a physical GPU. */
  devicesOf(uuid: string): GpuInfo[] {
    return this.devices.filter((d) => d.uuid === uuid || d.parentUuid === uuid);
  }

  status(uuid: string): { health: GpuHealth; cordonReason?: string } {
    const s = this.state.get(uuid);
    if (s?.admin !== undefined) return { health: 'cordoned', cordonReason: s.admin };
    if (s?.auto) return { health: 'cordoned', cordonReason: s.auto.reason };
    return { health: 'ok' };
  }

  isCordoned(uuid: string): boolean {
    return this.status(uuid).health === 'cordoned';
  }

  /** An error on a physical GPU: cordons (or keeps cordoned, with a fresh error time) each of its devices. */
  private fault(physical: string, kind: CordonKind, reason: string, now: number): HealthChange[] {
    const out: HealthChange[] = [];
    for (const d of this.devicesOf(physical)) out.push(...this.autoCordon(d.uuid, kind, reason, now));
    return out;
  }

  private autoCordon(uuid: string, kind: CordonKind, reason: string, now: number): HealthChange[] {
    const s = this.state.get(uuid);
    if (!s) return [];
    const was = this.isCordoned(uuid);
    s.auto = { kind, reason, lastErrorAt: now };
    return was ? [] : [{ uuid, health: 'cordoned', kind, reason }];
  }

  /** A telemetry sample: new ECC errors cordon; a clean probe lifts automatic cordons whose quiet time has passed. */
  observe(samples: readonly { uuid: string; eccErrors: number | null }[], now: number): HealthChange[] {
    const out: HealthChange[] = [];
    for (const s of samples) {
      const before = this.eccBaseline.get(s.uuid) ?? 0;
      if (s.eccErrors !== null && s.eccErrors > before) {
        this.eccBaseline.set(s.uuid, s.eccErrors);
        out.push(...this.fault(s.uuid, 'ecc', `ECC: ${s.eccErrors} uncorrected errors (was ${before})`, now));
        continue;
      }
      for (const d of this.devicesOf(s.uuid)) {
        const st = this.state.get(d.uuid)!;
        if (!st.auto || now - st.auto.lastErrorAt < this.settings.recheckMs) continue;
        const { kind } = st.auto;
        st.auto = undefined;
        st.startFailures.clear();
        if (st.admin === undefined) out.push({ uuid: d.uuid, health: 'ok', kind, reason: 'clean probe' });
      }
    }
    return out;
  }

  /** An XID from the kernel log, on the physical GPU with this UUID. */
  xid(physical: string, code: number, now: number): HealthChange[] {
    if (!this.settings.cordonXids.includes(code)) return [];
    return this.fault(physical, 'xid', `XID ${code}`, now);
  }

  /**
   * An attempt of `jobId` on these devices ended. One that failed soon after it started counts towards the limit, once
   * per job (one broken job retried on the same GPU is the job's fault, not the GPU's); any other outcome resets it.
   */
  attemptEnded(uuids: readonly string[], jobId: string, failedEarly: boolean, now: number): HealthChange[] {
    const out: HealthChange[] = [];
    const limit = this.settings.startFailureLimit;
    for (const uuid of uuids) {
      const s = this.state.get(uuid);
      if (!s) continue;
      if (!failedEarly) {
        s.startFailures.clear();
        continue;
      }
      s.startFailures.add(jobId);
      if (limit > 0 && s.startFailures.size >= limit) {
        const reason = `attempts of ${s.startFailures.size} jobs in a row failed at start`;
        out.push(...this.autoCordon(uuid, 'start-failures', reason, now));
      }
    }
    return out;
  }

  /** Admin cordon of a device or of every MIG instance of a GPU; undefined when the UUID names none. */
  cordon(uuid: string, reason: string): HealthChange[] | undefined {
    const devices = this.devicesOf(uuid);
    if (devices.length === 0) return undefined;
    const out: HealthChange[] = [];
    for (const d of devices) {
      const was = this.isCordoned(d.uuid);
      this.state.get(d.uuid)!.admin = reason;
      if (!was) out.push({ uuid: d.uuid, health: 'cordoned', kind: 'admin', reason });
    }
    return out;
  }

  /** Admin uncordon: lifts admin and automatic cordons alike (the operator vouches for the GPU). */
  uncordon(uuid: string): HealthChange[] | undefined {
    const devices = this.devicesOf(uuid);
    if (devices.length === 0) return undefined;
    const out: HealthChange[] = [];
    for (const d of devices) {
      const s = this.state.get(d.uuid)!;
      const was = this.isCordoned(d.uuid);
      const kind: CordonKind = s.admin !== undefined ? 'admin' : (s.auto?.kind ?? 'admin');
      s.admin = undefined;
      s.auto = undefined;
      s.startFailures.clear();
      if (was) out.push({ uuid: d.uuid, health: 'ok', kind, reason: 'uncordoned by an admin' });
    }
    return out;
  }
}
