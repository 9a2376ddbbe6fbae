// Human-readable log lines for a terminal (`logging.pretty`, `auto` when stdout is a TTY). A few
// dozen lines instead of pino-pretty: it would be a dependency (with its own transport thread)
// for a development convenience, and every value here goes through the same escaping as the
// access log, so a hostile model name cannot drive the terminal.
import { Writable } from 'node:stream';
import { escapeText } from './escape.js';

const LEVELS: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
const COLORS: Record<number, string> = { 10: '90', 20: '36', 30: '32', 40: '33', 50: '31', 60: '35' };
const SKIP = new Set(['level', 'time', 'msg', 'service', 'pid', 'hostname', 'err']);
const VALUE_MAX = 1000;

function value(v: unknown): string {
  const text = typeof v === 'string' ? v : JSON.stringify(v);
  const escaped = escapeText(text ?? String(v), VALUE_MAX);
  return typeof v === 'string' && /[\s"=]/.test(escaped) ? JSON.stringify(escaped) : escaped;
}

/** One pino JSON line as `12:00:00.000 INFO  message key=value ...`, and an error's stack below it. */
export function prettyLine(json: string, color: boolean): string {
  let entry: Record<string, unknown>;
  try {
    entry = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return `${escapeText(json, VALUE_MAX * 4)}\n`;
  }
  const level = typeof entry.level === 'number' ? entry.level : 30;
  const name = (LEVELS[level] ?? String(level)).padEnd(5);
  const time = typeof entry.time === 'string' ? entry.time.slice(11, 23) : '';
  const shown = color ? `\u001b[${COLORS[level] ?? '0'}m${name}\u001b[0m` : name;
  const pairs = Object.entries(entry)
    .filter(([k, v]) => !SKIP.has(k) && v !== undefined)
    .map(([k, v]) => `${escapeText(k, 100)}=${value(v)}`);
  let line = [time, shown, escapeText(String(entry.msg ?? ''), VALUE_MAX), ...pairs].filter(Boolean).join(' ');
  const err = entry.err as { type?: unknown; message?: unknown; stack?: unknown } | undefined;
  if (err && typeof err === 'object') {
    const stack = typeof err.stack === 'string' ? err.stack : `${String(err.type ?? 'Error')}: ${String(err.message ?? '')}`;
    line += stack
      .split('\n')
      .map((l) => `\n    ${escapeText(l, VALUE_MAX)}`)
      .join('');
  }
  return `${line}\n`;
}

/** A stream pino writes JSON lines to, writing them on to `out` pretty. */
export function prettyStream(out: NodeJS.WritableStream & { isTTY?: boolean }): Writable {
  const color = out.isTTY === true;
  let rest = '';
  return new Writable({
    write(chunk: Buffer, _encoding, done) {
      const lines = (rest + chunk.toString('utf8')).split('\n');
      rest = lines.pop() ?? '';
      const text = lines.filter(Boolean).map((l) => prettyLine(l, color)).join('');
      if (text) out.write(text);
      done();
    },
  });
}
