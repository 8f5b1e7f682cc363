/**
 * What a client may ask a worker to open, refused at submit (real NATS, real HTTP): ffmpeg arguments outside the
 * allowlist, and s3:// inputs outside the input policy in any spelling — single and batch submits alike — with a
 * 400 problem+json naming the field, and nothing created.
 */
import { STREAMS } from '@gantry/contracts';
import { CLIENT, OTHER, expectProblem, startStack, type Client } from './harness';

const IN = 'https://media.example.com/in.mp4';

function ffmpegJob(args: string[], outputs = ['out.mp4'], inputs: Record<string, string> = { 'in.mp4': IN }) {
  return { type: 'ffmpeg', input: { args, inputs, outputs } };
}

describe('submit-time input policy (real NATS)', () => {
  let s: Awaited<ReturnType<typeof startStack>>;
  let api: Client;
  const jobMessages = async () => (await s.handle.jsm.streams.info(STREAMS.jobs)).state.messages;

  beforeAll(async () => {
    // The test's input URLs name example.com: resolution is not what is under test here.
    s = await startStack({ ALLOW_PRIVATE_URLS: 'true' });
    api = s.api.as(CLIENT);
  });
  afterAll(async () => s?.stop());

  const attacks: [string, ReturnType<typeof ffmpegJob>, string, RegExp][] = [
    [
      'mov data references',
      ffmpegJob(['-enable_drefs', '1', '-use_absolute_path', '1', '-i', 'in.mp4', 'out.mp4']),
      'input.args[0]',
      /option -enable_drefs is not allowed/,
    ],
    [
      'x264 stats file',
      ffmpegJob(['-i', 'in.mp4', '-x264-params', 'stats=/tmp/x', 'out.mp4']),
      'input.args[3]',
      /-x264-params key "stats" is not allowed/,
    ],
    [
      'x265 csv file',
      ffmpegJob(['-i', 'in.mp4', '-c:v', 'libx265', '-x265-params', 'csv=x.csv', 'out.mp4']),
      'input.args[5]',
      /-x265-params key "csv"/,
    ],
    ['an HLS output', ffmpegJob(['-i', 'in.mp4', 'out.m3u8'], ['out.m3u8']), 'input.outputs[0]', /allowed extension/],
    ['a DASH output', ffmpegJob(['-i', 'in.mp4', 'out.mpd'], ['out.mpd']), 'input.outputs[0]', /allowed extension/],
    [
      'an HLS key info file',
      ffmpegJob(['-i', 'in.mp4', '-hls_key_info_file', 'k.info', 'out.mp4']),
      'input.args[2]',
      /option -hls_key_info_file is not allowed/,
    ],
    [
      'a movie= filter',
      ffmpegJob(['-i', 'in.mp4', '-vf', 'movie=in.mp4', 'out.mp4']),
      'input.args[3]',
      /filter "movie" is not allowed/,
    ],
    [
      'a subtitles= filter',
      ffmpegJob(['-i', 'in.mp4', '-vf', 'subtitles=filename=in.mp4', 'out.mp4']),
      'input.args[3]',
      /filter "subtitles"/,
    ],
    ['-attach', ffmpegJob(['-i', 'in.mp4', '-attach', 'in.mp4', 'out.mkv'], ['out.mkv']), 'input.args[2]', /-attach/],
    [
      '-dump_attachment',
      ffmpegJob(['-dump_attachment:t', 'x.ttf', '-i', 'in.mp4', 'out.mp4']),
      'input.args[0]',
      /-dump_attachment:t is not allowed/,
    ],
    ['concat format', ffmpegJob(['-f', 'concat', '-i', 'in.mp4', 'out.mp4']), 'input.args[1]', /format "concat"/],
  ];

  it.each(attacks)('400 naming the argument for %s (single submit), creating nothing', async (_w, job, field, msg) => {
    const before = await jobMessages();
    const p = expectProblem(await api.json('POST', '/v1/jobs', job), 400);
    expect(p.errors).toEqual(expect.arrayContaining([{ field, message: expect.stringMatching(msg) }]));
    expect(await jobMessages()).toBe(before);
  });

  it('400 with the job path for each refused job of a batch, creating none of them', async () => {
    const before = await jobMessages();
    const ok = ffmpegJob(['-i', 'in.mp4', '-vf', 'scale=320:-2', 'out.mp4']);
    const p = expectProblem(
      await api.json('POST', '/v1/batches', { jobs: [ok, attacks[0]![1], ok, attacks[1]![1]] }),
      400,
    );
    expect(p.errors).toEqual(
      expect.arrayContaining([
        { field: 'jobs[1].input.args[0]', message: expect.stringMatching(/-enable_drefs/) },
        { field: 'jobs[3].input.args[3]', message: expect.stringMatching(/-x264-params key "stats"/) },
      ]),
    );
    expect(p.errors!.some((e) => e.field.startsWith('jobs[0]') || e.field.startsWith('jobs[2]'))).toBe(false);
    expect(await jobMessages()).toBe(before);
  });

  it('accepts the ordinary transcode, thumbnail and audio extract', async () => {
    for (const job of [
      ffmpegJob(['-i', 'in.mp4', '-vf', 'scale=320:-2', '-c:v', 'libx264', '-crf', '23', '-c:a', 'aac', 'out.mp4']),
      ffmpegJob(
        ['-ss', '1', '-i', 'in.mp4', '-vf', 'thumbnail,scale=320:-2', '-frames:v', '1', 'thumb.jpg'],
        ['thumb.jpg'],
      ),
      ffmpegJob(['-i', 'in.mp4', '-vn', '-c:a', 'libmp3lame', '-q:a', '2', 'audio.mp3'], ['audio.mp3']),
    ]) {
      const a = await api.json('POST', '/v1/jobs', job);
      expect([a.status, a.text.slice(0, 300)]).toEqual([202, expect.any(String)]);
    }
  });

  describe('s3:// inputs', () => {
    const bucket = 'gantry-outputs';
    let theirs: string;
    let mine: string;

    beforeAll(async () => {
      const other = await s.api.as(OTHER).json<{ id: string }>('POST', '/v1/jobs', { type: 'noop', input: {} });
      const own = await api.json<{ id: string }>('POST', '/v1/jobs', { type: 'noop', input: {} });
      expect([other.status, own.status]).toEqual([202, 202]);
      theirs = other.body.id;
      mine = own.body.id;
    });

    const spellings = (id: string) => [
      `s3://${bucket}/jobs/${id}/out.mp4`,
      `s3://${bucket}/x/../jobs/${id}/out.mp4`,
      `s3://${bucket}/x/%2e%2e/jobs/${id}/out.mp4`,
      `s3://${bucket}/x%2F..%2Fjobs%2F${id}%2Fout.mp4`,
      `s3://${bucket}//jobs//${id}/out.mp4`,
      `s3://${bucket}/./jobs/./${id}/out.mp4`,
      `s3://${bucket}/x\\..\\jobs\\${id}\\out.mp4`,
      `s3://${bucket}/x/%252e%252e/jobs/${id}/out.mp4`,
    ];

    it('400 for another tenant’s output in every spelling (single and batch), creating nothing', async () => {
      const before = await jobMessages();
      for (const url of spellings(theirs)) {
        const p = expectProblem(
          await api.json('POST', '/v1/jobs', ffmpegJob(['-i', 'in.mp4', 'out.mp4'], ['out.mp4'], { 'in.mp4': url })),
          400,
        );
        expect(p.errors).toEqual([
          {
            field: 'input.inputs.in.mp4',
            message: expect.stringMatching(/not the output of one of this tenant's jobs/),
          },
        ]);
      }
      const p = expectProblem(
        await api.json('POST', '/v1/batches', {
          jobs: [ffmpegJob(['-i', 'in.mp4', 'out.mp4'], ['out.mp4'], { 'in.mp4': spellings(theirs)[1]! })],
        }),
        400,
      );
      expect(p.errors).toEqual([
        {
          field: 'jobs[0].input.inputs.in.mp4',
          message: expect.stringMatching(/not the output of one of this tenant's jobs/),
        },
      ]);
      expect(await jobMessages()).toBe(before);
    });

    it('400 for keys that leave the bucket and buckets outside S3_INPUT_BUCKETS', async () => {
      for (const [url, why] of [
        [`s3://${bucket}/../other-bucket/in.mp4`, /leaves the bucket/],
        [`s3://${bucket}/%2e%2e/other-bucket/in.mp4`, /leaves the bucket/],
        ['s3://other-bucket/in.mp4', /not one of S3_INPUT_BUCKETS/],
        [`s3://${bucket}/jobs/01NOSUCHJOB/out.mp4`, /jobs\/01NOSUCHJOB is not the output of one of this tenant's jobs/],
      ] as const) {
        const p = expectProblem(
          await api.json('POST', '/v1/jobs', ffmpegJob(['-i', 'in.mp4', 'out.mp4'], ['out.mp4'], { 'in.mp4': url })),
          400,
        );
        expect(p.errors!.map((e) => e.message).join(' | ')).toMatch(why);
      }
    });

    it('accepts the tenant’s own outputs, in any spelling', async () => {
      for (const url of spellings(mine)) {
        const a = await api.json(
          'POST',
          '/v1/jobs',
          ffmpegJob(['-i', 'in.mp4', 'out.mp4'], ['out.mp4'], { 'in.mp4': url }),
        );
        expect([a.status, url]).toEqual([202, url]);
      }
    });
  });
});
