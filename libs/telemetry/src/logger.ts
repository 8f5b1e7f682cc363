/**
 * Logs (pino) on stdout: JSON lines, or readable coloured lines when stdout is a terminal (`pretty.ts`). Every line
 * written inside a span carries `traceId` and `spanId`.
 */
import type { LoggerService } from '@nestjs/common';
import pino, { type Logger, type LevelWithSilent, type LoggerOptions } from 'pino';
import { activeIds } from './propagation';
import { logDestination } from './pretty';

export type { Logger };

export function createLogger(service: string, level: LevelWithSilent = 'info'): Logger {
  const options: LoggerOptions = {
    level,
    base: { service, pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
    mixin: () => activeIds(),
    redact: { paths: ['callbackToken', '*.callbackToken', 'authorization', '*.authorization'], censor: '[redacted]' },
  };
  const destination = logDestination();
  return destination ? pino(options, destination) : pino(options);
}

/**
 * Nest's own start-up chatter (module loading, one line per mapped route): useful when debugging, noise at `info`.
 */
const FRAMEWORK_CONTEXTS = new Set([
  'NestFactory',
  'InstanceLoader',
  'RoutesResolver',
  'RouterExplorer',
  'NestApplication',
  'NestMicroservice',
]);

/** Routes Nest's own log lines (bootstrap, route mapping, errors) through pino. */
export class NestPinoLogger implements LoggerService {
  constructor(private readonly logger: Logger) {}
  log(message: unknown, ...rest: unknown[]): void {
    const context = rest.at(-1);
    if (typeof context === 'string' && FRAMEWORK_CONTEXTS.has(context)) this.logger.debug({ context }, String(message));
    else this.logger.info({ context }, String(message));
  }
  error(message: unknown, ...rest: unknown[]): void {
    this.logger.error({ context: rest.at(-1), detail: rest.length > 1 ? rest[0] : undefined }, String(message));
  }
  warn(message: unknown, ...rest: unknown[]): void {
    this.logger.warn({ context: rest.at(-1) }, String(message));
  }
  debug(message: unknown, ...rest: unknown[]): void {
    this.logger.debug({ context: rest.at(-1) }, String(message));
  }
  verbose(message: unknown, ...rest: unknown[]): void {
    this.logger.trace({ context: rest.at(-1) }, String(message));
  }
}
