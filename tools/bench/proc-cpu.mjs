// A process's CPU time as the kernel counts it, for the benches' CPU-per-job figures.
import { readFileSync } from 'node:fs';

/** Clock ticks per second of /proc/<pid>/stat's times (USER_HZ: 100 on Linux). */
export const CLK_TCK = 100;

/** User + system CPU of `pid` so far, in clock ticks (NaN once the process is gone). */
export function cpuTicks(pid) {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return Number(f[11]) + Number(f[12]); // utime + stime
  } catch {
    return NaN;
  }
}
