/**
 * Operator-defined job types (JOB_TYPES_FILE). The argv comes from the operator's template; a client's parameters
 * (validated against the type's JSON Schema) fill placeholders, each one becoming exactly one argv element — never a
 * shell line. A program reports progress with stdout lines `GANTRY_PROGRESS <percent> [stage]` and a result with one
 * line `GANTRY_RESULT <json>` (or a `result.json` file in its working directory).
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { renderTemplate, type CatalogJobType } from '@gantry/contracts';
import type { OutputStore } from '@gantry/storage';
import { JobFailure, type AttemptContext, type ExecutionResult, type JobExecutor } from './executor';
import { uploadOutputs } from './outputs';
import { exitFailure, runProcess } from './process-runner';
import { downloadInput, type TransferSettings } from './transfers';

const PROGRESS = /^GANTRY_PROGRESS\s+(\d+(?:\.\d+)?)(?:\s+(.*))?$/;
const RESULT = /^GANTRY_RESULT\s+(.*)$/;

export class CatalogExecutor implements JobExecutor {
  readonly types: readonly string[];
  private readonly byName: Map<string, CatalogJobType>;

  constructor(
    catalog: readonly CatalogJobType[],
    private readonly store: OutputStore,
    private readonly transfers: TransferSettings,
  ) {
    this.byName = new Map(catalog.map((t) => [t.name, t]));
    this.types = [...this.byName.keys()];
  }

  async run(ctx: AttemptContext): Promise<ExecutionResult> {
    const type = this.byName.get(ctx.record.type);
    if (!type) throw new JobFailure('INVALID_INPUT', `unknown job type ${ctx.record.type}`, false);
    const errors = type.validate(ctx.record.input);
    if (errors.length)
      throw new JobFailure('INVALID_INPUT', errors.map((e) => `${e.field} ${e.message}`).join('; '), false);
    const render = { input: ctx.record.input, catalogDir: type.catalogDir, jobId: ctx.record.id, attempt: ctx.attempt };

    const downloads = Object.entries(type.entry.downloads ?? {});
    for (const [i, [name, tpl]] of downloads.entries()) {
      ctx.progress(0, `downloading ${i + 1}/${downloads.length}`);
      await downloadInput(
        renderTemplate(tpl, render),
        join(ctx.scratchDir, name),
        this.store,
        this.transfers,
        ctx.signal,
      );
    }

    const [command, ...args] = type.entry.command.map((part) => renderTemplate(part, render));
    let result: unknown;
    const r = await runProcess({
      command: command!,
      args,
      cwd: ctx.scratchDir,
      env: { ...(type.entry.env ?? {}), ...ctx.env, GANTRY_JOB_ID: ctx.record.id, GANTRY_ATTEMPT: String(ctx.attempt) },
      signal: ctx.signal,
      onStdoutLine: (line) => {
        const p = PROGRESS.exec(line.trim());
        if (p) {
          ctx.progress(Number(p[1]), p[2]?.trim() || undefined);
          return;
        }
        const m = RESULT.exec(line.trim());
        if (m) {
          try {
            result = JSON.parse(m[1]!);
          } catch {
            // not JSON: ignored
          }
        }
      },
    });
    if (ctx.signal.aborted) throw ctx.signal.reason;
    if (r.exitCode !== 0) throw exitFailure(type.name, r);
    if (result === undefined && !(type.entry.outputs ?? []).includes('result.json')) {
      result = await readFile(join(ctx.scratchDir, 'result.json'), 'utf8').then(
        (t) => JSON.parse(t) as unknown,
        () => undefined,
      );
    }
    const outputs = type.entry.outputs?.length
      ? await uploadOutputs(ctx, type.entry.outputs, this.store, this.transfers)
      : undefined;
    return { ...(result !== undefined ? { result } : {}), ...(outputs ? { outputs } : {}) };
  }
}
