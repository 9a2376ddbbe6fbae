// Every log line written by any gateway in this test process, kept for the secret scan
// (RELIABILITY.md: no secret appears in any log line).
import { Writable } from 'node:stream';
import type { Logger } from 'pino';
import { createLogger } from '../../src/logger.js';

const lines: string[] = [];
const secrets = new Set<string>();

export function captureLogLine(line: string): void {
  lines.push(line);
}

/** Registers a value that must never appear in a log line (a pool key, a user key, a password). */
export function registerSecret(value: string): void {
  if (value.length >= 8) secrets.add(value);
}

export function capturedLines(): readonly string[] {
  return lines;
}

/** The captured lines that contain a registered secret or any `sk-` token. */
export function leakedLines(): string[] {
  return lines.filter((line) => /\bsk-[A-Za-z0-9_-]{6,}/.test(line) || [...secrets].some((s) => line.includes(s)));
}

/** A logger whose every line goes to the secret scan (for a store or a part built without a gateway). */
export function capturingLogger(level = 'info'): Logger {
  return createLogger(
    level,
    new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const line of chunk.toString('utf8').split('\n')) if (line) captureLogLine(line);
        done();
      },
    }),
  );
}
