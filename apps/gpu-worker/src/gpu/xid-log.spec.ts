import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { XidLogTail, parseXidLine } from './xid-log';

describe('XID lines', () => {
  it('reads the GPU and the code from the driver’s kernel message', () => {
    expect(
      parseXidLine(
        "Dec  2 11:00:00 gpu-host kernel: [1234.5] NVRM: Xid (PCI:0000:3b:00): 79, pid='<unknown>', name=<unknown>, GPU has fallen off the bus.",
      ),
    ).toMatchObject({ pciBusId: '0000:3b:00', code: 79 });
    expect(parseXidLine('NVRM: GPU at PCI:0000:3b:00: GPU-1111')).toBeUndefined();
    expect(parseXidLine('usb 1-1: new high-speed USB device')).toBeUndefined();
  });

  it('tails only what is appended after the start, across partial lines and rotation', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gantry-xid-'));
    const file = join(dir, 'kern.log');
    try {
      writeFileSync(file, 'kernel: NVRM: Xid (PCI:0000:3b:00): 48, old news\n');
      const tail = new XidLogTail(file);
      await tail.init();
      expect(await tail.read()).toEqual([]);
      appendFileSync(file, 'kernel: NVRM: Xid (PCI:0000:3b:00): 79, fallen off the bus\nkernel: NVRM: Xid (PCI:00');
      expect((await tail.read()).map((e) => e.code)).toEqual([79]);
      appendFileSync(file, '00:86:00): 13, Graphics Exception\n');
      expect((await tail.read()).map((e) => [e.pciBusId, e.code])).toEqual([['0000:86:00', 13]]);
      writeFileSync(file, 'NVRM: Xid (PCI:0000:86:00): 94, rotated\n'); // shorter than before: a new file
      expect((await tail.read()).map((e) => e.code)).toEqual([94]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
