// Splits a byte stream into lines as the SSE spec reads them (LF, CRLF or a lone CR ends a line),
// whatever the chunking: a line may arrive split at any byte, a CRLF split between two chunks,
// a UTF-8 character split in two (lines are cut on bytes, never inside a character, and decoded
// whole). Lines within one chunk are handed out as ranges of that chunk, uncopied; only a line
// that spans chunks is gathered, into a buffer that grows by doubling.
// https://html.spec.whatwg.org/multipage/server-sent-events.html#parsing-an-event-stream

const LF = 0x0a;
const CR = 0x0d;

export interface Line {
  /** Holds the line's bytes at [start, end); the terminator follows, up to `next`. */
  buf: Buffer;
  start: number;
  end: number;
  next: number;
  /** The line began in an earlier chunk (its bytes are in a buffer of the splitter's own). */
  gathered: boolean;
}

export class LineSplitter {
  private partial: Buffer = Buffer.alloc(0);
  private partialLength = 0;
  /** The last line ended with CR: an LF first in the next chunk belongs to it. */
  private afterCr = false;

  /** No line is open: the next chunk begins a line of its own. */
  get idle(): boolean {
    return this.partialLength === 0 && !this.afterCr;
  }

  /** The bytes of the line still open, so far. Never written to again once read (growing
   * reallocates), so a caller may hand them on without copying. */
  get pending(): Buffer {
    return this.partial.subarray(0, this.partialLength);
  }

  /**
   * Calls `onLine` for every line this chunk completes. `onLoneLf` is called when the chunk
   * starts with the LF of a CRLF whose CR ended the previous chunk (its byte is at index 0).
   */
  push(chunk: Buffer, onLine: (line: Line) => void, onLoneLf?: () => void): void {
    let pos = 0;
    if (this.afterCr && chunk.length > 0) {
      this.afterCr = false;
      if (chunk[0] === LF) {
        pos = 1;
        onLoneLf?.();
      }
    }
    while (pos < chunk.length) {
      const end = nextTerminator(chunk, pos);
      if (end === -1) {
        this.gather(chunk, pos, chunk.length);
        return;
      }
      let next = end + 1;
      if (chunk[end] === CR) {
        if (next < chunk.length) {
          if (chunk[next] === LF) next++;
        } else {
          this.afterCr = true;
        }
      }
      if (this.partialLength > 0) {
        this.gather(chunk, pos, next);
        const line = this.partial;
        const length = this.partialLength;
        this.partialLength = 0;
        this.partial = Buffer.alloc(0);
        onLine({ buf: line, start: 0, end: length - (next - end), next: length, gathered: true });
      } else {
        onLine({ buf: chunk, start: pos, end, next, gathered: false });
      }
      pos = next;
    }
  }

  private gather(chunk: Buffer, from: number, to: number): void {
    const needed = this.partialLength + (to - from);
    if (needed > this.partial.length) {
      const grown = Buffer.allocUnsafe(Math.max(needed, this.partial.length * 2, 256));
      this.partial.copy(grown, 0, 0, this.partialLength);
      this.partial = grown;
    }
    chunk.copy(this.partial, this.partialLength, from, to);
    this.partialLength = needed;
  }

  /** Forgets the open line. */
  reset(): void {
    this.partial = Buffer.alloc(0);
    this.partialLength = 0;
    this.afterCr = false;
  }
}

function nextTerminator(buf: Buffer, from: number): number {
  const lf = buf.indexOf(LF, from);
  // CR is rare in practice (OpenAI sends LF): look for it only before the first LF.
  const crEnd = lf === -1 ? buf.length : lf;
  const cr = buf.subarray(from, crEnd).indexOf(CR);
  if (cr !== -1) return from + cr;
  return lf;
}
