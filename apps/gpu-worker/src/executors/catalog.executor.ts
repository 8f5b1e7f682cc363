/**
 * Operator-defined job types (JOB_TYPES_FILE). The argv comes from the operator's template; a client's parameters
 * (validated against the type's JSON Schema) fill placeholders, each one becoming exactly one argv element — never a
 * shell line. A program reports progress with stdout lines `GANTRY_PROGRESS <percent> [stage]` and a result with one
 * line `GANTRY_RESULT <json>` (or a `result.json` file in its working directory).
 */
import { join } from 'node:path';
import { renderTemplate, type CatalogJobType } from '@gantry/contracts';
import type { OutputStore } from '@gantry/storage';
import { JobFailure, downloadBudget, type AttemptContext, type ExecutionResult, type JobExecutor } from './executor';
import { assertUploadTarget, readRegularFile, uploadOutputs } from './outputs';
import { exitFailure, runProcess } from './process-runner';
import { inputUrl } from './parent-input';
import { downloadInput, type TransferSettings } from './transfers';

const PROGRESS = /^GANTRY_PROGRESS\s+(\d+(?:\.\d+)?)(?:\s+(.*))?$/;
const RESULT = /^GANTRY_RESULT\s+(.*)$/;
/** A result is stored in the job record (one NATS message, 1 MiB by default): keep it well below that. */
export const MAX_RESULT_BYTES = 64 * 1024;

function parseResult(text: string, from: string): unknown {
  if (Buffer.byteLength(text) > MAX_RESULT_BYTES) {
    throw new JobFailure(
      'JOB_FAILED',
      `the result (${from}) is larger than ${MAX_RESULT_BYTES} bytes; write big results as an output file`,
      false,
    );
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new JobFailure('JOB_FAILED', `the result (${from}) is not valid JSON: ${(err as Error).message}`, false);
  }
}

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
    const outputNames = type.entry.outputs ?? [];
    assertUploadTarget(ctx, outputNames);

    const downloads = Object.entries(type.entry.downloads ?? {});
    let downloaded = 0;
    for (const [i, [name, tpl]] of downloads.entries()) {
      ctx.progress(0, `downloading ${i + 1}/${downloads.length}`);
      downloaded += await downloadInput(
        await inputUrl(ctx, renderTemplate(tpl, render)),
        join(ctx.scratchDir, name),
        this.store,
        this.transfers,
        ctx.signal,
        ctx.s3ReadRefusal?.bind(ctx),
        downloadBudget(ctx, downloaded),
      );
    }

    const [command, ...args] = type.entry.command.map((part) => renderTemplate(part, render));
    let resultLine: string | undefined;
    const r = await runProcess({
      command: command!,
      args,
      cwd: ctx.scratchDir,
      env: {
        ...(type.entry.env ?? {}),
        ...ctx.env,
        GANTRY_JOB_ID: ctx.record.id,
        GANTRY_ATTEMPT: String(ctx.attempt),
        GANTRY_WORK_DIR: ctx.sandbox?.workDir ?? ctx.scratchDir,
      },
      signal: ctx.signal,
      ...(ctx.lease ? { lease: ctx.lease } : {}),
      ...(ctx.sandbox ? { sandbox: ctx.sandbox } : {}),
      // The operator's catalog directory holds the type's scripts; a type may opt into the network.
      network: type.entry.network === true,
      readOnly: [type.catalogDir],
      onStdoutLine: (line) => {
        const p = PROGRESS.exec(line.trim());
        if (p) {
          ctx.progress(Math.min(98, Number(p[1])), p[2]?.trim() || undefined);
          return;
        }
        const m = RESULT.exec(line.trim());
        if (m) resultLine = m[1]!;
      },
    });
    if (ctx.signal.aborted) throw ctx.signal.reason;
    if (r.exitCode !== 0) throw exitFailure(type.name, r, type.entry.permanentExitCodes);
    let result: unknown;
    if (resultLine !== undefined) {
      result = parseResult(resultLine, 'GANTRY_RESULT line');
    } else if (!outputNames.includes('result.json')) {
      // The job wrote it: a regular file only (a symlink to a worker file would be read with the worker's rights).
      const text = await readRegularFile(join(ctx.scratchDir, 'result.json'), MAX_RESULT_BYTES + 1);
      if (text !== undefined) result = parseResult(text, 'result.json');
    }
    const outputs = outputNames.length ? await uploadOutputs(ctx, outputNames, this.store, this.transfers) : undefined;
    return { ...(result !== undefined ? { result } : {}), ...(outputs ? { outputs } : {}) };
  }
}
