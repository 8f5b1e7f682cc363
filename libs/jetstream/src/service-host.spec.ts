import { createLogger, createRegistry } from '@gantry/telemetry';
import { CloseTimeoutError, ServiceHost, closeInOrder } from './service-host';

const logger = createLogger('service-host-spec', 'silent');

describe('closeInOrder', () => {
  it('runs every step in order even when earlier ones throw, and reports each failure', async () => {
    const ran: string[] = [];
    const failures = await closeInOrder([
      { name: 'a', run: () => void ran.push('a') },
      {
        name: 'b',
        run: () => {
          ran.push('b');
          throw new Error('b broke');
        },
      },
      {
        name: 'c',
        run: async () => {
          ran.push('c');
          await Promise.reject(new Error('c broke'));
        },
      },
      { name: 'd', run: () => void ran.push('d') },
    ]);
    expect(ran).toEqual(['a', 'b', 'c', 'd']);
    expect(failures.map((f) => [f.step, (f.error as Error).message])).toEqual([
      ['b', 'b broke'],
      ['c', 'c broke'],
    ]);
  });

  it('moves on from a step that hangs once its bound is over', async () => {
    const ran: string[] = [];
    const started = Date.now();
    const failures = await closeInOrder([
      { name: 'stuck', run: () => new Promise<void>(() => undefined), timeoutMs: 50 },
      { name: 'next', run: () => void ran.push('next') },
    ]);
    expect(ran).toEqual(['next']);
    expect(failures).toHaveLength(1);
    expect(failures[0]?.error).toBeInstanceOf(CloseTimeoutError);
    expect(failures[0]?.step).toBe('stuck');
    expect(Date.now() - started).toBeLessThan(5_000);
  });
});

describe('ServiceHost', () => {
  const start = <T>(build: (host: ServiceHost) => Promise<T>) =>
    ServiceHost.start(
      { service: 'spec', id: 'spec-1', logger, registry: createRegistry('spec'), ops: { host: '127.0.0.1', port: 0 } },
      build,
    );

  it('closes in reverse order of start, once, and the ops endpoint last', async () => {
    const order: string[] = [];
    const { host, url } = await start(async (h) => {
      h.onClose('first', () => void order.push('first'));
      h.onClose('second', () => void order.push('second'));
      return { host: h, url: h.opsUrl };
    });
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    await Promise.all([host.close(), host.close()]);
    expect(order).toEqual(['second', 'first']);
    await expect(fetch(`${url}/healthz`)).rejects.toThrow();
  });

  it('answers /readyz 503 until the app judges itself, then what the judge says, and 503 once closing', async () => {
    let healthy = true;
    const host = await start(async (h) => h);
    const readyz = async () => {
      const r = await fetch(`${host.opsUrl}/readyz`);
      return { status: r.status, body: (await r.json()) as Record<string, unknown> };
    };
    expect(await readyz()).toEqual({ status: 503, body: { status: 'not ready', starting: true } });
    host.readiness.set(() => ({ ready: healthy, detail: { custom: 1 } }));
    expect(await readyz()).toEqual({ status: 200, body: { status: 'ready', custom: 1 } });
    healthy = false;
    expect((await readyz()).status).toBe(503);
    healthy = true;
    host.readiness.markStopping();
    expect(await readyz()).toEqual({ status: 503, body: { status: 'not ready', stopping: true } });
    await host.close();
  });

  it('a failed start closes what it had started, then passes the error on', async () => {
    const closed: string[] = [];
    let opsUrl = '';
    await expect(
      start(async (h) => {
        opsUrl = h.opsUrl;
        h.onClose('started part', () => void closed.push('started part'));
        throw new Error('boot failed');
      }),
    ).rejects.toThrow('boot failed');
    expect(closed).toEqual(['started part']);
    await expect(fetch(`${opsUrl}/healthz`)).rejects.toThrow();
  });
});
