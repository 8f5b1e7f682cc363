/**
 * Readable logs for people at a terminal: one coloured line per record (pino-pretty), used by `npm run up` and by a
 * service started by hand on a TTY. Anything else (pipes, files, containers, tests) keeps the JSON lines.
 */
import { build, prettyFactory, type PrettyOptions } from 'pino-pretty';

const OPTIONS: PrettyOptions = {
  singleLine: true,
  translateTime: 'SYS:HH:MM:ss.l',
  ignore: 'pid,hostname,service,context',
  messageFormat: '{if context}{context}: {end}{msg}',
  // pino-pretty prints `err`/`error` as an indented block under the line even with singleLine; kept among the
  // fields instead, an error stays on its record's line (its stack JSON-escaped).
  errorLikeObjectKeys: [],
};

/**
 * Formats one JSON log line as one readable line (a line break left in a message is shown as `\n`); lines that are
 * not pino JSON come back unchanged.
 */
export function prettyLogLine(o: { colorize: boolean }): (line: string) => string {
  const pretty = prettyFactory({ ...OPTIONS, colorize: o.colorize });
  return (line) => {
    if (!line.startsWith('{')) return line;
    try {
      const record: unknown = JSON.parse(line);
      if (typeof record !== 'object' || record === null || !('msg' in record)) return line;
      return pretty(record).replace(/\n+$/, '').replace(/\r?\n/g, '\\n');
    } catch {
      return line;
    }
  };
}

/** The pino destination: pretty on a terminal, JSON otherwise. */
export function logDestination(stream: NodeJS.WriteStream = process.stdout): NodeJS.WritableStream | undefined {
  if (!stream.isTTY) return undefined;
  return build({ ...OPTIONS, colorize: true, destination: 1, sync: true });
}
