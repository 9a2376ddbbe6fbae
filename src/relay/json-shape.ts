// What a JSON request body may look like before the gateway parses it: one pass over its bytes,
// no recursion, before JSON.parse.
//
// - Nesting is bounded. JSON.parse itself copes with any depth, but what walks the parsed value
//   afterwards recurses (JSON.stringify of `tools` in the estimator): a 200,000-deep array
//   overflowed the stack and answered 500. Past MAX_JSON_DEPTH the body is refused with a 400.
// - No object may give the same key twice. JSON.parse keeps the last, other parsers the first
//   (RFC 8259 4 leaves it open; I-JSON, RFC 7493 2.3, forbids it): the model, token cap or
//   object id the gateway checks must be the one the upstream uses, so an ambiguous body is
//   refused rather than guessed at.
//
// The pass reads only what a valid body needs; a malformed one is left for JSON.parse to refuse.
import { GatewayError } from '../errors.js';

/**
 * How deep arrays and objects may nest. OpenAI bounds structured-output schemas at 10 levels of
 * nesting, some 35 levels of JSON inside a request; 64 leaves room, and it is the depth to which
 * the estimator and the object tracker read a body, so nothing in an accepted body goes unread.
 */
export const MAX_JSON_DEPTH = 64;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const SHOWN_KEY = 64;
const MANY_KEYS = 16;

/** The index of the quote that closes the string whose contents start at `from`, or -1. */
function closingQuote(bytes: Buffer, from: number): number {
  for (let at = from; ; ) {
    const q = bytes.indexOf(QUOTE, at);
    if (q === -1) return -1;
    let slashes = 0;
    for (let b = q - 1; b >= at && bytes[b] === BACKSLASH; b--) slashes++;
    if (slashes % 2 === 0) return q;
    at = q + 1;
  }
}

/** A key as JSON.parse would give it: `"mod\u0065l"` is `model`. */
function keyText(bytes: Buffer, open: number, close: number): string {
  // Most keys are short and ASCII: built here, they cost no call into the buffer's decoder.
  if (close - open <= 24) {
    let text = '';
    for (let b = open + 1; b < close; b++) {
      const c = bytes[b] as number;
      if (c >= 0x80 || c === BACKSLASH) {
        text = '';
        break;
      }
      text += String.fromCharCode(c);
    }
    if (text.length === close - open - 1) return text;
  }
  const raw = bytes.toString('utf8', open + 1, close);
  if (!raw.includes('\\')) return raw;
  try {
    return JSON.parse(`"${raw}"`) as string;
  } catch {
    return raw; // not valid JSON: JSON.parse refuses the body next
  }
}

const shown = (key: string) => (key.length > SHOWN_KEY ? `${key.slice(0, SHOWN_KEY)}…` : key);

function tooDeep(): GatewayError {
  return new GatewayError('invalid_request', {
    message: `The request body nests arrays and objects deeper than ${MAX_JSON_DEPTH} levels.`,
  });
}

function duplicate(key: string, topField: string | undefined): GatewayError {
  return new GatewayError('invalid_request', {
    message: `The request body gives the key ${JSON.stringify(shown(key))} twice in one object; JSON parsers disagree on which one counts.`,
    // The top-level field the duplicate is in (or is): where the client should look.
    param: shown(topField ?? key),
  });
}

/** Throws the 400 for a body nested too deep or with a key given twice in one object. */
export function checkJsonShape(bytes: Buffer): void {
  // Per open level: whether it is an object, and the keys it has given so far (a list: most
  // objects have a handful; a set once they have many).
  const isObject: boolean[] = [];
  const keys: Array<string[] | Set<string> | undefined> = [];
  let depth = 0;
  let expectKey = false;
  let topField: string | undefined;
  for (let i = 0; i < bytes.length; i++) {
    switch (bytes[i]) {
      case QUOTE: {
        const close = closingQuote(bytes, i + 1);
        if (close === -1) return;
        if (expectKey) {
          const key = keyText(bytes, i, close);
          const seen = keys[depth];
          if (seen === undefined) keys[depth] = [key];
          else if (Array.isArray(seen)) {
            if (seen.includes(key)) throw duplicate(key, depth === 1 ? undefined : topField);
            seen.push(key);
            if (seen.length === MANY_KEYS) keys[depth] = new Set(seen);
          } else {
            if (seen.has(key)) throw duplicate(key, depth === 1 ? undefined : topField);
            seen.add(key);
          }
          if (depth === 1) topField = key;
          expectKey = false;
        }
        i = close;
        break;
      }
      case 0x7b: // {
      case 0x5b: // [
        if (++depth > MAX_JSON_DEPTH) throw tooDeep();
        isObject[depth] = bytes[i] === 0x7b;
        keys[depth] = undefined;
        expectKey = isObject[depth] as boolean;
        break;
      case 0x7d: // }
      case 0x5d: // ]
        keys[depth] = undefined;
        if (--depth < 0) return;
        expectKey = false;
        break;
      case 0x2c: // ,
        expectKey = isObject[depth] === true;
        break;
    }
  }
}
