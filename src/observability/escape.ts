// Values a client chose (model, the body's `user`, User-Agent, the path) reach log lines, the kept
// request log and terminals. JSON already escapes C0 controls, but not C1 controls (U+009B is a
// one-byte CSI to many terminals), U+2028/U+2029 (line breaks to JavaScript and to some log
// shippers) nor the bidirectional overrides that reorder what a reader sees (CVE-2021-42574).
// All of those become visible `\xNN` / `\uNNNN` text, and every value is cut to a bound, in one
// pass that never looks further into a 100 KB string than the bound (docs/reliability.md, case 36).

/** C0, DEL, C1, the Arabic letter mark, LRM/RLM, line and paragraph separators, bidi embeddings,
 * overrides and isolates, and the BOM. */
function isUnsafe(c: number): boolean {
  return (
    c < 0x20 ||
    (c >= 0x7f && c <= 0x9f) ||
    c === 0x061c ||
    c === 0x200e ||
    c === 0x200f ||
    (c >= 0x2028 && c <= 0x202e) ||
    (c >= 0x2066 && c <= 0x2069) ||
    c === 0xfeff
  );
}

const isHigh = (c: number): boolean => c >= 0xd800 && c <= 0xdbff;
const isLow = (c: number): boolean => c >= 0xdc00 && c <= 0xdfff;

function escapeCode(code: number): string {
  return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
}

// Any character outside printable ASCII sends a value to the careful path below.
const NOT_PRINTABLE_ASCII = /[^\x20-\x7e]/;

/** Nothing to escape: no character is unsafe or a surrogate (a pair is kept, a lone one is not).
 * Most values are printable ASCII, which one regular expression settles; they are then kept as
 * they are rather than copied a character at a time. */
function isPlain(value: string): boolean {
  if (!NOT_PRINTABLE_ASCII.test(value)) return true;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (isUnsafe(c) || isHigh(c) || isLow(c)) return false;
  }
  return true;
}

/** Field bounds, in characters of the escaped text. */
export const LIMITS = {
  model: 200,
  endUser: 200,
  userAgent: 300,
  route: 512,
  id: 128,
  message: 500,
} as const;

/**
 * The value with unsafe characters escaped, cut to at most `max` characters of escaped text plus a
 * marker that says how long the original was. A surrogate pair is never split.
 */
export function escapeText(value: string, max: number): string {
  if (value.length <= max && isPlain(value)) return value;
  let out = '';
  let i = 0;
  while (i < value.length) {
    const code = value.charCodeAt(i);
    let piece: string;
    let width = 1;
    if (isHigh(code) && i + 1 < value.length && isLow(value.charCodeAt(i + 1))) {
      piece = value.slice(i, i + 2);
      width = 2;
    } else if (isUnsafe(code) || isHigh(code) || isLow(code)) {
      // A lone surrogate is no character: a terminal shows U+FFFD and hides what was sent.
      piece = escapeCode(code);
    } else {
      piece = value[i] as string;
    }
    if (out.length + piece.length > max) break;
    out += piece;
    i += width;
  }
  return i < value.length ? `${out}…[${value.length} chars]` : out;
}

/** `escapeText` for values that may be absent or not strings (a JSON body's `user` can be anything). */
export function cleanText(value: unknown, max: number): string | undefined {
  return typeof value === 'string' ? escapeText(value, max) : undefined;
}
