// What a JSON request body may look like: one pass over its bytes, no recursion, no tree.
//
// - Nesting is bounded. JSON.parse itself copes with any depth, but what walks the parsed value
//   afterwards recurses (JSON.stringify of `tools` in the estimator): a 200,000-deep array
//   overflowed the stack and answered 500. Past MAX_JSON_DEPTH the body is refused with a 400.
// - The number of values is bounded. A 42 MB array of 14 million `{}` took JSON.parse about 1 GB
//   of heap and 13 s, during which no other request was answered. Past MAX_JSON_VALUES the body is
//   refused with a 413 before anything is built from it.
// - No object may give the same key twice. JSON.parse keeps the last, other parsers the first
//   (RFC 8259 4 leaves it open; I-JSON, RFC 7493 2.3, forbids it): the model, token cap or
//   object id the gateway checks must be the one the upstream uses, so an ambiguous body is
//   refused rather than guessed at.
//
// Two ways to run it (src/relay/body.ts chooses by size):
// - `checkJsonShape`, before JSON.parse of a small body: a malformed body is left for JSON.parse
//   to refuse, with its own message.
// - `scanJson`, for a body the gateway never parses whole: the pass is the parser. It refuses what
//   breaks the grammar (strings' contents aside: no escape or control character changes where a
//   string ends, so the upstream, not the gateway, refuses those), refuses the prototype keys
//   secure-json-parse refuses on small bodies, hands each key and value to a reader
//   (src/relay/json-digest.ts), and lets other requests run every SLICE_BYTES.
import { setImmediate as nextTurn } from 'node:timers/promises';
import { GatewayError } from '../errors.js';

/**
 * How deep arrays and objects may nest. OpenAI bounds structured-output schemas at 10 levels of
 * nesting, some 35 levels of JSON inside a request; 64 leaves room, and it is the depth to which
 * the estimator and the object tracker read a body, so nothing in an accepted body goes unread.
 */
export const MAX_JSON_DEPTH = 64;
/**
 * How many values (objects, arrays, strings, numbers, literals) one body may hold. The largest real
 * requests hold far fewer: an embeddings request at OpenAI's own bounds (2,048 inputs, 300,000
 * tokens in all, as token arrays) is about 300,000 numbers; a long conversation with its tools a
 * few tens of thousands.
 */
export const MAX_JSON_VALUES = 1_000_000;
/** How many bytes, or values, `scanJson` reads before it lets the event loop run other work. */
export const SLICE_BYTES = 1024 * 1024;
const SLICE_VALUES = 64 * 1024;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const SHOWN_KEY = 64;
const MANY_KEYS = 16;

/** What a scalar value is, for a reader. `exponent`: a number written with `e` (1e20). */
export type ScalarKind = 'string' | 'number' | 'exponent' | 'literal';

/** Sees a body's keys and values in document order. `depth` is the container's (1 for the root's
 * members, 0 for a root that is a scalar); positions are byte offsets, ends exclusive. */
export interface JsonReader {
  open(depth: number, object: boolean, at: number): void;
  close(depth: number, end: number): void;
  key(depth: number, key: string): void;
  scalar(depth: number, kind: ScalarKind, start: number, end: number): void;
}

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

/** A string as JSON.parse would give it, from its quotes at `open` and `close`: `"mod\u0065l"` is `model`. */
export function stringAt(bytes: Buffer, open: number, close: number): string {
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
    return raw; // not valid JSON: refused by JSON.parse, or by the upstream
  }
}

const shown = (key: string) => (key.length > SHOWN_KEY ? `${key.slice(0, SHOWN_KEY)}…` : key);

function tooDeep(topField: string | undefined): GatewayError {
  return new GatewayError('invalid_request', {
    message: `The request body nests arrays and objects deeper than ${MAX_JSON_DEPTH} levels.`,
    // The top-level field the nesting is in, as for a duplicate key (none when the root itself nests).
    ...(topField === undefined ? {} : { param: shown(topField) }),
  });
}

function tooMany(): GatewayError {
  return new GatewayError('request_too_large', {
    message: `The request body holds more than ${MAX_JSON_VALUES.toLocaleString('en-US')} JSON values (objects, arrays, strings, numbers).`,
  });
}

function duplicate(key: string, topField: string | undefined): GatewayError {
  return new GatewayError('invalid_request', {
    message: `The request body gives the key ${JSON.stringify(shown(key))} twice in one object; JSON parsers disagree on which one counts.`,
    // The top-level field the duplicate is in (or is): where the client should look.
    param: shown(topField ?? key),
  });
}

function notJson(reason: string): GatewayError {
  return new GatewayError('invalid_json', { message: `The request body is not valid JSON: ${reason}` });
}

// The words of secure-json-parse, which refuses the same keys in bodies that are parsed.
const FORBIDDEN = 'Object contains forbidden prototype property';

// What the next byte that is not white space may be.
const VALUE = 0; // a value (the root, after `:`, after `,` in an array)
const VALUE_OR_END = 1; // after `[`
const KEY_OR_END = 2; // after `{`
const KEY = 3; // after `,` in an object
const COLON = 4; // after a key
const NEXT = 5; // after a value: `,` or the container's end
const DONE = 6; // after the root value: nothing

const LITERALS: ReadonlyMap<number, Buffer> = new Map([
  [0x74, Buffer.from('true')],
  [0x66, Buffer.from('false')],
  [0x6e, Buffer.from('null')],
]);

const isDigit = (c: number | undefined) => c !== undefined && c >= 0x30 && c <= 0x39;

/** The end of the number that starts at `at` (exclusive) and whether it has an exponent; -1 when malformed. */
function numberEnd(bytes: Buffer, at: number): { end: number; exponent: boolean } {
  let i = at;
  if (bytes[i] === 0x2d) i++; // -
  if (bytes[i] === 0x30) i++;
  else if (isDigit(bytes[i])) while (isDigit(bytes[i])) i++;
  else return { end: -1, exponent: false };
  if (bytes[i] === 0x2e) {
    i++;
    if (!isDigit(bytes[i])) return { end: -1, exponent: false };
    while (isDigit(bytes[i])) i++;
  }
  if (bytes[i] !== 0x65 && bytes[i] !== 0x45) return { end: i, exponent: false };
  i++;
  if (bytes[i] === 0x2b || bytes[i] === 0x2d) i++;
  if (!isDigit(bytes[i])) return { end: -1, exponent: false };
  while (isDigit(bytes[i])) i++;
  return { end: i, exponent: true };
}

/**
 * The pass. Yields every SLICE_BYTES or SLICE_VALUES read (never when `slices` is false). Returns
 * -1 for well-formed JSON, else the offset where it stops being JSON (the length when it ends
 * early); throws the GatewayError of what it refuses. With a reader, the prototype keys are
 * refused too: no tree will be built for secure-json-parse to look at.
 */
function* pass(bytes: Buffer, reader: JsonReader | undefined, slices: boolean): Generator<void, number> {
  // Per open level: whether it is an object, and the keys it has given so far (a list: most
  // objects have a handful; a set once they have many).
  const isObject: boolean[] = [];
  const keys: Array<string[] | Set<string> | undefined> = [];
  const lastKey: Array<string | undefined> = [];
  let depth = 0;
  let state = VALUE;
  let values = 0;
  let topField: string | undefined;
  let pause = slices ? SLICE_BYTES : Number.POSITIVE_INFINITY;
  let pauseValues = slices ? SLICE_VALUES : Number.POSITIVE_INFINITY;
  const length = bytes.length;
  for (let i = 0; i < length; i++) {
    if (i >= pause || values >= pauseValues) {
      yield;
      pause = i + SLICE_BYTES;
      pauseValues = values + SLICE_VALUES;
    }
    const c = bytes[i] as number;
    if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) continue;
    switch (state) {
      case VALUE:
      case VALUE_OR_END: {
        if (c === 0x5d && state === VALUE_OR_END) break; // `]` of an empty array: closed below
        if (++values > MAX_JSON_VALUES) throw tooMany();
        if (c === QUOTE) {
          const close = closingQuote(bytes, i + 1);
          if (close === -1) return length;
          reader?.scalar(depth, 'string', i, close + 1);
          i = close;
        } else if (c === 0x7b || c === 0x5b) {
          if (++depth > MAX_JSON_DEPTH) throw tooDeep(topField);
          isObject[depth] = c === 0x7b;
          keys[depth] = undefined;
          lastKey[depth] = undefined;
          reader?.open(depth, c === 0x7b, i);
          state = c === 0x7b ? KEY_OR_END : VALUE_OR_END;
          continue;
        } else if (c === 0x2d || isDigit(c)) {
          const number = numberEnd(bytes, i);
          if (number.end === -1) return i;
          reader?.scalar(depth, number.exponent ? 'exponent' : 'number', i, number.end);
          i = number.end - 1;
        } else {
          const literal = LITERALS.get(c);
          if (literal && i + literal.length > length) return length;
          if (!literal || bytes.compare(literal, 0, literal.length, i, i + literal.length) !== 0) return i;
          reader?.scalar(depth, 'literal', i, i + literal.length);
          i += literal.length - 1;
        }
        state = depth === 0 ? DONE : NEXT;
        continue;
      }
      case KEY_OR_END:
      case KEY: {
        if (c === 0x7d && state === KEY_OR_END) break; // `}` of an empty object: closed below
        if (c !== QUOTE) return i;
        const close = closingQuote(bytes, i + 1);
        if (close === -1) return length;
        const key = stringAt(bytes, i, close);
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
        if (reader) {
          // secure-json-parse: `__proto__` anywhere, `prototype` inside a `constructor` object.
          if (key === '__proto__' || (key === 'prototype' && depth > 1 && isObject[depth - 1] && lastKey[depth - 1] === 'constructor')) {
            throw notJson(FORBIDDEN);
          }
          reader.key(depth, key);
        }
        lastKey[depth] = key;
        i = close;
        state = COLON;
        continue;
      }
      case COLON:
        if (c !== 0x3a) return i;
        state = VALUE;
        continue;
      case NEXT:
        if (c === 0x2c) {
          state = isObject[depth] ? KEY : VALUE;
          continue;
        }
        if (c !== (isObject[depth] ? 0x7d : 0x5d)) return i;
        break;
      default:
        return i; // DONE: anything after the root value
    }
    // `}` or `]` that ends the open container.
    if (c !== (isObject[depth] ? 0x7d : 0x5d)) return i;
    reader?.close(depth, i + 1);
    keys[depth] = undefined;
    depth--;
    state = depth === 0 ? DONE : NEXT;
  }
  return state === DONE ? -1 : length;
}

/** Throws the 400 (or 413) for a body nested too deep, holding too many values, or with a key given
 * twice in one object; anything else malformed is left for JSON.parse to refuse. */
export function checkJsonShape(bytes: Buffer): void {
  pass(bytes, undefined, false).next();
}

/** Reads a body that will not be parsed whole: throws what `checkJsonShape` throws, and the 400 of
 * a body that is not JSON; hands every key and value to `reader` on the way. */
export async function scanJson(bytes: Buffer, reader: JsonReader): Promise<void> {
  const run = pass(bytes, reader, true);
  for (let step = run.next(); ; step = run.next()) {
    if (step.done) {
      if (step.value === bytes.length) throw notJson(bytes.length === 0 ? 'it is empty.' : 'it ends early.');
      if (step.value !== -1) throw notJson(`unexpected ${JSON.stringify(String.fromCharCode(bytes[step.value] as number))} at byte ${step.value}.`);
      return;
    }
    await nextTurn();
  }
}

/** Where the value of the root object's member `key` lies in a body `checkJsonShape` accepted:
 * [start, end), quotes included for a string; undefined when the root is no object or lacks it. */
export function memberSpan(bytes: Buffer, key: string): readonly [number, number] | undefined {
  let member: string | undefined;
  let start = 0;
  let span: readonly [number, number] | undefined;
  const reader: JsonReader = {
    open(depth, _object, at) {
      if (depth === 2 && member === key) start = at;
    },
    close(depth, end) {
      if (depth === 2 && member === key) span = [start, end];
    },
    key(depth, name) {
      if (depth === 1) member = name;
    },
    scalar(depth, _kind, from, end) {
      if (depth === 1 && member === key) span = [from, end];
    },
  };
  pass(bytes, reader, false).next();
  return span;
}
