// The access line of every request, written as pino writes a line but with one JSON.stringify of
// its fields instead of pino's key-by-key serialising, which cost most of the request's record.
// The line is byte for byte what `log.info(fields, msg)` writes (test/observability-line-writer):
// pino's level and time, the logger's bindings (service, pid), the fields, the message; then the
// logger's own write hook (the line-wide masking of src/logger.ts) and its stream. The fields are
// plain data (strings already escaped, numbers, flat objects), for which JSON.stringify writes
// what pino does; the logger's redaction paths and serializers name none of them.
import pino, { type Logger } from 'pino';
import { isoAt } from './clock.js';

const { chindingsSym, endSym, hooksSym, lsCacheSym, messageKeySym, mixinSym, needsMetadataGsym, streamSym, timeSym } = pino.symbols;

type Level = 'info' | 'warn';
export type LineWriter = (level: Level, fields: Record<string, unknown>, msg: string) => void;

interface Stream {
  write(line: string): unknown;
}

/** The writer for this logger; pino's own call where the shortcut cannot promise the same line. */
export function lineWriter(log: Logger): LineWriter {
  const internal = <T>(sym: symbol): T | undefined => (log as unknown as Record<symbol, T | undefined>)[sym];
  const stream = internal<Stream & Record<symbol, unknown>>(streamSym);
  const levels = internal<Record<number, string>>(lsCacheSym);
  const time = internal<() => string>(timeSym);
  // A stream that reads the last line's metadata (pino's multistream and pretty printing) gets the
  // line through pino; so does a logger with a mixin, or lines ended otherwise than with `}\n`.
  const plain =
    stream !== undefined &&
    stream[needsMetadataGsym] !== true &&
    !internal<unknown>(mixinSym) &&
    internal<string>(endSym) === '}\n' &&
    typeof levels?.[30] === 'string' &&
    typeof time === 'function';
  if (!plain) return (level, fields, msg) => log[level](fields, msg);
  const hook = internal<{ streamWrite?: (line: string) => string }>(hooksSym)?.streamWrite;
  // pino's own ISO time, from the clock shared with the records (made once per millisecond).
  const timeOf =
    time === pino.stdTimeFunctions.isoTime
      ? () => `,"time":"${isoAt(Date.now())}"`
      : () => time.call(log);
  const msgKey = JSON.stringify(internal<string>(messageKeySym) ?? 'msg');
  return (level, fields, msg) => {
    if (!log.isLevelEnabled(level)) return;
    const body = JSON.stringify(fields);
    const num = log.levels.values[level] as number;
    // `{"level":30` + `,"time":"..."` + bindings + `,` + fields without their braces + the message.
    const line = `${levels[num]}${timeOf()}${internal<string>(chindingsSym) ?? ''}${body.length > 2 ? `,${body.slice(1, -1)}` : ''},${msgKey}:${JSON.stringify(msg)}}\n`;
    stream.write(hook ? hook(line) : line);
  };
}
