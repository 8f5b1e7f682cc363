/**
 * XID errors are reported by the NVIDIA kernel driver in the kernel log (`NVRM: Xid (PCI:0000:3b:00): 79, pid=…`);
 * nvidia-smi's query has no field for them. The worker tails a file that receives kernel messages (`GPU_XID_LOG`,
 * e.g. `/var/log/kern.log`, or a file fed by `journalctl -k -f`), reading only what was appended since it started.
 */
import { open, stat } from 'node:fs/promises';
import { normalizePciBusId } from './gpu-telemetry';

export interface XidEvent {
  /** Normalized PCI address of the GPU (`dddd:bb:dd`). */
  pciBusId: string;
  code: number;
  line: string;
}

const XID = /NVRM: Xid \(PCI:([0-9a-fA-F:.]+)\): (\d+)/;

export function parseXidLine(line: string): XidEvent | undefined {
  const m = XID.exec(line);
  if (!m) return undefined;
  const pciBusId = normalizePciBusId(m[1]!);
  if (!pciBusId) return undefined;
  return { pciBusId, code: Number(m[2]), line: line.trim().slice(0, 300) };
}

/**
 * XIDs that mean the GPU itself is failing (NVIDIA's XID catalog: double-bit ECC 48, row-remapping 63/64, NVLink 74,
 * fallen off the bus 79, ECC 92/94/95, GSP 119/120, and the like). XIDs a faulty job causes (13, 31, 43 …) do not cordon.
 */
export const DEFAULT_CORDON_XIDS = [48, 61, 62, 63, 64, 74, 79, 92, 94, 95, 119, 120, 140];

export class XidLogTail {
  private offset = 0;
  private rest = '';

  constructor(private readonly path: string) {}

  /** Starts at the current end: XIDs from before this worker started are history, not news. */
  async init(): Promise<void> {
    this.offset = (await stat(this.path)).size;
  }

  /** The XID lines appended since the last read (a file that shrank was rotated: read it from the start). */
  async read(): Promise<XidEvent[]> {
    const { size } = await stat(this.path);
    if (size < this.offset) {
      this.offset = 0;
      this.rest = '';
    }
    if (size === this.offset) return [];
    const fh = await open(this.path, 'r');
    try {
      const len = Math.min(size - this.offset, 4 * 1024 * 1024);
      const buf = Buffer.alloc(len);
      const { bytesRead } = await fh.read(buf, 0, len, this.offset);
      this.offset += bytesRead;
      const text = this.rest + buf.subarray(0, bytesRead).toString('utf8');
      const lines = text.split('\n');
      this.rest = (lines.pop() ?? '').slice(-4096);
      return lines.map(parseXidLine).filter((e): e is XidEvent => !!e);
    } finally {
      await fh.close();
    }
  }
}
