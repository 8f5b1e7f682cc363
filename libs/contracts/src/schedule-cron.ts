/**
 * Due times of a cron schedule, computed by `cron-parser` (5 fields, or 6 with seconds first; read in an IANA time
 * zone, daylight-saving changes handled by the library). Due times are whole seconds; every function is pure (the
 * caller passes the instant), so tests drive them with a fake clock.
 *
 * DST (docs/schedules.md): a local time that does not exist on the spring-forward day runs once, an hour later on the
 * wall clock (02:30 Europe/Paris → 03:30 CEST); a local time that happens twice on the fall-back day runs once, at
 * its first occurrence.
 */
import { CronExpressionParser, type CronExpression } from 'cron-parser';

/** A readable reason why `cron` is not a 5- or 6-field cron expression, or undefined when it is one. */
export function cronProblem(cron: string): string | undefined {
  const fields = cron.trim().split(/\s+/);
  if (cron.trim() === '' || fields.length < 5 || fields.length > 6)
    return 'must be a cron expression of 5 fields (minute hour day month weekday) or 6 (seconds first)';
  try {
    const e = CronExpressionParser.parse(cron, { currentDate: new Date(0), tz: 'UTC' });
    // Parses but never comes (e.g. a weekday constraint no date meets within the library's search): refuse.
    e.next();
    return undefined;
  } catch (err) {
    return `is not a valid cron expression: ${(err as Error).message}`;
  }
}

/** True for an IANA time zone name the runtime knows (`UTC`, `Europe/Paris` …). */
export function isTimeZone(tz: string): boolean {
  if (tz.length === 0 || tz.length > 64) return false;
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

function parse(cron: string, tz: string, at: number): CronExpression {
  return CronExpressionParser.parse(cron, { currentDate: new Date(at), tz });
}

/** The first due time strictly after `afterMs` (epoch ms), or undefined when there is none. */
export function nextDueAfter(cron: string, tz: string, afterMs: number): number | undefined {
  try {
    return parse(cron, tz, afterMs).next().getTime();
  } catch {
    return undefined;
  }
}

/** The latest due time at or before `atMs` (epoch ms), or undefined when there is none. */
export function latestDueAtOrBefore(cron: string, tz: string, atMs: number): number | undefined {
  // `prev()` is strictly before its start; due times are whole seconds, so start at the next whole second.
  const start = Math.floor(atMs / 1000) * 1000 + 1000;
  try {
    return parse(cron, tz, start).prev().getTime();
  } catch {
    return undefined;
  }
}

/**
 * What the scheduler does at `nowMs` for a schedule whose next due time to handle is `nextRunAtMs`: nothing yet
 * (`due: undefined`), or the ONE due time to handle now — the latest one at or before now, so that due times missed
 * while no scheduler ran collapse into one — and the next due time after it.
 */
export function dueNow(
  cron: string,
  tz: string,
  nextRunAtMs: number,
  nowMs: number,
): { due?: number; next: number | undefined } {
  if (nextRunAtMs > nowMs) return { next: nextRunAtMs };
  const latest = latestDueAtOrBefore(cron, tz, nowMs);
  const due = latest !== undefined && latest >= nextRunAtMs ? latest : nextRunAtMs;
  return { due, next: nextDueAfter(cron, tz, Math.max(due, nowMs)) };
}
