import type { WebhookBody } from '@gantry/contracts';
import { renderBody } from './presign';

const body = (outputs: unknown): WebhookBody => ({
  type: 'job.completed',
  timestamp: '2026-01-01T00:00:00.000Z',
  sequence: 4,
  generation: 1,
  data: { id: 'J1', status: 'completed', outputs },
});

describe('renderBody', () => {
  it('fills downloadUrl per output at render time and drops stale ones', async () => {
    let calls = 0;
    const presign = async () => ({ 'out.mp4': `https://s3.example/out.mp4?sig=${++calls}` });
    const b = body([
      { name: 'out.mp4', url: 's3://b/jobs/J1/out.mp4', sizeBytes: 3 },
      { name: 'log.txt', url: 'https://elsewhere/log.txt', sizeBytes: 1, downloadUrl: 'https://stale' },
    ]);
    const first = JSON.parse(await renderBody(b, presign)) as { data: { outputs: Record<string, unknown>[] } };
    const second = JSON.parse(await renderBody(b, presign)) as { data: { outputs: Record<string, unknown>[] } };
    expect(first.data.outputs[0]).toEqual({
      name: 'out.mp4',
      url: 's3://b/jobs/J1/out.mp4',
      sizeBytes: 3,
      downloadUrl: 'https://s3.example/out.mp4?sig=1',
    });
    expect(second.data.outputs[0]!['downloadUrl']).toBe('https://s3.example/out.mp4?sig=2');
    expect(first.data.outputs[1]).toEqual({ name: 'log.txt', url: 'https://elsewhere/log.txt', sizeBytes: 1 });
    // Everything else is the stored body, byte for byte.
    expect(JSON.parse(await renderBody(body(undefined), presign))).toEqual(body(undefined));
  });
});
