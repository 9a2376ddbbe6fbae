// Masks key material in text the gateway passes on or logs: upstream error bodies such as
// "Incorrect API key provided: sk-proj-****…abcd" (docs/reliability.md, case 12). Any OpenAI-style token
// (`sk-…`, `sk-proj-…`, `sk-svcacct-…`, `sess-…`, and OpenAI's own partly starred form) becomes its
// prefix, `***` and at most its last 4 characters, as OpenAI itself shows a key; a configured pool
// secret of any other shape is replaced wherever it appears verbatim. `text` is for log lines.
// What reaches a client goes through the byte forms, which also find a configured secret written
// with JSON escapes (key-scan.ts): `bytes` for an error body held whole, `secrets` for a success
// body held whole, `stream` for one that streams, `header` for each answer header.
import { SecretScan, type StreamMask, rewrite, streamMask } from './key-scan.js';

// Not preceded by a letter or digit, so `task-force` is prose while `key=sk-…` and `"sk-…` are keys.
// Six characters or more after the dash, as the log scan of the tests counts them.
const TOKEN = /(?<![A-Za-z0-9])(sk|sess)-[A-Za-z0-9_*-]{6,}/g;
const LAST4 = /^[A-Za-z0-9]{4}$/;
// What this module writes: left as it is, so masking twice changes nothing.
const MASKED = /^(sk|sess)-\*\*\*([A-Za-z0-9]{4})?$/;
// Shorter tokens keep no tail: four characters of a short token are too much of it.
const MIN_LENGTH_FOR_TAIL = 20;
// A configured value shorter than this is no key, and masking it would garble ordinary words.
const MIN_SECRET_LENGTH = 8;

function tail(token: string): string {
  const last4 = token.slice(-4);
  return token.length >= MIN_LENGTH_FOR_TAIL && LAST4.test(last4) ? last4 : '';
}

function maskToken(token: string, prefix: string): string {
  return `${prefix}-***${tail(token)}`;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

export interface Masker {
  text(value: string): string;
  /** An error body: configured secrets in any form, and OpenAI-shaped tokens. The same bytes when
   * nothing is to be masked; a UTF-8 body otherwise. */
  bytes(value: Buffer): Buffer;
  /** A success body held whole: configured secrets only (a completion may talk about `sk-` tokens). */
  secrets(value: Buffer): Buffer;
  /** For a success body that streams; undefined when there is no secret to look for. With
   * `keepLength` (the answer's Content-Length is passed on), each mask is as long as what it hides. */
  stream(keepLength?: boolean): StreamMask | undefined;
  /** A header value with configured secrets masked (also percent-encoded); undefined when it holds none. */
  header(value: string): string | undefined;
  /** Whether a header name (lower case, as Node gives it) holds a configured secret. */
  inName(name: string): boolean;
}

export function createMasker(secrets: Iterable<string> = []): Masker {
  const verbatim = [...new Set(secrets)].filter((s) => s.length >= MIN_SECRET_LENGTH).sort((a, b) => b.length - a.length);
  const verbatimRe = verbatim.length === 0 ? undefined : new RegExp(verbatim.map(escapeRegExp).join('|'), 'g');
  // Secrets a fast look for `sk-`/`sess-` would not find.
  const otherShapes = verbatim.filter((s) => !s.includes('sk-') && !s.includes('sess-'));

  const masked = (secret: string): string => {
    const prefix = /^(sk|sess)-/.exec(secret)?.[1];
    return prefix ? maskToken(secret, prefix) : `***${tail(secret)}`;
  };

  const text = (value: string): string => {
    const marked = value.includes('sk-') || value.includes('sess-');
    if (!marked && !otherShapes.some((s) => value.includes(s))) return value;
    let out = value;
    if (verbatimRe) out = out.replace(verbatimRe, masked);
    return out.replace(TOKEN, (token, prefix: string) => (MASKED.test(token) ? token : maskToken(token, prefix)));
  };

  const inBodies = new SecretScan(verbatim);
  const inHeaders = new SecretScan(verbatim, true);

  // A streamed body whose Content-Length is already on its way to the client keeps its length:
  // the masked form is padded with stars to the bytes it replaces.
  const sameLength = (secret: string, length: number): string => {
    const short = masked(secret);
    return short.length >= length ? short : short.replace('***', '*'.repeat(3 + length - short.length));
  };

  const maskSecrets = (value: Buffer): Buffer => {
    const { found } = inBodies.scan(value, true);
    return rewrite(value, found, value.length, masked);
  };

  const bytes = (value: Buffer): Buffer => {
    const plain = maskSecrets(value);
    if (!plain.includes('sk-') && !plain.includes('sess-')) return plain;
    const before = plain.toString('utf8');
    const after = text(before);
    return after === before ? plain : Buffer.from(after, 'utf8');
  };

  const header = (value: string): string | undefined => {
    // Most values hold neither a secret nor anything escaped: decided without leaving strings.
    if (!value.includes('%') && !value.includes('\\') && !inHeaders.mayHold(value)) return undefined;
    const raw = Buffer.from(value, 'latin1');
    const { found } = inHeaders.scan(raw, true);
    return found.length === 0 ? undefined : rewrite(raw, found, raw.length, masked).toString('latin1');
  };

  // Node gives header names in lower case; a key there is no less a key.
  const lowerCase = new SecretScan(verbatim.map((s) => s.toLowerCase()));
  const inName = (name: string): boolean => lowerCase.mayHold(name) && lowerCase.scan(Buffer.from(name, 'latin1'), true).found.length > 0;

  return { text, bytes, secrets: maskSecrets, inName, stream: (keepLength = false) => (inBodies.empty ? undefined : streamMask(inBodies, keepLength ? sameLength : masked)),
    header,
  };
}

/** Masks tokens of the OpenAI shapes only (no configured secrets). */
export const maskKeyMaterial = createMasker().text;

/**
 * A masker whose secrets can grow while the gateway runs: pool keys added at run time. A secret
 * once learnt is never forgotten here, so a key removed or rotated is still masked in the answers
 * of requests that were running on it. Each call reads the masker of the moment.
 */
export function createGrowingMasker(secrets: Iterable<string> = []): Masker & { learn(secrets: Iterable<string>): void } {
  const known = new Set(secrets);
  let current = createMasker(known);
  return {
    learn(more) {
      const before = known.size;
      for (const secret of more) known.add(secret);
      if (known.size !== before) current = createMasker(known);
    },
    text: (value) => current.text(value),
    bytes: (value) => current.bytes(value),
    secrets: (value) => current.secrets(value),
    stream: (keepLength) => current.stream(keepLength),
    header: (value) => current.header(value),
    inName: (name) => current.inName(name),
  };
}
