/**
 * `gantry`: Gantry's command line, built on `@gantry/client` and commander.
 *
 * Exit codes (API.md §3): 0 success (for `--wait` / `watch`: the job completed), 1 the job failed or was cancelled,
 * 2 usage error, 3 API or network error. Errors are one line on stderr, never a stack trace. With `--json`, stdout
 * holds only JSON; progress and messages go to stderr.
 */
import { readFile } from 'node:fs/promises';
import { Command, CommanderError, Option } from 'commander';
import {
  GantryApiError,
  GantryClient,
  GantryError,
  isTerminalStatus,
  type BatchRequest,
  type JobRequest,
  type JobView,
  type Priority,
  type ScheduleRequest,
  type ScheduleView,
} from '@gantry/client';
import { jobBlock, jobsTable, queueBlock, schedulesTable, table, tenantsTable, workersTable } from './output.js';
import { onEventTo, progressSink } from './progress.js';

const PRIORITIES = ['urgent', 'high', 'normal', 'low'];
const STATUSES = ['scheduled', 'waiting', 'queued', 'running', 'retrying', 'completed', 'failed', 'cancelled'];

/** A usage error found after parsing (bad JSON, a missing file): exit 2. */
class UsageError extends Error {}
/** Ends the process with this code (e.g. 1 for a job that failed). */
class Exit extends Error {
  constructor(readonly code: number) {
    super(`exit ${code}`);
  }
}

interface Globals {
  url: string;
  apiKey?: string;
  json?: boolean;
}

function globals(cmd: Command): Globals {
  return cmd.optsWithGlobals<Globals>();
}

function clientOf(cmd: Command): GantryClient {
  const g = globals(cmd);
  if (!g.apiKey) throw new UsageError('no API key: set GANTRY_API_KEY or pass --api-key');
  return new GantryClient({ url: g.url, apiKey: g.apiKey });
}

function print(cmd: Command, value: unknown, human: () => string): void {
  process.stdout.write(globals(cmd).json ? `${JSON.stringify(value, null, 2)}\n` : human());
}

function parseJson(what: string, text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new UsageError(`${what} is not valid JSON: ${err instanceof Error ? err.message : String(err)}`);
  }
}

async function readJsonFile(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  return parseJson(path, text);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A job request from `--file` (a POST /v1/jobs body) with `--type/--input/--priority/--pool` over it. */
async function jobFrom(o: {
  type?: string;
  input?: string;
  priority?: Priority;
  pool?: string;
  file?: string;
}): Promise<JobRequest> {
  const base = o.file ? await readJsonFile(o.file) : {};
  if (!isObject(base)) throw new UsageError(`${o.file} must hold a JSON object (a job request)`);
  const job = { ...base } as Partial<JobRequest>;
  if (o.type) job.type = o.type;
  if (o.input !== undefined) {
    const input = parseJson('--input', o.input);
    if (!isObject(input)) throw new UsageError('--input must be a JSON object');
    job.input = input;
  }
  if (o.priority) job.priority = o.priority;
  if (o.pool) job.pool = o.pool;
  if (!job.type) throw new UsageError('a job needs a type: --type or "type" in --file');
  return job as JobRequest;
}

/** Follows a job to its end (progress bar on stderr); the exit code says how it ended. */
async function follow(cmd: Command, client: GantryClient, id: string, timeoutSeconds?: number): Promise<void> {
  const sink = progressSink();
  let done: JobView;
  try {
    const first = await client.jobs.get(id);
    sink.update(first);
    done = isTerminalStatus(first.status)
      ? first
      : await client.jobs.wait(id, {
          onEvent: onEventTo(sink),
          ...(timeoutSeconds !== undefined ? { timeoutMs: timeoutSeconds * 1000 } : {}),
        });
    sink.update(done);
  } finally {
    sink.stop();
  }
  print(cmd, done, () => jobBlock(done));
  if (done.status !== 'completed') throw new Exit(1);
}

const intArg = (name: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new UsageError(`${name} must be a whole number`);
  return n;
};

export function buildProgram(): Command {
  const program = new Command('gantry')
    .description("Gantry's command line: submit and follow jobs, look at and steer the queue.")
    .addOption(new Option('--url <url>', 'gateway URL').env('GANTRY_URL').default('http://127.0.0.1:8080'))
    .addOption(new Option('--api-key <key>', 'API key').env('GANTRY_API_KEY'))
    .option('--json', 'print JSON only on stdout (for scripts)')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();

  program
    .command('whoami')
    .description("the key's role and tenant")
    .action(async (_o, cmd: Command) => {
      const w = await clientOf(cmd).whoami();
      print(cmd, w, () => `${w.role} (tenant ${w.tenant})\n`);
    });

  program
    .command('submit')
    .description('submit a job (from options or a JSON file); --wait follows it with a progress bar')
    .option('--type <type>', 'job type (noop, ffmpeg, …)')
    .option('--input <json>', 'the job input as JSON')
    .addOption(new Option('--priority <priority>', 'priority').choices(PRIORITIES))
    .option('--pool <pool>', 'worker pool')
    .option('--file <path>', 'a JSON file holding the POST /v1/jobs body (options override its fields)')
    .option('--idempotency-key <key>', 'Idempotency-Key header')
    .option('--wait', 'follow the job until it ends; exit 0 only when it completed')
    .option('--timeout <seconds>', 'with --wait: give up after this long (exit 3)', intArg('--timeout'))
    .action(
      async (
        o: {
          type?: string;
          input?: string;
          priority?: Priority;
          pool?: string;
          file?: string;
          idempotencyKey?: string;
          wait?: boolean;
          timeout?: number;
        },
        cmd: Command,
      ) => {
        const job = await jobFrom(o);
        const client = clientOf(cmd);
        const view = await client.jobs.submit(job, o.idempotencyKey ? { idempotencyKey: o.idempotencyKey } : {});
        if (!o.wait) {
          print(cmd, view, () => `${view.id}\n`);
          return;
        }
        if (!globals(cmd).json) process.stderr.write(`submitted ${view.id}\n`);
        await follow(cmd, client, view.id, o.timeout);
      },
    );

  const jobs = program.command('jobs').description('list, inspect, cancel, retry and follow jobs');
  jobs
    .command('ls')
    .description('jobs, newest first')
    .addOption(new Option('--status <status>').choices(STATUSES))
    .option('--type <type>')
    .addOption(new Option('--priority <priority>').choices(PRIORITIES))
    .option('--limit <n>', 'page size (1-500)', intArg('--limit'), 50)
    .option('--cursor <cursor>', 'nextCursor of the previous page')
    .action(
      async (
        o: { status?: string; type?: string; priority?: string; limit: number; cursor?: string },
        cmd: Command,
      ) => {
        const page = await clientOf(cmd).jobs.list(o as Parameters<GantryClient['jobs']['list']>[0]);
        print(cmd, page, () => jobsTable(page.items) + (page.nextCursor ? `next: --cursor ${page.nextCursor}\n` : ''));
      },
    );
  jobs
    .command('get <id>')
    .description("a job's view")
    .action(async (id: string, _o, cmd: Command) => {
      const j = await clientOf(cmd).jobs.get(id);
      print(cmd, j, () => jobBlock(j));
    });
  jobs.command('cancel <id>').action(async (id: string, _o, cmd: Command) => {
    const j = await clientOf(cmd).jobs.cancel(id);
    print(cmd, j, () => `${j.id} ${j.status}\n`);
  });
  jobs
    .command('retry <id>')
    .description('run a failed or cancelled job again')
    .action(async (id: string, _o, cmd: Command) => {
      const j = await clientOf(cmd).jobs.retry(id);
      print(cmd, j, () => `${j.id} ${j.status} (generation ${j.generation})\n`);
    });
  jobs
    .command('priority <id> <priority>')
    .description('change the priority of a queued or retrying job')
    .action(async (id: string, priority: string, _o, cmd: Command) => {
      if (!PRIORITIES.includes(priority)) throw new UsageError(`priority must be one of ${PRIORITIES.join(', ')}`);
      const j = await clientOf(cmd).jobs.setPriority(id, priority as Priority);
      print(cmd, j, () => `${j.id} ${j.priority}\n`);
    });
  jobs
    .command('watch <id>')
    .description('follow a job with a progress bar; exit 0 only when it completed')
    .option('--timeout <seconds>', 'give up after this long (exit 3)', intArg('--timeout'))
    .action(async (id: string, o: { timeout?: number }, cmd: Command) => {
      await follow(cmd, clientOf(cmd), id, o.timeout);
    });

  const batches = program.command('batches').description('submit and inspect batches');
  batches
    .command('submit')
    .description('submit a batch: --file holds the POST /v1/batches body')
    .requiredOption('--file <path>', 'JSON file: { "jobs": [...], "callbackUrl"?: ... }')
    .option('--idempotency-key <key>', 'Idempotency-Key header')
    .action(async (o: { file: string; idempotencyKey?: string }, cmd: Command) => {
      const body = await readJsonFile(o.file);
      if (!isObject(body) || !Array.isArray(body['jobs']))
        throw new UsageError(`${o.file} must hold { "jobs": [...] }`);
      const b = await clientOf(cmd).batches.submit(
        body as unknown as BatchRequest,
        o.idempotencyKey ? { idempotencyKey: o.idempotencyKey } : {},
      );
      print(cmd, b, () => `${b.id}\n${jobsTable(b.jobs)}`);
    });
  batches.command('get <id>').action(async (id: string, _o, cmd: Command) => {
    const b = await clientOf(cmd).batches.get(id);
    print(cmd, b, () =>
      table([
        ['BATCH', 'TOTAL', ...Object.keys(b.counts).map((k) => k.toUpperCase())],
        [b.id, String(b.total), ...Object.values(b.counts).map(String)],
      ]),
    );
  });

  const queue = program.command('queue').description('the queue: depth, tokens, pause/resume/drain/clear');
  queue.command('get').action(async (_o, cmd: Command) => {
    const q = await clientOf(cmd).queue.get();
    print(cmd, q, () => queueBlock(q));
  });
  queue
    .command('watch')
    .description('the queue now and on every change, until interrupted (--json: one JSON line per state)')
    .action(async (_o, cmd: Command) => {
      const c = clientOf(cmd);
      const json = globals(cmd).json;
      const stop = new AbortController();
      const interrupted = () => stop.abort();
      process.once('SIGINT', interrupted);
      process.once('SIGTERM', interrupted);
      try {
        for await (const q of c.queue.events({ signal: stop.signal })) {
          process.stdout.write(json ? `${JSON.stringify(q)}\n` : `${new Date().toISOString()}\n${queueBlock(q)}\n`);
        }
      } catch (err) {
        // Interrupted while (re)connecting: a normal end, like an interrupt between events.
        if (!stop.signal.aborted) throw err;
      } finally {
        process.off('SIGINT', interrupted);
        process.off('SIGTERM', interrupted);
      }
    });
  for (const op of ['pause', 'resume', 'drain', 'clear'] as const) {
    queue
      .command(op)
      .description(
        {
          pause: 'stop dispatching (admin)',
          resume: 'end pause and drain (admin)',
          drain: 'refuse new submissions, finish the rest (admin)',
          clear: 'cancel every queued job (admin)',
        }[op],
      )
      .action(async (_o, cmd: Command) => {
        const q = await clientOf(cmd).queue[op]();
        print(cmd, q, () => queueBlock(q));
      });
  }
  queue
    .command('config')
    .description('change the concurrency tokens or the queue bound (admin)')
    .option('--max-concurrent-jobs <n>', 'global concurrency tokens', intArg('--max-concurrent-jobs'))
    .option('--max-queue-size <n>', 'queued + retrying jobs before 429', intArg('--max-queue-size'))
    .action(async (o: { maxConcurrentJobs?: number; maxQueueSize?: number }, cmd: Command) => {
      if (o.maxConcurrentJobs === undefined && o.maxQueueSize === undefined)
        throw new UsageError('give --max-concurrent-jobs and/or --max-queue-size');
      const q = await clientOf(cmd).queue.setConfig(o);
      print(cmd, q, () => queueBlock(q));
    });

  program
    .command('workers')
    .description('live workers, their GPUs and busy slots')
    .action(async (_o, cmd: Command) => {
      const ws = await clientOf(cmd).workers.list();
      print(cmd, ws, () => workersTable(ws));
    });

  const tenants = program.command('tenants').description("tenants' fair share: used vs entitled");
  tenants
    .command('ls', { isDefault: true })
    .description('every tenant with work, recent usage or a weight (admin)')
    .action(async (_o, cmd: Command) => {
      const ts = await clientOf(cmd).tenants.list();
      print(cmd, ts, () => tenantsTable(ts));
    });
  tenants
    .command('me')
    .description("this key's tenant")
    .action(async (_o, cmd: Command) => {
      const t = await clientOf(cmd).tenants.me();
      print(cmd, t, () => tenantsTable([t]));
    });

  const schedules = program.command('schedules').description("cron schedules of this key's tenant");
  schedules
    .command('ls')
    .description('the schedules, every page')
    .action(async (_o, cmd: Command) => {
      const all: ScheduleView[] = [];
      for await (const s of clientOf(cmd).schedules.all({ limit: 100 })) all.push(s);
      print(cmd, { items: all, nextCursor: null }, () => schedulesTable(all));
    });
  schedules
    .command('get <id>')
    .description('one schedule')
    .action(async (id: string, _o, cmd: Command) => {
      const s = await clientOf(cmd).schedules.get(id);
      print(cmd, s, () => schedulesTable([s]));
    });
  schedules
    .command('add')
    .description('create a schedule: --name, --cron and the job (--type/--input or --file)')
    .requiredOption('--name <name>', 'a name for people')
    .requiredOption('--cron <expr>', 'cron: 5 fields, or 6 with seconds first (quote it)')
    .option('--timezone <tz>', 'IANA time zone (default UTC)')
    .addOption(new Option('--overlap <mode>', 'skip: no job while the last is unfinished').choices(['skip', 'allow']))
    .option('--type <type>', 'job type')
    .option('--input <json>', 'the job input as JSON')
    .addOption(new Option('--priority <priority>', 'priority').choices(PRIORITIES))
    .option('--pool <pool>', 'worker pool')
    .option('--file <path>', 'a JSON file holding the job (the POST /v1/jobs body); options override its fields')
    .action(
      async (
        o: {
          name: string;
          cron: string;
          timezone?: string;
          overlap?: 'skip' | 'allow';
          type?: string;
          input?: string;
          priority?: Priority;
          pool?: string;
          file?: string;
        },
        cmd: Command,
      ) => {
        const job = await jobFrom(o);
        const req: ScheduleRequest = {
          name: o.name,
          cron: o.cron,
          job,
          ...(o.timezone ? { timezone: o.timezone } : {}),
          ...(o.overlap ? { overlap: o.overlap } : {}),
        };
        const s = await clientOf(cmd).schedules.create(req);
        print(cmd, s, () => `${s.id}  next run ${s.nextRunAt ?? '-'}\n`);
      },
    );
  schedules
    .command('rm <id>')
    .description('delete a schedule (the jobs it created stay)')
    .action(async (id: string, _o, cmd: Command) => {
      await clientOf(cmd).schedules.delete(id);
      print(cmd, { id, deleted: true }, () => `deleted ${id}\n`);
    });
  for (const op of ['pause', 'resume'] as const) {
    schedules
      .command(`${op} <id>`)
      .description(op === 'pause' ? 'stop creating jobs (due times while paused are skipped)' : 'create jobs again')
      .action(async (id: string, _o, cmd: Command) => {
        const s = await clientOf(cmd).schedules[op](id);
        print(cmd, s, () => schedulesTable([s]));
      });
  }

  const webhooks = program.command('webhooks').description('failed webhook deliveries (admin)');
  webhooks
    .command('failed')
    .option('--limit <n>', 'page size (1-500)', intArg('--limit'))
    .option('--cursor <cursor>')
    .option('--tenant <tenant>')
    .action(async (o: { limit?: number; cursor?: string; tenant?: string }, cmd: Command) => {
      const page = await clientOf(cmd).webhooks.failed(o);
      print(cmd, page, () =>
        table([
          ['ID', 'JOB', 'TYPE', 'URL', 'ATTEMPTS', 'LAST', 'FAILED AT'],
          ...page.items.map((f) => [
            f.id,
            f.jobId,
            f.type,
            f.url,
            String(f.attempts),
            String(f.lastStatus ?? f.lastError ?? ''),
            f.failedAt,
          ]),
        ]),
      );
    });
  webhooks
    .command('replay <id>')
    .description('send a failed delivery again (same webhook-id)')
    .action(async (id: string, _o, cmd: Command) => {
      const r = await clientOf(cmd).webhooks.replay(id);
      print(cmd, r, () => `replaying ${id}\n`);
    });

  return program;
}

/** Runs the CLI; resolves with the exit code. */
export async function run(argv: string[]): Promise<number> {
  const program = buildProgram();
  program.configureOutput({ writeErr: (s) => process.stderr.write(s.startsWith('error:') ? `gantry: ${s}` : s) });
  for (const c of program.commands) propagate(c);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (err) {
    if (err instanceof Exit) return err.code;
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2;
    if (err instanceof UsageError) {
      process.stderr.write(`gantry: ${err.message}\n`);
      return 2;
    }
    if (err instanceof GantryApiError || err instanceof GantryError) {
      process.stderr.write(`gantry: ${err.message}\n`);
      return 3;
    }
    process.stderr.write(`gantry: ${err instanceof Error ? err.message : String(err)}\n`);
    return 3;
  }
}

/** Subcommands inherit exitOverride and the error output (commander sets them per command). */
function propagate(c: Command): void {
  c.exitOverride();
  c.showHelpAfterError('(run with --help for usage)');
  for (const sub of c.commands) propagate(sub);
}

process.exitCode = await run(process.argv.slice(2));
