// What the suite-wide secret scan reads (docs/reliability.md, "Secret scan"): every log line of
// any gateway in this test process, a child gateway's stdout and stderr, and every answer a
// gateway sent (answer-tap.ts copies them at the server; scannedRequest and some fixtures hand
// theirs in too). The matching itself is secret-scan.ts; test/setup.ts fails the file on a finding.
import { createHmac } from 'node:crypto';
import { readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { Logger } from 'pino';
import { createLogger } from '../../src/logger.js';
import type { TappedAnswer, TappedRequest } from './answer-tap.js';
import { type Hit, type Output, allowedIn, findings, longestHits, readings, registerSecret as register, rescanStored, scanOutputNow, scanText, valuesOf } from './secret-scan.js';

const lines: string[] = [];

export function captureLogLine(line: string): void {
  lines.push(line);
}

/** Registers a value that no output may hold (a user key, a password, a token), under `label`:
 * the findings name the label, never the value. Without one, the label says where it was registered. */
export function registerSecret(value: string, label?: string): void {
  register(value, label);
}

/** Registers a pool key: no log line and no answer of any client may hold it. */
export function registerPoolKey(value: string, label?: string): void {
  register(value, label, 'pool key');
}

// ---- Answers ----------------------------------------------------------------------------------

/** The routes that make a user key and answer with it, once: the key record and the key itself. */
const KEY_ROUTE = /^POST (\/admin\/users\/[^/]+\/keys|\/console\/api\/me\/keys)$/;
const CREATED_KEY = /^sk-kr-[A-Za-z0-9]{32,128}$/;
/** The console's session routes: their answers show the session's CSRF token to its holder. */
const SESSION_ROUTE = /^(GET|POST) \/console\/api\/session$/;
const SESSION_COOKIE = /^set-cookie:\s*(?:__Host-)?keyrelay_session=([^;\r\n]+)/gim;

function jsonOf(text: string): any {
  if (!text.startsWith('{')) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/**
 * The secrets an answer holds by design, registered here as it is the first place they are seen:
 * - the answer that created a user key shows the key in its body, that once (and only that key);
 * - the console's session answers (GET and POST /console/api/session) show the session's CSRF token
 *   to the session's holder, and the sign-in sets the session cookie.
 * Every other answer, and every other secret in these, is scanned like any answer.
 */
function ownSecrets(route: string, status: number, head: string, body: string): Array<{ value: string; part: string }> {
  const allowed: Array<{ value: string; part: string }> = [];
  const json = jsonOf(body);
  if (KEY_ROUTE.test(route) && status === 201 && json && typeof json.key === 'string' && CREATED_KEY.test(json.key) && typeof json.id === 'string') {
    register(json.key, `user key ${json.id} of user ${String(json.userId)}`, 'user key');
    allowed.push({ value: json.key, part: 'body' });
  }
  if (SESSION_ROUTE.test(route) && status === 200 && json && typeof json.csrfToken === 'string' && typeof json.role === 'string') {
    register(json.csrfToken, `console CSRF token (${json.role} session)`);
    allowed.push({ value: json.csrfToken, part: 'body' });
  }
  for (const [, value] of head.matchAll(SESSION_COOKIE)) {
    if (!value || !SESSION_ROUTE.test(route)) continue;
    register(value, 'console session cookie');
    allowed.push({ value, part: 'header set-cookie' });
    // What an admin session keeps of the admin token (src/console-server/cookie.ts, adminTag).
    if (json?.role === 'admin') for (const token of valuesOf('admin token')) register(createHmac('sha256', value).update(token).digest('base64url'), 'admin tag of a console session');
  }
  return allowed;
}

function headParts(head: string): Array<{ name: string; text: string }> {
  return head
    .split(/\r?\n/)
    .filter(Boolean)
    .map((line, i) => {
      const colon = line.indexOf(':', 1);
      return { name: i === 0 && colon === -1 ? 'status line' : `header ${colon === -1 ? line.slice(0, 20) : line.slice(0, colon).toLowerCase()}`, text: line };
    });
}

/** Scans an output of a gateway other than an answer (a webhook delivery): headers, then body. */
export function captureOutput(source: string, head: string, body: Buffer): void {
  scanOutputNow({ source, parts: [...headParts(head), ...readings(body)] });
}

/**
 * The text of a secret its request held (in whatever form) may come back in its answer's body,
 * exactly that text and no more: the client sent it (a test that writes a key into the `model`
 * field, which the answer names). That is no output of anything the gateway kept.
 */
function echoed(sent: Buffer | undefined): Array<{ value: string; part: string }> {
  if (!sent || sent.length === 0) return [];
  return readings(sent).flatMap((r) => scanText(r.text).map((h) => ({ value: r.text.slice(h.at, h.at + h.length), part: 'body' })));
}

/** `route`: the method and path the answer is for (`POST /admin/users/u1/keys`); `sent`: the
 * request's body. */
function answerOutput(source: string, route: string, status: number, head: string, body: Buffer, sent?: Buffer): Output {
  const texts = readings(body);
  const allowed = [...ownSecrets(route, status, head, texts[0]?.text ?? ''), ...echoed(sent)];
  return { source, parts: [...headParts(head), ...texts], allowed };
}

function scanAnswer(source: string, route: string, status: number, head: string, body: Buffer, sent?: Buffer): void {
  scanOutputNow(answerOutput(source, route, status, head, body, sent));
}

/** What the scan would find in an answer, its rules applied, without counting it (for its tests). */
export function answerHits(route: string, status: number, head: string, body: string, sent?: string): Hit[] {
  const output = answerOutput('', route, status, head, Buffer.from(body, 'utf8'), sent === undefined ? undefined : Buffer.from(sent, 'utf8'));
  return output.parts.flatMap((part) => scanText(part.text, 0, allowedIn(output, part.name)));
}

/** Scans an answer a gateway's server sent (answer-tap.ts). */
export function captureTapped(answer: TappedAnswer): void {
  const path = answer.target.split('?')[0] ?? '';
  const what = answer.websocket ? 'WebSocket' : 'answer';
  scanAnswer(`${answer.server}, ${what} to ${answer.method} ${path} (${answer.status})`, `${answer.method} ${path}`, answer.status, answer.head, answer.body, answer.sent);
}

export interface ScannedAnswer {
  status: number;
  headers: Headers | Record<string, string | string[] | undefined>;
  body: Buffer | string;
  /** The request's body, when the client sent one. */
  sent?: string;
}

/** Scans what a client got (status, every header, the body, gunzipped too when it is gzip).
 * `label`: the method and URL (`POST http://127.0.0.1:4321/admin/users/u1/keys`). */
export function captureAnswer(label: string, answer: ScannedAnswer): void {
  const entries = answer.headers instanceof Headers ? [...answer.headers.entries()] : Object.entries(answer.headers);
  const head = [`status ${answer.status}`, ...entries.filter(([, v]) => v !== undefined).map(([n, v]) => `${n}: ${String(v)}`)].join('\r\n');
  const body = Buffer.isBuffer(answer.body) ? answer.body : Buffer.from(answer.body, 'utf8');
  const [, method = '', path = ''] = /^([A-Z]+) (?:[a-z]+:\/\/[^/]+)?([^?\s]*)/.exec(label) ?? [];
  scanAnswer(`client answer ${label}`, `${method} ${path}`, answer.status, head, body, answer.sent === undefined ? undefined : Buffer.from(answer.sent, 'utf8'));
}

/** The password of a URL (`http://user:pass@host`), when it has one. */
export function urlPassword(value: unknown): string | undefined {
  if (typeof value !== 'string' || !value.includes('@')) return undefined;
  try {
    const password = decodeURIComponent(new URL(value).password);
    return password || undefined;
  } catch {
    return undefined;
  }
}

/**
 * Registers the secrets an admin request gives a gateway at run time: a pool key (`key`, as pool
 * key routes take it), a webhook's signing `secret`, any password in a URL (a proxy, a receiver).
 * What a test sends is not an output; what the gateway says back afterwards is.
 */
export function captureAdminRequest(request: TappedRequest): void {
  const path = request.target.split('?')[0] ?? '';
  const json = jsonOf(request.body.toString('utf8'));
  if (!json) return;
  const walk = (value: unknown, where: string): void => {
    if (Array.isArray(value)) value.forEach((v, i) => walk(v, `${where}/${i}`));
    else if (value && typeof value === 'object') {
      const record = value as Record<string, unknown>;
      if (typeof record.key === 'string' && path.startsWith('/admin/upstreams')) register(record.key, `pool key ${String(record.id ?? where)} sent to ${request.method} ${path}`, 'pool key');
      if (typeof record.secret === 'string') register(record.secret, `secret sent to ${request.method} ${path}`);
      for (const [name, v] of Object.entries(record)) walk(v, `${where}/${name}`);
    } else {
      const password = urlPassword(value);
      if (password) register(password, `password of a URL sent to ${request.method} ${path} (${where || '/'})`);
    }
  };
  walk(json, '');
}

// ---- Child processes --------------------------------------------------------------------------

const answerDirs = new Map<string, Map<string, number>>();

/** A directory where a child gateway writes a copy of each answer (child-answer-tap.ts). */
export function watchAnswerDir(dir: string): void {
  answerDirs.set(dir, new Map());
}

/** Reads and scans what the child processes wrote to their answer directories since last time. */
export function drainAnswerDirs(remove = false): void {
  for (const [dir, read] of answerDirs) {
    let names: string[] = [];
    try {
      names = readdirSync(dir);
    } catch {
      continue;
    }
    for (const name of names) {
      const text = readFileSync(join(dir, name), 'utf8');
      const from = read.get(name) ?? 0;
      const end = text.lastIndexOf('\n') + 1;
      read.set(name, Math.max(from, end));
      for (const line of text.slice(from, end).split('\n')) {
        if (!line) continue;
        const record = JSON.parse(line) as Omit<TappedAnswer, 'body' | 'sent'> & { body: string; sent?: string; request?: true };
        const body = Buffer.from(record.body, 'base64');
        if (record.request) captureAdminRequest({ ...record, body });
        else captureTapped({ ...record, body, sent: record.sent === undefined ? undefined : Buffer.from(record.sent, 'base64') });
      }
    }
    if (remove) {
      rmSync(dir, { recursive: true, force: true });
      answerDirs.delete(dir);
    }
  }
}

/** Scans text a process printed (a child gateway's stderr, its stdout lines that are not JSON logs). */
export function captureProcessOutput(source: string, text: string): void {
  processOutputs.push({ source, text });
}
const processOutputs: Array<{ source: string; text: string }> = [];

// ---- The file's verdict -------------------------------------------------------------------------

const fileEndReads = new Set<() => Promise<void>>();

/** A read to make at the file's end if it is still wanted then (a gateway the file never closed);
 * returns the function that takes it back. */
export function atFileEnd(read: () => Promise<void>): () => void {
  fileEndReads.add(read);
  return () => fileEndReads.delete(read);
}

/** Makes the reads still wanted at the file's end. */
export async function fileEndOutputs(): Promise<void> {
  for (const read of [...fileEndReads]) await read();
  fileEndReads.clear();
}

const TOKEN = /\bsk-[A-Za-z0-9_-]{6,}/;

/** The captured log lines that hold a registered secret in any form, or any `sk-` token. */
export function leakedLines(): string[] {
  return lines.filter((line) => TOKEN.test(line) || readings(Buffer.from(line, 'utf8')).some((r) => scanText(r.text).length > 0));
}

const textHits = (text: string) => longestHits(readings(Buffer.from(text, 'utf8')).map((r) => ({ name: r.name, hits: scanText(r.text) })));

/** The findings in log line number `n`: registered secrets in any form, JSON-escaped too, and any
 * `sk-` token. The line's message names the place, unless it is where the secret stands. */
export function logLineFindings(line: string, n: number): string[] {
  const hits = textHits(line);
  if (hits.length === 0 && !TOKEN.test(line)) return [];
  const msg = /"msg":"([^"]{0,60})/.exec(line)?.[1];
  const where = `log line ${n} (${msg !== undefined && textHits(msg).length === 0 && !TOKEN.test(msg) ? msg : 'message not shown'})`;
  if (hits.length === 0) return [`${where}: an sk- token, at ${line.search(TOKEN)}`];
  return hits.map(({ hit, part }) => `${where}: ${hit.label} (${hit.kind}), ${hit.form}, in ${part === 'body' ? 'the line' : 'the line, unescaped'} at ${hit.at}`);
}

/** Every finding of the file: answers as they came, then logs and process output against every
 * secret registered by now. Each names the source, the secret's label and the place. */
export function secretFindings(): string[] {
  drainAnswerDirs(true);
  rescanStored();
  const out = [...findings()];
  lines.forEach((line, i) => out.push(...logLineFindings(line, i + 1)));
  for (const { source, text } of processOutputs) {
    for (const { hit, part } of textHits(text)) out.push(`${source}: ${hit.label} (${hit.kind}), ${hit.form}, in ${part === 'body' ? 'the text' : 'the text, unescaped'} at ${hit.at}`);
  }
  return out;
}

/** The answer findings, as `source: label, form, place`. */
export function leakedAnswers(): readonly string[] {
  rescanStored();
  return findings();
}

/** The forms of a registered pool key found in `text` (`raw whole`, `base64 fragment of 14` ...). */
export function poolKeyForms(text: string): string[] {
  const found = [text, ...readings(Buffer.from(text, 'utf8')).slice(1).map((r) => r.text)].flatMap((t) => scanText(t));
  return [...new Set(found.filter((h) => h.kind === 'pool key').map((h) => `${h.form} of ${h.label}`))];
}

export function capturedLines(): readonly string[] {
  return lines;
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
