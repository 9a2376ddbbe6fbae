// The suite-wide secret scan (docs/reliability.md, "Secret scan"). Every secret a test file knows
// of is registered here with a label, and every output of a gateway (its log lines, a child
// process's stdout and stderr, every answer's status line, headers and body, WebSocket frames) is
// scanned for it: whole, as any fragment of WINDOW characters or more, base64 or hex encoded, and
// as the SHA-256 digests the gateway keeps. test/setup.ts fails the file on any finding.
//
// The cost stays linear in the text: every WINDOW-character window of every form of every secret
// goes into one table under a rolling hash, and a text is read once, window by window, looking each
// hash up (a hit is then compared character by character).
import { createHash } from 'node:crypto';
import { constants, gunzipSync } from 'node:zlib';

/** The shortest piece of a secret that counts as a leak: long enough that chance never makes one
 * (12 base62 characters are 71 bits), short enough that a key cut in half is still caught. */
export const WINDOW = 12;

export type SecretKind = 'pool key' | 'user key' | 'admin token' | 'secret';

interface Secret {
  label: string;
  kind: SecretKind;
  /** Order of registration: a stored text is scanned again only for secrets newer than itself. */
  seq: number;
  value: string;
  forms: Form[];
}

interface Form {
  name: string;
  text: string;
  /** How a piece of this form counts: `any` piece of WINDOW characters (a digest, an encoding
   * of a random key), `none` (an encoding of a made-up key: whole only), or for the raw form of a
   * key that has a random part, a piece holding RANDOM_PIECE characters of it: `random[i]` is how
   * many of the first i characters are random. */
  fragments: 'any' | 'none' | number[];
}

/** Characters of a key's random part a fragment must hold to count. */
const RANDOM_PIECE = 8;

interface WindowEntry {
  secret: Secret;
  form: Form;
  /** Where the window starts in the form's text. */
  at: number;
  window: string;
}

const secrets = new Map<string, Secret>();
/** Secrets shorter than WINDOW: only found whole. */
const shortSecrets: Secret[] = [];
const table = new Map<number, WindowEntry[]>();
let seq = 0;

const BASE = 0x01000193;
/** BASE ** (WINDOW - 1), mod 2^32: the weight of the character leaving the window. */
const TOP = (() => {
  let p = 1;
  for (let i = 1; i < WINDOW; i++) p = Math.imul(p, BASE);
  return p;
})();

function hashOf(text: string, from: number): number {
  let h = 0;
  for (let i = from; i < from + WINDOW; i++) h = (Math.imul(h, BASE) + text.charCodeAt(i)) | 0;
  return h;
}

/** The base64 forms of `bytes` as they read inside a longer encoded text: each of the 3
 * alignments, less the characters that mix with the bytes around it; base64url alike. */
function base64Forms(bytes: Buffer): string[] {
  const out: string[] = [];
  for (const pad of [0, 1, 2]) {
    const encoded = Buffer.concat([Buffer.alloc(pad), bytes]).toString('base64').replace(/=+$/, '');
    const core = encoded.slice(pad === 0 ? 0 : 4, -3);
    out.push(core, core.replaceAll('+', '-').replaceAll('/', '_'));
  }
  return out;
}

/**
 * The random part of a key, as a running count: runs of 10 or more letters and digits that mix
 * at least two of digits, capitals and small letters, each twice (`Zq8Lm3Np7R…`, `a1a1a1…`, the 40
 * characters of an `sk-kr-` key). A made-up test key of words (`sk-pool-attack7-alias-1`,
 * `test-admin-token-0123456789`) has none: a piece of it is a word that other text holds too (a
 * user id `attack7-alias-only`), so only the whole of it counts.
 */
function randomCount(value: string): number[] | undefined {
  const counts = [0];
  const random = new Array<boolean>(value.length).fill(false);
  let any = false;
  for (const run of value.matchAll(/[A-Za-z0-9]{10,}/g)) {
    const classes = [/[0-9].*[0-9]/, /[A-Z].*[A-Z]/, /[a-z].*[a-z]/].filter((c) => c.test(run[0])).length;
    if (classes < 2) continue;
    any = true;
    for (let i = run.index; i < run.index + run[0].length; i++) random[i] = true;
  }
  for (let i = 0; i < value.length; i++) counts.push(counts[i]! + (random[i] ? 1 : 0));
  return any ? counts : undefined;
}

/** Every form a secret could take in an output. */
function formsOf(value: string): Form[] {
  const bytes = Buffer.from(value, 'utf8');
  const sha = createHash('sha256').update(value).digest();
  const random = randomCount(value);
  const encoded: Form['fragments'] = random ? 'any' : 'none';
  const forms: Form[] = [
    { name: 'raw', text: value, fragments: random ?? 'none' },
    { name: 'hex', text: bytes.toString('hex'), fragments: encoded },
    ...base64Forms(bytes).map((text) => ({ name: 'base64', text, fragments: encoded })),
    // The gateway keeps a key (src/keys.ts digestKey) and a session cookie (console-server/cookie.ts)
    // under the SHA-256 hex digest: one in an answer is a key's identity in the store.
    { name: 'sha256 hex', text: sha.toString('hex'), fragments: 'any' },
    { name: 'sha256 base64', text: sha.toString('base64').replace(/=+$/, ''), fragments: 'any' },
    { name: 'sha256 base64url', text: sha.toString('base64url'), fragments: 'any' },
  ];
  // 32 bytes written as hex or base64 (KEYRELAY_SECRET): the other spellings of those bytes.
  let raw: Buffer | undefined;
  if (/^[0-9a-fA-F]{64}$/.test(value)) raw = Buffer.from(value, 'hex');
  else if (/^[A-Za-z0-9+/_-]{43}=?$/.test(value)) raw = Buffer.from(value.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
  if (raw?.length === 32) {
    forms.push(
      { name: 'as hex bytes', text: raw.toString('hex'), fragments: 'any' },
      { name: 'as base64 bytes', text: raw.toString('base64').replace(/=+$/, ''), fragments: 'any' },
      { name: 'as base64url bytes', text: raw.toString('base64url'), fragments: 'any' },
    );
  }
  // One form per text (base64 and base64url read alike without a + or a /).
  const seen = new Set<string>();
  return forms.filter((f) => (f.text.length >= WINDOW || f.name === 'raw') && !seen.has(f.text) && seen.add(f.text));
}

/** Where the registration came from, for a secret a test names without a label. */
function caller(): string {
  const stack = new Error().stack?.split('\n') ?? [];
  const line = stack.find((l) => /\.test\.ts|helpers\/(?!secret-scan|log-capture)/.test(l) && !l.includes('secret-scan.ts') && !l.includes('log-capture.ts'));
  const where = line ? /([\w.-]+\/[\w.-]+\.ts):(\d+)/.exec(line) : null;
  return where ? `${where[1]}:${where[2]}` : 'unknown place';
}

/** The values registered as `kind`. */
export function valuesOf(kind: SecretKind): string[] {
  return [...secrets.values()].filter((s) => s.kind === kind).map((s) => s.value);
}

/** Registers a value that no output may hold, under a label that findings name (never the value).
 * Registering a value twice keeps its first label. Values under 8 characters are not secrets. */
export function registerSecret(value: string, label?: string, kind: SecretKind = 'secret'): void {
  if (typeof value !== 'string' || value.length < 8) return;
  const known = secrets.get(value);
  if (known) {
    // A pool key is the stricter kind: it may not even reach its own gateway's clients.
    if (kind === 'pool key') known.kind = kind;
    return;
  }
  const secret: Secret = { label: label ?? `secret registered at ${caller()}`, kind, seq: ++seq, value, forms: formsOf(value) };
  secrets.set(value, secret);
  if (value.length < WINDOW) shortSecrets.push(secret);
  for (const form of secret.forms) {
    const { text } = form;
    // A form found whole only needs one window: its first.
    for (let at = 0; at + WINDOW <= text.length && (at === 0 || form.fragments !== 'none'); at++) {
      const window = text.slice(at, at + WINDOW);
      const h = hashOf(window, 0);
      const entries = table.get(h);
      const entry = { secret, form, at, window };
      if (entries) entries.push(entry);
      else table.set(h, [entry]);
    }
  }
}

export interface Hit {
  label: string;
  kind: SecretKind;
  /** `raw whole`, `raw fragment of 14`, `sha256 hex whole` ... */
  form: string;
  /** Offset in the scanned text, and how many characters matched. */
  at: number;
  length: number;
  value: string;
}

/** Where the values of `allowed` stand in `text`, as [start, end) spans. */
function spansOf(text: string, allowed: ReadonlySet<string> | undefined): Array<[number, number]> {
  const spans: Array<[number, number]> = [];
  for (const value of allowed ?? []) {
    for (let at = text.indexOf(value); at !== -1; at = text.indexOf(value, at + 1)) spans.push([at, at + value.length]);
  }
  return spans;
}

/**
 * The secrets (newer than `after`) found in `text`, one hit per secret: its longest match. A match that lies
 * wholly inside an occurrence of a value of `allowed` (a key in the answer that created it) is
 * not a hit: that covers the value and nothing around it, nor its digests or encodings.
 */
export function scanText(text: string, after = 0, allowed?: ReadonlySet<string>): Hit[] {
  const hits = new Map<string, Hit>();
  const spans = spansOf(text, allowed);
  const inside = (start: number, end: number) => spans.some(([s, e]) => start >= s && end <= e);
  const consider = (secret: Secret) => secret.seq > after;
  for (const secret of shortSecrets) {
    if (!consider(secret)) continue;
    for (let at = text.indexOf(secret.value); at !== -1; at = text.indexOf(secret.value, at + 1)) {
      if (inside(at, at + secret.value.length)) continue;
      hits.set(secret.value, { label: secret.label, kind: secret.kind, form: 'raw whole', at, length: secret.value.length, value: secret.value });
      break;
    }
  }
  if (text.length < WINDOW || table.size === 0) return [...hits.values()];
  let h = hashOf(text, 0);
  for (let i = 0; ; i++) {
    const entries = table.get(h);
    if (entries) {
      for (const e of entries) {
        const found = hits.get(e.secret.value);
        if (found?.form.endsWith('whole') || !consider(e.secret) || !text.startsWith(e.window, i)) continue;
        // Grow the match both ways to tell a whole secret from a fragment, and say how long it is.
        let start = i;
        let end = i + WINDOW;
        let fs = e.at;
        let fe = e.at + WINDOW;
        const formText = e.form.text;
        while (fs > 0 && start > 0 && text.charCodeAt(start - 1) === formText.charCodeAt(fs - 1)) {
          start--;
          fs--;
        }
        while (fe < formText.length && end < text.length && text.charCodeAt(end) === formText.charCodeAt(fe)) {
          end++;
          fe++;
        }
        if (inside(start, end)) continue;
        const whole = fs === 0 && fe === formText.length;
        const { fragments } = e.form;
        if (!whole && (fragments === 'none' || (Array.isArray(fragments) && fragments[fe]! - fragments[fs]! < RANDOM_PIECE))) continue;
        if (found && found.length >= end - start) continue;
        hits.set(e.secret.value, { label: e.secret.label, kind: e.secret.kind, form: `${e.form.name} ${whole ? 'whole' : `fragment of ${end - start}`}`, at: start, length: end - start, value: e.secret.value });
      }
    }
    if (i + WINDOW >= text.length) break;
    h = (Math.imul(h - Math.imul(text.charCodeAt(i), TOP), BASE) + text.charCodeAt(i + WINDOW)) | 0;
  }
  return [...hits.values()];
}

/** The text with JSON escapes and percent-encoding decoded, repeatedly (a scan may over-decode). */
export function unescaped(text: string): string {
  let out = text;
  for (let round = 0; round < 3; round++) {
    if (!/[\\%]/.test(out)) break;
    const next = out
      .replace(/\\u([0-9a-fA-F]{4})/g, (_m, hex: string) => String.fromCharCode(Number.parseInt(hex, 16)))
      .replace(/\\([\\/"])/g, '$1')
      .replace(/%([0-9a-fA-F]{2})/g, (_m, hex: string) => String.fromCharCode(Number.parseInt(hex, 16)));
    if (next === out) break;
    out = next;
  }
  return out;
}

/** The readings of a body a client could make: as UTF-8, unescaped, and gunzipped when gzip. */
export function readings(body: Buffer): Array<{ name: string; text: string }> {
  const out = [{ name: 'body', text: body.toString('utf8') }];
  if (body[0] === 0x1f && body[1] === 0x8b) {
    try {
      out.push({ name: 'gunzipped body', text: gunzipSync(body, { finishFlush: constants.Z_SYNC_FLUSH }).toString('utf8') });
    } catch {
      // not gzip after all
    }
  }
  for (const { name, text } of [...out]) {
    const plain = unescaped(text);
    if (plain !== text) out.push({ name: `${name}, unescaped`, text: plain });
  }
  return out;
}

// ---- Findings ---------------------------------------------------------------------------------

/** One place an output was read: the texts of it (each with the name of its part), and the secrets
 * this output may hold by design, each in the parts whose name starts with `part` (a key in the
 * body of the answer that created it). */
export interface Output {
  source: string;
  parts: Array<{ name: string; text: string }>;
  allowed?: ReadonlyArray<{ value: string; part: string }>;
}

/** The values `output` may hold in `part`. */
export function allowedIn(output: Output, part: string): Set<string> {
  return new Set((output.allowed ?? []).filter((a) => part.startsWith(a.part)).map((a) => a.value));
}

interface Stored extends Output {
  seq: number;
  chars: number;
}

const findingList: string[] = [];
const reported = new Set<string>();
const stored: Stored[] = [];
let storedChars = 0;
/** Outputs are kept for a second look at the end (secrets registered after them) up to this many
 * characters; past it an output is scanned once, when it is made. */
const STORE_LIMIT = 64 * 1024 * 1024;

function report(output: Output, part: string, hit: Hit): void {
  const line = `${output.source}: ${hit.label} (${hit.kind}), ${hit.form}, in ${part} at ${hit.at}`;
  const once = `${output.source}\0${part}\0${hit.label}`;
  if (reported.has(once)) return;
  reported.add(once);
  findingList.push(line);
}

/** The longest hit of each secret over several readings of one text (as sent, unescaped,
 * gunzipped), with the name of the reading it was found in. */
export function longestHits(readings: Array<{ name: string; hits: Hit[] }>): Array<{ part: string; hit: Hit }> {
  const best = new Map<string, { part: string; hit: Hit }>();
  for (const { name, hits } of readings) {
    for (const hit of hits) {
      const known = best.get(hit.value);
      if (!known || hit.length > known.hit.length) best.set(hit.value, { part: name, hit });
    }
  }
  return [...best.values()];
}

function scanOutput(output: Output, after: number): void {
  // Readings of one text (`body`, `body, unescaped`, `gunzipped body` ...) are one place.
  const places = new Map<string, Array<{ name: string; hits: Hit[] }>>();
  for (const part of output.parts) {
    const place = part.name.includes('body') ? 'body' : part.name;
    const list = places.get(place) ?? [];
    list.push({ name: part.name, hits: scanText(part.text, after, allowedIn(output, part.name)) });
    places.set(place, list);
  }
  for (const readings of places.values()) for (const { part, hit } of longestHits(readings)) report(output, part, hit);
}

/** Scans an output now, and keeps it to scan again for secrets registered later. */
export function scanOutputNow(output: Output): void {
  scanOutput(output, 0);
  const chars = output.parts.reduce((n, p) => n + p.text.length, 0);
  if (storedChars + chars > STORE_LIMIT) {
    return;
  }
  storedChars += chars;
  stored.push({ ...output, seq, chars });
}

/** Scans the kept outputs again for secrets registered after each was made. */
export function rescanStored(): void {
  for (const output of stored) {
    if (output.seq === seq) continue;
    scanOutput(output, output.seq);
    output.seq = seq;
  }
}

/** Every finding so far, as `source: label (kind), form, in part at offset`. */
export function findings(): readonly string[] {
  return findingList;
}

/** Takes out the findings `wanted` picks and returns them: for the scan's own tests, whose
 * outputs hold a secret on purpose. */
export function takeFindings(wanted: (finding: string) => boolean): string[] {
  const taken = findingList.filter(wanted);
  for (const finding of taken) findingList.splice(findingList.indexOf(finding), 1);
  return taken;
}
