// Finds the pool's secrets in bytes an upstream sends, in the forms a serialiser may give them: as
// they are, and with any of their characters written as a JSON escape (`sk\u002dproj…`, `\/`), and
// in header values also percent-encoded (`sk%2Dproj…`). The search runs on a decoded view of the
// bytes that keeps a map back to the raw offsets, so a match is replaced in the raw bytes and every
// other byte passes as it came. A streamed body comes in chunks, and a key may be cut between two:
// `scan` also says from where the bytes may be the start of a secret the next chunk completes, for
// the caller to hold back (an SSE event ends in a newline, which no key holds: nothing is held).
//
// Forms no serialiser produces on its own (base64, a reversed key) are not looked for: an upstream
// that re-encodes the key on purpose defeats any byte filter (docs/key-pool.md).

export interface Found {
  /** Raw offsets of the match in the scanned bytes. */
  start: number;
  end: number;
  secret: string;
}

export interface ScanResult {
  found: Found[];
  /** Bytes from this raw offset on may begin a secret: hold them back until more come. */
  keep: number;
}

const BACKSLASH = 0x5c;
const PERCENT = 0x25;
const LETTER_U = 0x75;
// JSON's two-character escapes of characters that may stand for themselves in a key.
const SHORT_ESCAPES = new Set([0x2f, 0x22, BACKSLASH]);
const ESCAPED_ASCII = Buffer.from('\\u00');

function hexDigit(b: number | undefined): number {
  if (b === undefined) return -1;
  if (b >= 0x30 && b <= 0x39) return b - 0x30;
  const lower = b | 0x20;
  return lower >= 0x61 && lower <= 0x66 ? lower - 0x61 + 10 : -1;
}

/** Whether every byte from `from` to the end is a hex digit (an escape the next chunk may finish). */
function hexToEnd(data: Buffer, from: number): boolean {
  for (let i = from; i < data.length; i++) if (hexDigit(data[i]) < 0) return false;
  return true;
}

interface View {
  text: Buffer;
  /** map[i]: the raw offset of view byte i; map[text.length]: where the complete text ends. */
  map: Int32Array;
}

/**
 * The bytes with the escapes of ASCII characters decoded. Other escapes stay as their two raw
 * bytes, so that `\\u0041` stays the text `\u0041`. An escape cut off at the end is left out of
 * the view: the next chunk may complete it.
 */
function decode(data: Buffer, percent: boolean): View {
  const text = Buffer.allocUnsafe(data.length);
  const map = new Int32Array(data.length + 1);
  let n = 0;
  let i = 0;
  let end = data.length;
  const put = (byte: number, at: number) => {
    map[n] = at;
    text[n++] = byte;
  };
  while (i < data.length) {
    const b = data[i] as number;
    if (b === BACKSLASH) {
      const next = data[i + 1];
      if (next === undefined) {
        end = i;
        break;
      }
      if (next === LETTER_U) {
        if (i + 6 > data.length && hexToEnd(data, i + 2)) {
          end = i;
          break;
        }
        // Only \u0000 to \u007f: a key is ASCII.
        const high = hexDigit(data[i + 4]);
        const low = hexDigit(data[i + 5]);
        if (data[i + 2] === 0x30 && data[i + 3] === 0x30 && high >= 0 && high < 8 && low >= 0) {
          put((high << 4) | low, i);
          i += 6;
          continue;
        }
      } else if (SHORT_ESCAPES.has(next)) {
        put(next, i);
        i += 2;
        continue;
      }
      put(b, i);
      put(next, i + 1);
      i += 2;
      continue;
    }
    if (percent && b === PERCENT) {
      if (i + 3 > data.length && hexToEnd(data, i + 1)) {
        end = i;
        break;
      }
      const high = hexDigit(data[i + 1]);
      const low = hexDigit(data[i + 2]);
      if (high >= 0 && high < 8 && low >= 0) {
        put((high << 4) | low, i);
        i += 3;
        continue;
      }
    }
    put(b, i);
    i++;
  }
  map[n] = end;
  return { text: text.subarray(0, n), map };
}

interface Secret {
  secret: string;
  bytes: Buffer;
}

/** Secrets that begin alike (`sk-proj-`): one native search for what they share finds them all. */
interface Group {
  anchor: Buffer;
  members: Secret[];
}

// Secrets are grouped on their first bytes; a group's anchor is all they have in common.
const GROUP_ON = 3;

function commonPrefix(members: Secret[]): number {
  const first = (members[0] as Secret).bytes;
  let n = first.length;
  for (const { bytes } of members) {
    let i = 0;
    while (i < n && bytes[i] === first[i]) i++;
    n = i;
  }
  return n;
}

export class SecretScan {
  private readonly groups: Group[];
  private readonly anchors: string[];
  private readonly longest: number;
  /** Bytes that occur in some secret, and bytes that begin one. */
  private readonly inSecret = new Uint8Array(256);
  private readonly startsSecret = new Uint8Array(256);
  private readonly shortEscapes: boolean;

  /** `percent`: also decode `%XX` (header values, URLs). */
  constructor(
    secrets: readonly string[],
    private readonly percent = false,
  ) {
    const all = [...new Set(secrets)].filter((s) => s.length > 0).sort((a, b) => b.length - a.length);
    const byStart = new Map<string, Secret[]>();
    for (const secret of all) {
      const bytes = Buffer.from(secret, 'utf8');
      const start = bytes.subarray(0, GROUP_ON).toString('latin1');
      byStart.set(start, [...(byStart.get(start) ?? []), { secret, bytes }]);
      for (const b of bytes) this.inSecret[b] = 1;
      this.startsSecret[bytes[0] as number] = 1;
    }
    this.groups = [...byStart.values()].map((members) => ({ members, anchor: (members[0] as Secret).bytes.subarray(0, commonPrefix(members)) }));
    this.anchors = this.groups.map((g) => g.anchor.toString('latin1'));
    this.longest = all.reduce((n, s) => Math.max(n, Buffer.byteLength(s)), 0);
    this.shortEscapes = all.some((s) => [...Buffer.from(s)].some((b) => SHORT_ESCAPES.has(b)));
  }

  /** Whether a string holds the beginning all secrets of some group share (a cheap first look). */
  mayHold(value: string): boolean {
    return this.anchors.some((anchor) => value.includes(anchor));
  }

  get empty(): boolean {
    return this.groups.length === 0;
  }

  /** `final`: no more bytes follow, so nothing is held back. */
  scan(data: Buffer, final: boolean): ScanResult {
    if (this.groups.length === 0) return { found: [], keep: data.length };
    if (!this.escaped(data)) {
      const found = this.matches(data);
      return { found, keep: final ? data.length : this.partialFrom(data, found) };
    }
    const { text, map } = decode(data, this.percent);
    const inView = this.matches(text);
    return {
      found: inView.map((f) => ({ start: map[f.start] as number, end: map[f.end] as number, secret: f.secret })),
      keep: final ? data.length : (map[this.partialFrom(text, inView)] as number),
    };
  }

  /** Whether the bytes may hold an escape that matters (the common case, none, stays on native searches). */
  private escaped(data: Buffer): boolean {
    if (data.includes(ESCAPED_ASCII)) return true;
    if (this.percent && data.includes(PERCENT)) return true;
    if (this.shortEscapes && data.includes(BACKSLASH)) return true;
    // An escape cut off by the end of a chunk: `\`, `\u`, `\u0`.
    const n = data.length;
    return data[n - 1] === BACKSLASH || data[n - 2] === BACKSLASH || data[n - 3] === BACKSLASH;
  }

  /** Every secret in `text`, in order, overlaps dropped (the longer secret wins). */
  private matches(text: Buffer): Found[] {
    const found: Found[] = [];
    for (const { anchor, members } of this.groups) {
      for (let at = text.indexOf(anchor); at !== -1; at = text.indexOf(anchor, at + 1)) {
        for (const { bytes, secret } of members) {
          const end = at + bytes.length;
          if (end <= text.length && text.compare(bytes, 0, bytes.length, at, end) === 0) {
            found.push({ start: at, end, secret });
            break;
          }
        }
      }
    }
    if (found.length < 2) return found;
    found.sort((a, b) => a.start - b.start || b.end - a.end);
    const kept: Found[] = [];
    let end = 0;
    for (const f of found) {
      if (f.start < end) continue;
      kept.push(f);
      end = f.end;
    }
    return kept;
  }

  /** Where the longest tail of `text` that begins some secret starts (text.length when none). */
  private partialFrom(text: Buffer, found: Found[]): number {
    const n = text.length;
    if (n === 0 || this.inSecret[text[n - 1] as number] === 0) return n;
    const floor = Math.max(found.length === 0 ? 0 : (found[found.length - 1] as Found).end, n - this.longest + 1);
    for (let p = floor; p < n; p++) {
      if (this.startsSecret[text[p] as number] === 0) continue;
      if (this.begins(text, p)) return p;
    }
    return n;
  }

  /** Whether text[p..] is the beginning (not the whole) of some secret. */
  private begins(text: Buffer, p: number): boolean {
    const tail = text.length - p;
    for (const { anchor, members } of this.groups) {
      const shared = Math.min(anchor.length, tail);
      if (text.compare(anchor, 0, shared, p, p + shared) !== 0) continue;
      if (tail <= anchor.length) return true;
      for (const { bytes } of members) {
        if (bytes.length > tail && text.compare(bytes, anchor.length, tail, p + anchor.length, text.length) === 0) return true;
      }
    }
    return false;
  }
}

/** The bytes up to `keep`, each match replaced by what `replace` gives for its secret. */
export function rewrite(data: Buffer, found: readonly Found[], keep: number, replace: (secret: string, length: number) => string): Buffer {
  if (found.length === 0) return keep === data.length ? data : data.subarray(0, keep);
  const parts: Buffer[] = [];
  let at = 0;
  for (const f of found) {
    parts.push(data.subarray(at, f.start), Buffer.from(replace(f.secret, f.end - f.start), 'utf8'));
    at = f.end;
  }
  parts.push(data.subarray(at, keep));
  return Buffer.concat(parts);
}

export interface StreamMask {
  /** The bytes to send for this chunk: masked, less a tail that may begin a secret. */
  chunk(bytes: Buffer): Buffer;
  /** What was held back, at the end of a stream that ended cleanly. */
  end(): Buffer;
}

const EMPTY = Buffer.alloc(0);

export function streamMask(scan: SecretScan, replace: (secret: string, length: number) => string): StreamMask {
  let held: Buffer | undefined;
  return {
    chunk(bytes) {
      const data = held === undefined ? bytes : Buffer.concat([held, bytes]);
      const { found, keep } = scan.scan(data, false);
      // A copy: the chunk's memory is not this module's to keep.
      held = keep < data.length ? Buffer.from(data.subarray(keep)) : undefined;
      return rewrite(data, found, keep, replace);
    },
    end() {
      const rest = held ?? EMPTY;
      held = undefined;
      return rest;
    },
  };
}
