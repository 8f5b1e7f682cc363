import { join } from 'node:path';
import { CatalogError, loadCatalog, parseCatalog, renderTemplate } from './catalog';
import { JobTypeRegistry } from './registry';

const ROOT = join(__dirname, '..', '..', '..', '..');

describe('the example catalog (examples/job-types.yaml)', () => {
  const file = join(ROOT, 'examples', 'job-types.yaml');
  const types = loadCatalog(file);
  const byName = new Map(types.map((t) => [t.name, t]));

  it('declares the CUDA example with its GPU needs, and the others', () => {
    expect([...byName.keys()]).toEqual(['cuda-saxpy', 'gpu-env', 'thumbnail']);
    const saxpy = byName.get('cuda-saxpy')!;
    expect(saxpy.defaultGpu).toEqual({ count: 1, memoryMb: 2048 });
    expect(saxpy.defaultTimeoutSeconds).toBe(600);
    expect(saxpy.catalogDir).toBe(join(ROOT, 'examples'));
  });

  it('fills defaults and renders one argv element per parameter', () => {
    const saxpy = byName.get('cuda-saxpy')!;
    const input: Record<string, unknown> = { iterations: 50 };
    expect(saxpy.validate(input)).toEqual([]);
    expect(input).toEqual({ iterations: 50, n: 16777216 });
    const argv = saxpy.entry.command.map((p) =>
      renderTemplate(p, { input, catalogDir: saxpy.catalogDir, jobId: 'j1', attempt: 1 }),
    );
    expect(argv).toEqual([join(ROOT, 'examples', 'cuda', 'saxpy'), '--n', '16777216', '--iterations', '50']);
  });

  it('refuses bad parameters with field errors', () => {
    const saxpy = byName.get('cuda-saxpy')!;
    expect(
      saxpy
        .validate({ n: 0, extra: '--evil' })
        .map((e) => e.field)
        .sort(),
    ).toEqual(['input.extra', 'input.n']);
    const thumb = byName.get('thumbnail')!;
    expect(thumb.validate({ url: 'file:///etc/passwd' }).map((e) => e.field)).toEqual(['input.url']);
    expect(thumb.validate({ url: 'https://cdn.example.com/v.mp4', width: 320 })).toEqual([]);
    expect(thumb.inputUrls?.({ url: 'https://cdn.example.com/v.mp4' })).toEqual([
      ['input (download source)', 'https://cdn.example.com/v.mp4'],
    ]);
    expect(thumb.outputCount?.({})).toBe(1);
    // v1.1: a parent's stored output as the download (docs/pipelines.md).
    const parent = 'job:01JDXJ4V6Y8Q9R2S3T4U5V6W7X/out.mp4';
    expect(thumb.validate({ url: parent })).toEqual([]);
    expect(thumb.parentOutputs?.({ url: parent })).toEqual([['input (download source)', parent]]);
    expect(thumb.inputUrls?.({ url: parent })).toEqual([]);
    expect(thumb.outputNames?.({})).toEqual(['thumb.jpg']);
    expect(thumb.validate({ url: 'job:01JDXJ4V6Y8Q9R2S3T4U5V6W7X/../x.mp4' })).toEqual([
      { field: 'input', message: expect.stringMatching(/download source must resolve/) },
    ]);
  });

  it('registers beside the built-ins, and upload.url needs a single output', () => {
    const registry = JobTypeRegistry.load(file);
    expect(registry.names()).toEqual(['noop', 'ffmpeg', 'cuda-saxpy', 'gpu-env', 'thumbnail']);
    expect(registry.validate('thumbnail', { url: 'https://x.example/v.mp4' }, { upload: true })).toEqual([]);
    expect(registry.validate('gpu-env', {}, { upload: true })).toEqual([
      { field: 'upload.url', message: 'needs a job that writes exactly one output (this gpu-env job writes 0)' },
    ]);
    expect(registry.validate('nope', {})[0]!.field).toBe('type');
  });
});

describe('parseCatalog', () => {
  const entry = (over: Record<string, unknown>) =>
    JSON.stringify({
      version: 1,
      types: [{ name: 'x', command: ['echo', '{{input.a}}'], inputSchema: { type: 'object' }, ...over }],
    });

  it('refuses malformed catalogs, naming the problem', () => {
    expect(() => parseCatalog('{', 'c.json')).toThrow(/not valid JSON/);
    expect(() => parseCatalog(entry({ command: [] }), 'c.json')).toThrow(CatalogError);
    expect(() => parseCatalog(entry({ command: ['echo', '{{env.HOME}}'] }), 'c.json')).toThrow(
      /unknown placeholder \{\{env.HOME\}\}/,
    );
    expect(() => parseCatalog(entry({ downloads: { '../x': '{{input.u}}' } }), 'c.json')).toThrow(/not safe/);
    expect(() => parseCatalog(entry({ inputSchema: { type: 'nonsense' } }), 'c.json')).toThrow(
      /not a valid JSON Schema/,
    );
    expect(() => parseCatalog(entry({ outputs: ['/etc/passwd'] }), 'c.json')).toThrow(CatalogError);
    expect(() => parseCatalog(entry({ permanentExitCodes: [0] }), 'c.json')).toThrow(CatalogError);
    expect(() => parseCatalog(entry({ shell: 'bash -c' }), 'c.json')).toThrow(/is not a known field/);
    const twice = JSON.stringify({
      version: 1,
      types: [
        { name: 'x', command: ['a'], inputSchema: {} },
        { name: 'x', command: ['b'], inputSchema: {} },
      ],
    });
    expect(() => parseCatalog(twice, 'c.json')).toThrow(/declared twice/);
    expect(() => JobTypeRegistry.load(join(ROOT, 'no-such-catalog.yaml'))).toThrow(/cannot read JOB_TYPES_FILE/);
  });

  it('renders scalars only, and a missing parameter as an empty argument', () => {
    const ctx = { input: { a: 'one two', n: 3, b: true, o: { x: 1 } }, catalogDir: '/c', jobId: 'j', attempt: 2 };
    expect(renderTemplate('{{input.a}}', ctx)).toBe('one two');
    expect(renderTemplate('--n={{input.n}}/{{attempt}}/{{jobId}}', ctx)).toBe('--n=3/2/j');
    expect(renderTemplate('{{input.missing}}', ctx)).toBe('');
    expect(() => renderTemplate('{{input.o}}', ctx)).toThrow(/not a scalar/);
  });

  it('checks that downloads resolve to http(s) or s3 URLs', () => {
    const [t] = parseCatalog(entry({ downloads: { 'in.bin': '{{input.u}}' } }), 'c.json');
    expect(t!.validate({ u: 'https://x.example/a' })).toEqual([]);
    expect(t!.validate({ u: 'file:///etc/passwd' })).toEqual([
      {
        field: 'input',
        message: 'download in.bin must resolve to an http(s):// or s3:// URL, or a parent output job:<parent>/<name>',
      },
    ]);
  });
});
