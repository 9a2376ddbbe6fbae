// Every log line written by any gateway in this test process, kept for the secret scan
// (docs/reliability.md: no secret appears in any log line); and the answers clients got, scanned for the
// pool keys in every form they could take there (README, "The key pool": no pool key reaches a client).
import { Writable } from 'node:stream';
import { constants, gunzipSync } from 'node:zlib';
import type { Logger } from 'pino';
import { createLogger } from '../../src/logger.js';

const lines: string[] = [];
const secrets = new Set<string>();
/** Each pool key with its base64 forms, worked out once. */
const poolKeys = new Map<string, string[]>();
const leakedAnswerList: string[] = [];

export function captureLogLine(line: string): void {
  lines.push(line);
}

/** Registers a value that must never appear in a log line (a pool key, a user key, a password). */
export function registerSecret(value: string): void {
  if (value.length >= 8) secrets.add(value);
}

/** The base64 and base64url forms of a secret, as it would read inside a longer encoded text:
 * each of the 3 alignments, less the characters that mix with the bytes around it. */
function base64Forms(secret: string): string[] {
  const out: string[] = [];
  for (const pad of [0, 1, 2]) {
    const encoded = Buffer.concat([Buffer.alloc(pad), Buffer.from(secret)]).toString('base64');
    const core = encoded.slice(pad === 0 ? 0 : 4, -4);
    out.push(core, core.replaceAll('+', '-').replaceAll('/', '_'));
  }
  return out;
}

/** Registers a pool key: a secret for the log scan that must not reach any client either. A user's
 * own key is not one: it comes back to its owner when it is created. */
export function registerPoolKey(value: string): void {
  registerSecret(value);
  if (value.length >= 8 && !poolKeys.has(value)) poolKeys.set(value, base64Forms(value));
}

/** The text with JSON escapes and percent-encoding decoded, repeatedly (a scan may over-decode). */
function unescaped(text: string): string {
  let out = text;
  for (let round = 0; round < 3; round++) {
    const next = out
      .replace(/\\u([0-9a-fA-F]{4})/g, (_m, hex: string) => String.fromCharCode(Number.parseInt(hex, 16)))
      .replace(/\\([\\/"])/g, '$1')
      .replace(/%([0-9a-fA-F]{2})/g, (_m, hex: string) => String.fromCharCode(Number.parseInt(hex, 16)));
    if (next === out) break;
    out = next;
  }
  return out;
}

/** The forms of a registered pool key found in `text`: `raw`, `escaped`, `base64`. */
export function poolKeyForms(text: string): string[] {
  const found: string[] = [];
  const plain = unescaped(text);
  for (const [key, base64] of poolKeys) {
    if (text.includes(key)) found.push(`raw ${key.slice(0, 8)}…`);
    else if (plain.includes(key)) found.push(`escaped ${key.slice(0, 8)}…`);
    if (base64.some((form) => text.includes(form) || plain.includes(form))) found.push(`base64 ${key.slice(0, 8)}…`);
  }
  return found;
}

export interface ScannedAnswer {
  status: number;
  headers: Headers | Record<string, string | string[] | undefined>;
  body: Buffer | string;
}

/** Scans what a client got (status line, every header, the body, gunzipped too when it is gzip). */
export function captureAnswer(label: string, answer: ScannedAnswer): void {
  const headerLines: string[] = [];
  const entries = answer.headers instanceof Headers ? [...answer.headers.entries()] : Object.entries(answer.headers);
  for (const [name, value] of entries) if (value !== undefined) headerLines.push(`${name}: ${String(value)}`);
  const body = Buffer.isBuffer(answer.body) ? answer.body : Buffer.from(answer.body, 'utf8');
  const texts = [String(answer.status), ...headerLines, body.toString('utf8'), body.toString('latin1')];
  if (body[0] === 0x1f && body[1] === 0x8b) {
    try {
      texts.push(gunzipSync(body, { finishFlush: constants.Z_SYNC_FLUSH }).toString('utf8'));
    } catch {
      // not gzip after all
    }
  }
  for (const form of new Set(texts.flatMap(poolKeyForms))) leakedAnswerList.push(`${label}: ${form}`);
}

/** The answers that held a pool key, as `label: form`. */
export function leakedAnswers(): readonly string[] {
  return leakedAnswerList;
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
