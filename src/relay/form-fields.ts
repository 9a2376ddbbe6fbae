// The `model` of a multipart/form-data body (RFC 7578), read as the body streams through:
//   - scanLeadingField reads the text fields before the first file (body.ts holds at most a bounded
//     head of the body for it, then replays it);
//   - FieldGuard watches every later part's name as the body passes, and fails the body before its
//     end reaches the upstream if the field comes again: an upstream that keeps the last value of a
//     field must never run another model than the one the gateway checked.
import { Transform, type TransformCallback } from 'node:stream';

const HEADERS_END = Buffer.from('\r\n\r\n');
// A parameter value is a quoted string or a token (RFC 7578 4.2, RFC 2183).
const NAME = /;\s*name=(?:"([^"]*)"|([^";\s]+))/i;
const FILENAME = /;\s*filename\*?=/i;
const DISPOSITION = /^content-disposition:(.*)$/im;
// More header text than any part needs: past it, the part is not read (and a guarded form fails).
const MAX_PART_HEADERS = 16 * 1024;

export type FieldScan =
  /** The field, once, among the parts before the first file. */
  | { kind: 'found'; value: string }
  /** The whole form was seen: it has no such field. */
  | { kind: 'none' }
  /** A file part (or a part that cannot be read) came first: the field may be after it. */
  | { kind: 'hidden' }
  /** The field stands twice before the first file. */
  | { kind: 'twice' }
  /** Not decided by the bytes so far. */
  | { kind: 'more' };

interface PartHead {
  name: string | undefined;
  file: boolean;
}

function partHead(headers: string): PartHead | undefined {
  const disposition = DISPOSITION.exec(headers)?.[1];
  if (disposition === undefined) return undefined;
  const name = NAME.exec(disposition);
  return { name: name ? (name[1] ?? name[2]) : undefined, file: FILENAME.test(disposition) };
}

/** Looks for the text field `name` among the parts before the first file part of `head`. */
export function scanLeadingField(head: Buffer, boundary: string, name: string): FieldScan {
  const delimiter = Buffer.from(`--${boundary}`);
  const between = Buffer.from(`\r\n--${boundary}`);
  let at = head.indexOf(delimiter);
  if (at === -1) return head.length > delimiter.length + MAX_PART_HEADERS ? { kind: 'hidden' } : { kind: 'more' };
  at += delimiter.length;
  let found: string | undefined;
  for (;;) {
    if (head.length < at + 2) return { kind: 'more' };
    // `--` after a delimiter closes the form.
    if (head[at] === 0x2d && head[at + 1] === 0x2d) return found === undefined ? { kind: 'none' } : { kind: 'found', value: found };
    const headersEnd = head.indexOf(HEADERS_END, at);
    if (headersEnd === -1) return head.length - at > MAX_PART_HEADERS ? { kind: 'hidden' } : { kind: 'more' };
    const part = partHead(head.subarray(at, headersEnd).toString('latin1'));
    if (part === undefined) return { kind: 'hidden' };
    if (part.file) return found === undefined ? { kind: 'hidden' } : { kind: 'found', value: found };
    const valueStart = headersEnd + HEADERS_END.length;
    const valueEnd = head.indexOf(between, valueStart);
    if (part.name === name) {
      if (found !== undefined) return { kind: 'twice' };
      if (valueEnd === -1) return { kind: 'more' };
      found = head.subarray(valueStart, valueEnd).toString('utf8');
    }
    if (valueEnd === -1) return { kind: 'more' };
    at = valueEnd + between.length;
  }
}

/**
 * Passes a form through unchanged while reading the name of each part. Bytes are passed on once
 * examined: what could still be the start of a part's headers is held back (at most a delimiter and
 * MAX_PART_HEADERS), so the form's closing delimiter leaves only after every part was read, and a
 * second `name` field fails the stream with `refusal()` before the upstream has a whole form.
 */
export class FieldGuard extends Transform {
  private readonly delimiter: Buffer;
  private carry: Buffer;
  /** Leading bytes of `carry` that are not the client's: a CRLF so that the first delimiter matches. */
  private virtual = 2;
  private seen = 0;

  constructor(
    boundary: string,
    private readonly name: string,
    private readonly refusal: () => Error,
  ) {
    super();
    this.delimiter = Buffer.from(`\r\n--${boundary}`);
    this.carry = Buffer.from('\r\n');
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    const buf = this.carry.length === 0 ? chunk : Buffer.concat([this.carry, chunk]);
    let examined = 0;
    for (;;) {
      const at = buf.indexOf(this.delimiter, examined);
      if (at === -1) {
        // A delimiter may begin in the last bytes: hold them.
        examined = Math.max(examined, buf.length - (this.delimiter.length - 1));
        break;
      }
      const headersEnd = buf.indexOf(HEADERS_END, at + this.delimiter.length);
      if (headersEnd === -1) {
        if (buf.length - at > this.delimiter.length + MAX_PART_HEADERS) {
          done(this.refusal());
          return;
        }
        examined = at;
        break;
      }
      const part = partHead(buf.subarray(at + this.delimiter.length, headersEnd).toString('latin1'));
      if (part?.name === this.name && ++this.seen > 1) {
        done(this.refusal());
        return;
      }
      examined = headersEnd + HEADERS_END.length;
    }
    this.carry = buf.subarray(examined);
    this.emit_(buf.subarray(0, examined));
    done();
  }

  override _flush(done: TransformCallback): void {
    this.emit_(this.carry);
    this.carry = Buffer.alloc(0);
    done();
  }

  /** Pushes `bytes`, less any of the virtual CRLF still at their start. */
  private emit_(bytes: Buffer): void {
    const skip = Math.min(this.virtual, bytes.length);
    this.virtual -= skip;
    if (bytes.length > skip) this.push(bytes.subarray(skip));
  }
}
