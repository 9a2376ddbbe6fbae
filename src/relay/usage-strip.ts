// Takes the usage the gateway asked for on the client's behalf back out of a chat or completions
// stream: the usage chunk (its data line and the blank line ending its event) and the
// `,"usage":null` that OpenAI then adds to every other chunk. On the hot path of every such stream,
// so it never splits the stream into lines nor parses JSON, but for the usage chunk itself: it
// scans the bytes for the few places to cut (native indexOf) and copies the slices between them.
//
// Whatever the chunking, the client gets the same bytes: an open line is held back whole (until it
// ends) only when a choice finished in the last 8 KB before it, as the last one does right before
// the usage chunk; otherwise only the last few bytes of a chunk that may begin a `,"usage":null`
// still to be taken out. Whether a choice finished is looked up only then, so a stream whose
// chunks end with their events (what upstreams write) costs one search per event, for its
// `"usage"`. A usage chunk whose line was partly sent already (no choice had finished) cannot be
// unsent: it stays, and its usage is still read.

const LF = 0x0a;
const CR = 0x0d;
const COMMA = 0x2c;
const QUOTE = 0x22;
const COLON = 0x3a;
const OPEN = 0x7b;
const CLOSE = 0x7d;
const EMPTY = Buffer.alloc(0);
const USAGE_KEY = Buffer.from('"usage"');
// What is searched for: needles that begin with a byte rare in a chunk, which Buffer#indexOf finds
// with memchr, several times faster than ones that begin with a quote (a fifth of a chunk's bytes).
const USAGE_NEEDLE = Buffer.from('usage"');
const NULL_USAGE = Buffer.from(',"usage":null');
// A choice finished: its finish_reason is a string (null until then). Compact JSON, as OpenAI
// writes it, and as `,"usage":null` is looked for: one search per chunk, that rarely finds.
const FINISHED = Buffer.from('finish_reason":"');
/** How far back a finished choice is looked for (and memory held for it, per stream). The usage
 * chunk comes right after the last choice's finish_reason. */
const RECENT_BYTES = 8 * 1024;
/** From the `"usage"` of a `,"usage":null` to the byte after it. */
const AFTER_NULL = USAGE_KEY.length + ':null'.length;

function skipSpace(buf: Buffer, i: number, end: number): number {
  while (i < end && (buf[i] === 0x20 || buf[i] === 0x09)) i++;
  return i;
}

/** Whether buf[at, at + 5) is `:null` (byte by byte: cheaper than a native call for five bytes). */
function isNullValue(buf: Buffer, at: number): boolean {
  return buf[at] === COLON && buf[at + 1] === 0x6e && buf[at + 2] === 0x75 && buf[at + 3] === 0x6c && buf[at + 4] === 0x6c;
}

/** The length of the longest end of buf[from, to) that could be the start of `,"usage":null`. */
function heldSuffix(buf: Buffer, from: number, to: number): number {
  // Most chunks end in none of its bytes: one look at the last byte settles them.
  if (NULL_USAGE.indexOf(buf[to - 1] as number) === -1) return 0;
  for (let k = Math.min(to - from, NULL_USAGE.length); k > 0; k--) {
    let i = 0;
    while (i < k && buf[to - k + i] === NULL_USAGE[i]) i++;
    if (i === k) return k;
  }
  return 0;
}

/** Where the next `"usage"` at or after `from` begins, or -1. Not searched where none fits before
 * `end`: after the cut at the end of an event, `}` and its line end are all that is left. */
function nextKey(buf: Buffer, from: number, end: number): number {
  for (let at = from + 1; at + USAGE_NEEDLE.length < end; at++) {
    at = buf.indexOf(USAGE_NEEDLE, at);
    if (at === -1) return -1;
    if (buf[at - 1] === QUOTE) return at - 1;
  }
  return -1;
}

/** Copies buf[start, end) into out at `at`: a loop for the few bytes after a cut, where making the
 * view that Buffer#copy makes costs more than the copy. */
function copyInto(out: Buffer, at: number, buf: Buffer, start: number, end: number): number {
  if (end - start > 32) return buf.copy(out, at, start, end);
  for (let i = start; i < end; i++) out[at++] = buf[i] as number;
  return end - start;
}

/** The first line end at or after `from` (LF, or a CR, which may begin a CRLF), or -1. */
function lineEnd(buf: Buffer, from: number): number {
  const lf = buf.indexOf(LF, from);
  // CR is rare (OpenAI sends LF): looked for only before the first LF.
  const cr = buf.subarray(from, lf === -1 ? buf.length : lf).indexOf(CR);
  return cr === -1 ? lf : from + cr;
}

/** Where the line holding `at` begins: after the last line end before it, else 0. */
function lineStart(buf: Buffer, at: number): number {
  return Math.max(buf.lastIndexOf(LF, at), buf.lastIndexOf(CR, at)) + 1;
}

export class UsageStrip {
  /** Bytes not sent yet: the open line whole (`waitForLineEnd`), or the few that may begin a cut. */
  private held: Buffer[] = [];
  private heldBytes = 0;
  private waitForLineEnd = false;
  /** The next byte begins a line of which nothing has been sent. */
  private fresh = true;
  /** The last byte was a CR: an LF first in the next chunk completes it. */
  private afterCr = false;
  /** That CR ended bytes taken out: its LF goes too. */
  private dropLf = false;
  /** The usage chunk's line was taken out at the very end of the last chunk: a blank line next goes too. */
  private dropBlank = false;
  /** A choice has finished: the usage chunk may come next, so lines are held until whole. */
  private finished = false;
  /** What was sent of the open line, as it came: read whole if the line turns out to carry usage. */
  private sentOfLine: Buffer[] = [];
  private sentBytes = 0;
  private sentLost = false;
  /** The last bytes sent of the open line, while no choice has finished: a `"finish_reason"` may be cut in two. */
  private readonly carry = Buffer.alloc(FINISHED.length - 1);
  private carryLength = 0;
  /** The last bytes not yet looked at for a finished choice: only an open line, to be held or not,
   * needs to know, and most chunks end with their event, so they are looked at only then. */
  private recent: Buffer[] = [];
  private recentBytes = 0;
  /** Ranges of the current bytes to send, as start, end pairs. */
  private ranges: number[] = [];
  /** A line grew past the bound while held: what was held was sent, and the stream is no longer rewritten. */
  overflowed = false;

  /**
   * `usageLine(buf, start, end)` reads a line that holds a usage object (its only JSON parse) and
   * says whether it is the usage chunk to take out; `maxLineBytes` bounds a held line.
   */
  constructor(
    private readonly usageLine: (buf: Buffer, start: number, end: number) => boolean,
    private readonly maxLineBytes: number,
  ) {}

  /** The bytes to send for this chunk (the chunk itself when nothing is taken out of it). */
  push(chunk: Buffer): Buffer {
    if (chunk.length === 0) return chunk;
    let work = chunk;
    if (this.heldBytes > 0) {
      if (this.waitForLineEnd && chunk.indexOf(LF) === -1 && chunk.indexOf(CR) === -1) {
        this.held.push(chunk);
        this.heldBytes += chunk.length;
        if (this.heldBytes <= this.maxLineBytes) return EMPTY;
        this.overflowed = true;
        return Buffer.concat(this.held);
      }
      this.held.push(chunk);
      work = Buffer.concat(this.held, this.heldBytes + chunk.length);
      this.held = [];
      this.heldBytes = 0;
      this.waitForLineEnd = false;
    }
    return this.scan(work, work === chunk);
  }

  private scan(work: Buffer, uncopied: boolean): Buffer {
    const n = work.length;
    const fresh = this.fresh;
    let pos = 0;
    if (this.afterCr && work[0] === LF) pos = 1;
    let seg = this.dropLf && pos === 1 ? 1 : 0;
    this.afterCr = false;
    this.dropLf = false;
    // (A chunk that was only the LF of a CRLF leaves the blank line to the next one.)
    if (this.dropBlank && pos < n) {
      this.dropBlank = false;
      if (work[pos] === LF || work[pos] === CR) seg = pos = this.pastLineEnd(work, pos);
    }

    if (!this.finished) {
      if (this.carryLength > 0 && this.straddles(work)) this.finished = true;
    }
    // The open line at the end, if any (none in most chunks: they end with their event).
    const last = work[n - 1];
    const tailStart = last === LF || last === CR ? n : Math.max(pos, lineStart(work, n - 1));
    let scanEnd = n;
    let holdFrom = n;
    let holdsLineStart = false;
    let looked = false;
    if (tailStart < n) {
      const tailFresh = tailStart > 0 || fresh;
      if (tailFresh && !this.finished) {
        this.readFinished(work, pos);
        looked = true;
      }
      if (this.finished && tailFresh) {
        scanEnd = holdFrom = tailStart;
        holdsLineStart = true;
        this.waitForLineEnd = true;
      } else {
        holdFrom = n - heldSuffix(work, tailStart, n);
        // A cut must be followed by `}` or `,`: the byte after the last one kept is looked at too.
        scanEnd = Math.min(n, holdFrom + 1);
        holdsLineStart = tailFresh && holdFrom === tailStart;
      }
    }

    for (let at = nextKey(work, pos, scanEnd); at !== -1 && at < scanEnd; ) {
      const after = at + AFTER_NULL;
      // `,"usage":null` then `}` or `,`: a key and its value (in a string its quotes would be escaped).
      if (at > seg && work[at - 1] === COMMA && after < scanEnd && isNullValue(work, at + USAGE_KEY.length) && (work[after] === CLOSE || work[after] === COMMA)) {
        this.emit(seg, at - 1);
        seg = after;
        at = nextKey(work, after, scanEnd);
        continue;
      }
      if (at < tailStart) {
        const colon = skipSpace(work, at + USAGE_KEY.length, tailStart);
        if (work[colon] === COLON && work[skipSpace(work, colon + 1, tailStart)] === OPEN) {
          const start = lineStart(work, at);
          const end = lineEnd(work, at);
          const sentBefore = start === 0 && !fresh;
          if (sentBefore) this.readSentLine(work, end);
          else if (this.usageLine(work, start, end)) {
            this.truncate(start);
            if (seg < start) this.emit(seg, start);
            seg = this.pastLineEnd(work, end);
            if (seg === n) this.dropBlank = true;
            else if (work[seg] === LF || work[seg] === CR) seg = this.pastLineEnd(work, seg);
            at = nextKey(work, seg, scanEnd);
            continue;
          }
        }
      }
      at = nextKey(work, at + 1, scanEnd);
    }
    this.emit(seg, holdFrom);

    if (tailStart < n && !this.waitForLineEnd) this.sentOpen(work, tailStart > 0 || fresh, tailStart, holdFrom);
    else this.forgetOpen();
    if (holdFrom < n) {
      this.held.push(work.subarray(holdFrom));
      this.heldBytes = n - holdFrom;
    }
    if (!this.finished && !looked && pos < n) this.addRecent(pos === 0 ? work : work.subarray(pos));
    this.fresh = holdFrom < n ? holdsLineStart : tailStart === n;
    this.afterCr = work[n - 1] === CR;
    return this.joined(work, uncopied);
  }

  /** Whether a choice finished in work[pos, end) or in the recent bytes before it. */
  private readFinished(work: Buffer, pos: number): void {
    if (work.indexOf(FINISHED, pos) !== -1) this.finished = true;
    for (let i = this.recent.length - 1; i >= 0 && !this.finished; i--) {
      if ((this.recent[i] as Buffer).indexOf(FINISHED) !== -1) this.finished = true;
    }
    this.recent = [];
    this.recentBytes = 0;
  }

  /** Keeps the last RECENT_BYTES: a choice that finished before them is no sign that the usage chunk is next. */
  private addRecent(buf: Buffer): void {
    this.recent.push(buf);
    this.recentBytes += buf.length;
    while (this.recent.length > 1 && this.recentBytes - (this.recent[0] as Buffer).length >= RECENT_BYTES) {
      this.recentBytes -= (this.recent.shift() as Buffer).length;
    }
  }

  /** Whether `finish_reason":"` begins in the carried bytes and ends in `work`. */
  private straddles(work: Buffer): boolean {
    const carry = this.carry;
    const length = this.carryLength;
    for (let k = Math.min(length, FINISHED.length - 1); k > 0; k--) {
      // The needle's first k bytes end the carry, the rest begins `work`.
      if (work.length < FINISHED.length - k) continue;
      let i = 0;
      while (i < k && carry[length - k + i] === FINISHED[i]) i++;
      if (i < k) continue;
      while (i < FINISHED.length && work[i - k] === FINISHED[i]) i++;
      if (i === FINISHED.length) return true;
    }
    return false;
  }

  /** A line carrying usage whose start was sent already: read whole, for its usage, and kept. */
  private readSentLine(work: Buffer, end: number): void {
    if (this.sentLost) return;
    const line = Buffer.concat([...this.sentOfLine, work.subarray(0, end)]);
    this.usageLine(line, 0, line.length);
  }

  /** buf[from, to) of the open line was sent (`begins`: from its start). */
  private sentOpen(buf: Buffer, begins: boolean, from: number, to: number): void {
    if (begins) this.forgetOpen();
    if (to <= from) return;
    const sent = buf.subarray(from, to);
    if (!this.sentLost) {
      this.sentBytes += sent.length;
      if (this.sentBytes > this.maxLineBytes) {
        this.sentLost = true;
        this.sentOfLine = [];
      } else {
        this.sentOfLine.push(sent);
      }
    }
    if (!this.finished) {
      // The last bytes sent, a few at most: moved by hand rather than through new buffers.
      const carry = this.carry;
      const keep = Math.min(this.carryLength, carry.length - Math.min(sent.length, carry.length));
      for (let i = 0; i < keep; i++) carry[i] = carry[this.carryLength - keep + i] as number;
      const take = Math.min(sent.length, carry.length);
      for (let i = 0; i < take; i++) carry[keep + i] = sent[sent.length - take + i] as number;
      this.carryLength = keep + take;
    }
  }

  private forgetOpen(): void {
    if (this.sentBytes === 0 && !this.sentLost && this.carryLength === 0) return;
    this.sentOfLine = [];
    this.sentBytes = 0;
    this.sentLost = false;
    this.carryLength = 0;
  }

  /** Past the line end at `at` (CR, LF or CRLF), taken out: a CR last in the chunk takes an LF next with it. */
  private pastLineEnd(work: Buffer, at: number): number {
    if (work[at] === CR) {
      if (at + 1 === work.length) this.dropLf = true;
      else if (work[at + 1] === LF) return at + 2;
    }
    return at + 1;
  }

  private emit(start: number, end: number): void {
    if (end <= start) return;
    const ranges = this.ranges;
    if (ranges.length > 0 && ranges[ranges.length - 1] === start) ranges[ranges.length - 1] = end;
    else ranges.push(start, end);
  }

  /** Unsends whatever of this chunk was kept from `at` on. */
  private truncate(at: number): void {
    const ranges = this.ranges;
    while (ranges.length > 0 && (ranges[ranges.length - 2] as number) >= at) ranges.length -= 2;
    if (ranges.length > 0 && (ranges[ranges.length - 1] as number) > at) ranges[ranges.length - 1] = at;
  }

  private joined(work: Buffer, uncopied: boolean): Buffer {
    const ranges = this.ranges;
    const count = ranges.length;
    if (count === 0) return EMPTY;
    this.ranges = [];
    if (count === 2) {
      const start = ranges[0] as number;
      const end = ranges[1] as number;
      return uncopied && start === 0 && end === work.length ? work : work.subarray(start, end);
    }
    let total = 0;
    for (let i = 0; i < count; i += 2) total += (ranges[i + 1] as number) - (ranges[i] as number);
    const out = Buffer.allocUnsafe(total);
    let at = 0;
    for (let i = 0; i < count; i += 2) at += copyInto(out, at, work, ranges[i] as number, ranges[i + 1] as number);
    return out;
  }
}
