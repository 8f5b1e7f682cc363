/**
 * The packed `@gantry/client` as a user gets it: `npm pack` of libs/client (the built dist), extracted as
 * `node_modules/@gantry/client` of a throwaway consumer project outside the repository. No registry: its one
 * dependency (standardwebhooks, with its own) and @types/node are linked from the repository's node_modules.
 * The consumer typechecks against the packed declarations with the user's strictest usual settings (strict,
 * nodenext, skipLibCheck off, so the package's .d.ts files are checked too), and runs against a real stack.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { promisify } from 'node:util';
import { CLIENT_KEY, GantryCluster } from '@gantry/testing';

const sh = promisify(execFile);
const repo = join(__dirname, '..', '..', '..');
const tsc = join(repo, 'node_modules', 'typescript', 'bin', 'tsc');

/** Every file under `dir`, relative to it. */
function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile())
    .map((e) => relative(dir, join(e.parentPath, e.name)));
}

/** Links `name` and, recursively, its dependencies from the repository's node_modules into `nodeModules`. */
function linkPackage(nodeModules: string, name: string, seen = new Set<string>()): void {
  if (seen.has(name)) return;
  seen.add(name);
  const from = join(repo, 'node_modules', name);
  const to = join(nodeModules, name);
  mkdirSync(join(to, '..'), { recursive: true });
  symlinkSync(from, to, 'dir');
  const pkg = JSON.parse(readFileSync(join(from, 'package.json'), 'utf8')) as { dependencies?: object };
  for (const dep of Object.keys(pkg.dependencies ?? {})) linkPackage(nodeModules, dep, seen);
}

async function typecheck(dir: string, file: string): Promise<{ code: number; output: string }> {
  writeFileSync(
    join(dir, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        target: 'ES2022',
        lib: ['ES2022'],
        module: 'nodenext',
        moduleResolution: 'nodenext',
        types: ['node'],
        strict: true,
        noEmit: true,
        skipLibCheck: false,
      },
      files: [file],
    }),
  );
  try {
    const { stdout, stderr } = await sh(process.execPath, [tsc, '-p', dir], { cwd: dir });
    return { code: 0, output: stdout + stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : 1, output: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}

describe('the packed @gantry/client in a consumer project', () => {
  let work: string;
  let consumer: string;
  let packed: string;
  let tarFiles: string[];

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'gantry-client-pack-'));
    // What `npm pack` (or `npm publish`) ships: the built dist as `npm run build` leaves it, no lifecycle script needed.
    const { stdout } = await sh('npm', ['pack', '--json', '--pack-destination', work], {
      cwd: join(repo, 'libs', 'client'),
    });
    const [info] = JSON.parse(stdout) as { filename: string; files: { path: string }[] }[];
    tarFiles = info!.files.map((f) => f.path).sort();
    consumer = join(work, 'consumer');
    packed = join(consumer, 'node_modules', '@gantry', 'client');
    mkdirSync(packed, { recursive: true });
    await sh('tar', ['-xzf', join(work, info!.filename), '-C', packed, '--strip-components=1']);
    for (const dep of ['standardwebhooks', '@types/node']) linkPackage(join(consumer, 'node_modules'), dep);
    writeFileSync(join(consumer, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
  });
  afterAll(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('ships dist and README, and no file of it names the private @gantry/contracts', () => {
    expect(tarFiles).toEqual(expect.arrayContaining(['README.md', 'dist/index.js', 'dist/index.d.ts', 'package.json']));
    expect(tarFiles.filter((f) => f.endsWith('.tsbuildinfo') || f.startsWith('src/'))).toEqual([]);
    expect(filesUnder(packed).sort()).toEqual(tarFiles);
    const naming = filesUnder(packed).filter((f) =>
      readFileSync(join(packed, f), 'utf8').includes('@gantry/contracts'),
    );
    expect(naming).toEqual([]);
  });

  it('typechecks a consumer against its declarations, and refuses a wrong one', async () => {
    writeFileSync(
      join(consumer, 'good.ts'),
      [
        "import { GantryClient, GantryApiError, verifyWebhook, type JobRequest, type JobView } from '@gantry/client';",
        "import type { QueueState, JobStatus } from '@gantry/client';",
        "const gantry = new GantryClient({ url: 'http://127.0.0.1:1', apiKey: 'k' });",
        "const request: JobRequest = { type: 'noop', input: {}, priority: 'urgent', dependsOn: ['a'] };",
        'export async function go(): Promise<JobStatus> {',
        '  const job: JobView = await gantry.jobs.submit(request);',
        '  const q: QueueState = await gantry.queue.get();',
        '  const total: number = q.depth.total;',
        '  const done = await gantry.jobs.wait(job.id, { timeoutMs: total });',
        '  for await (const e of gantry.jobs.events(job.id)) if (e.type === "job.progress") break;',
        "  verifyWebhook('{}', {}, 'whsec_x');",
        '  return done.status;',
        '}',
        'export const isApi = (e: unknown): boolean => e instanceof GantryApiError && e.status === 429;',
        '',
      ].join('\n'),
    );
    const good = await typecheck(consumer, 'good.ts');
    expect(good.output).toBe('');
    expect(good.code).toBe(0);

    // The contract types are real, not `any`: a priority the gateway refuses and a misspelt view field both fail.
    writeFileSync(
      join(consumer, 'bad.ts'),
      [
        "import { GantryClient, type JobRequest } from '@gantry/client';",
        "const request: JobRequest = { type: 'noop', input: {}, priority: 'asap' };",
        "const gantry = new GantryClient({ url: 'http://127.0.0.1:1', apiKey: 'k' });",
        'export const p = gantry.jobs.get(request.type).then((v) => v.statusCode);',
        '',
      ].join('\n'),
    );
    const bad = await typecheck(consumer, 'bad.ts');
    expect(bad.code).not.toBe(0);
    expect(bad.output).toMatch(/bad\.ts\(2,\d+\): error TS2322: Type '"asap"' is not assignable/);
    expect(bad.output).toMatch(/bad\.ts\(4,\d+\): error TS2339: Property 'statusCode' does not exist/);
    expect(bad.output).not.toMatch(/node_modules\/@gantry\/client/);
  });

  describe('against a real stack', () => {
    let cluster: GantryCluster;
    beforeAll(async () => {
      cluster = await GantryCluster.start();
    });
    afterAll(async () => {
      await cluster?.stop();
    });

    it('runs a plain .mjs consumer that submits a job and waits for it', async () => {
      writeFileSync(
        join(consumer, 'run.mjs'),
        [
          "import { GantryClient } from '@gantry/client';",
          'const gantry = new GantryClient({ url: process.env.GANTRY_URL, apiKey: process.env.GANTRY_API_KEY });',
          "const job = await gantry.jobs.submit({ type: 'noop', input: { durationMs: 300, progressSteps: 3, result: { n: 7 } } });",
          'const seen = [];',
          'const done = await gantry.jobs.wait(job.id, { timeoutMs: 60000, onEvent: (e) => seen.push(e.type) });',
          'console.log(JSON.stringify({ id: job.id, status: done.status, result: done.result, seen }));',
          '',
        ].join('\n'),
      );
      const { stdout } = await sh(process.execPath, ['run.mjs'], {
        cwd: consumer,
        env: { ...process.env, GANTRY_URL: cluster.gatewayUrl, GANTRY_API_KEY: CLIENT_KEY },
        timeout: 90_000,
      });
      const out = JSON.parse(stdout) as { id: string; status: string; result: unknown; seen: string[] };
      expect(out).toMatchObject({ status: 'completed', result: { n: 7 } });
      expect(out.seen).toContain('job.started');
      expect(out.seen[out.seen.length - 1]).toBe('job.completed');
    });
  });
});
