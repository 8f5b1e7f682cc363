import { ffmpegJobType } from './ffmpeg';
import { formatParentOutput, parseParentOutput, resolveBatchRefs } from './parent-output';

const ID = '01JDXJ4V6Y8Q9R2S3T4U5V6W7X';

describe('parent outputs (job:<parent>/<name>)', () => {
  it('parses ids and batch refs, and refuses anything else', () => {
    expect(parseParentOutput(`job:${ID}/out.mp4`)).toEqual({ ref: false, parent: ID, name: 'out.mp4' });
    expect(parseParentOutput('job:ref:transcode/out.mp4')).toEqual({ ref: true, parent: 'transcode', name: 'out.mp4' });
    for (const bad of [
      `job:${ID}`,
      `job:${ID}/`,
      `job:${ID}/../x.mp4`,
      `job:${ID}/a/b.mp4`,
      `job:${ID}/.hidden`,
      'job:ref:/out.mp4',
      'job:bad id/out.mp4',
      `job:${'x'.repeat(65)}/out.mp4`,
      `JOB:${ID}/out.mp4`,
      `s3://b/jobs/${ID}/out.mp4`,
    ])
      expect(parseParentOutput(bad)).toBeUndefined();
    expect(formatParentOutput({ ref: true, parent: 't', name: 'o.png' })).toBe('job:ref:t/o.png');
  });

  it('rewrites whole string values naming known refs, deep, and nothing else', () => {
    const input = {
      inputs: { 'a.mp4': 'job:ref:t/out.mp4', 'b.mp4': 'job:ref:unknown/out.mp4', 'c.mp4': `job:${ID}/x.mp4` },
      list: ['job:ref:t/y.png', 'prefix job:ref:t/y.png', 3, null],
    };
    expect(resolveBatchRefs(input, (r) => (r === 't' ? ID : undefined))).toEqual({
      inputs: { 'a.mp4': `job:${ID}/out.mp4`, 'b.mp4': 'job:ref:unknown/out.mp4', 'c.mp4': `job:${ID}/x.mp4` },
      list: [`job:${ID}/y.png`, 'prefix job:ref:t/y.png', 3, null],
    });
    expect(input.inputs['a.mp4']).toBe('job:ref:t/out.mp4');
  });

  it('lets an ffmpeg input name a parent output, lists them, and refuses a malformed one', () => {
    const input = {
      args: ['-i', 'a.mp4', '-i', 'b.mp4', '-filter_complex', '[0:v][1:v]hstack', 'out.mp4'],
      inputs: { 'a.mp4': `job:${ID}/out.mp4`, 'b.mp4': 'https://media.example.com/b.mp4' },
      outputs: ['out.mp4'],
    };
    expect(ffmpegJobType.validate(input)).toEqual([]);
    expect(ffmpegJobType.parentOutputs!(input)).toEqual([['input.inputs.a.mp4', `job:${ID}/out.mp4`]]);
    expect(ffmpegJobType.outputNames!(input)).toEqual(['out.mp4']);
    const bad = { ...input, inputs: { ...input.inputs, 'a.mp4': `job:${ID}/../etc.mp4` } };
    expect(ffmpegJobType.validate(bad)).toEqual([
      { field: 'input.inputs.a.mp4', message: expect.stringMatching(/job:<parent id>\/<output name>/) },
    ]);
  });
});
