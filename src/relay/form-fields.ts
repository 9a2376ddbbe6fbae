// The `model` of a multipart/form-data body (RFC 7578), and the other fields its cost depends on
// (`n`, `size` …), read as the body streams through:
//   - scanLeadingFields reads the text fields before the first file (body.ts holds at most a bounded
//     head of the body for it, then replays it);
//   - FieldGuard watches every later part's name as the body passes, and fails the body before its
//     end reaches the upstream if a guarded field comes again: an upstream that keeps the last value
//     of a field must never run another model, or make more images, than the gateway checked.
import { Transform, type TransformCallback } from 'node:stream';

const HEADERS_END = Buffer.from('\r\n\r\n');
// One `; key=value` parameter: a token or a quoted string (RFC 7578 4.2, RFC 2183, RFC 9110 5.6.6).
const PARAMETER = /^;\s*([!#$%&'*+.^_`|~0-9A-Za-z-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;\s"]*))\s*/;
const DISPOSITION = /^content-disposition:(.*)$/gim;
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

/** The parameters of a Content-Disposition value, read in order with quotes respected; undefined
 * for anything a parser could read two ways (a parameter twice, text it cannot read). */
function dispositionParameters(value: string): Map<string, string> | undefined {
  const params = new Map<string, string>();
  const semi = value.indexOf(';');
  let rest = semi === -1 ? '' : value.slice(semi).trimEnd();
  while (rest !== '') {
    const match = PARAMETER.exec(rest);
    if (!match) return undefined;
    const key = (match[1] as string).toLowerCase();
    if (params.has(key)) return undefined;
    params.set(key, match[2] !== undefined ? match[2].replace(/\\(.)/g, '$1') : (match[3] as string));
    rest = rest.slice(match[0].length);
  }
  return params;
}

/** A part's name and whether it is a file; undefined for a head that parsers could read two ways:
 * no Content-Disposition or two, unreadable parameters, or an encoded `name*` (RFC 7578 4.2 says a
 * form's names are never encoded that way, yet some parsers decode it). */
export function partHead(headers: string): PartHead | undefined {
  const dispositions = [...headers.matchAll(DISPOSITION)];
  if (dispositions.length !== 1) return undefined;
  const params = dispositionParameters((dispositions[0] as RegExpMatchArray)[1] as string);
  if (params === undefined || params.has('name*')) return undefined;
  return { name: params.get('name'), file: params.has('filename') || params.has('filename*') };
}

export type FieldsScan =
  /** The fields among `names` that stand before the first file (the first value of each), and
   * whether the whole form was seen (none can come later). */
  | { kind: 'read'; fields: Map<string, string>; complete: boolean; spans: Map<string, readonly [number, number]> }
  /** A part that cannot be read for certain: it could be any field. */
  | { kind: 'hidden' }
  /** A field not named `…[]` stands twice before the first file. */
  | { kind: 'twice'; name: string }
  /** Not decided by the bytes so far. */
  | { kind: 'more' };

/** Reads the text fields `names` among the parts before the first file part of `head`. A name
 * ending in `[]` is an array field: it may stand several times (its first value is kept). */
export function scanLeadingFields(head: Buffer, boundary: string, names: ReadonlySet<string>): FieldsScan {
  const delimiter = Buffer.from(`--${boundary}`);
  const between = Buffer.from(`\r\n--${boundary}`);
  const fields = new Map<string, string>();
  // Where each value lies in `head`, for a model alias written in its place (src/relay/model-sent.ts).
  const spans = new Map<string, readonly [number, number]>();
  let at = head.indexOf(delimiter);
  if (at === -1) return head.length > delimiter.length + MAX_PART_HEADERS ? { kind: 'hidden' } : { kind: 'more' };
  at += delimiter.length;
  for (;;) {
    if (head.length < at + 2) return { kind: 'more' };
    // `--` after a delimiter closes the form.
    if (head[at] === 0x2d && head[at + 1] === 0x2d) return { kind: 'read', fields, complete: true, spans };
    const headersEnd = head.indexOf(HEADERS_END, at);
    if (headersEnd === -1) return head.length - at > MAX_PART_HEADERS ? { kind: 'hidden' } : { kind: 'more' };
    const part = partHead(head.subarray(at, headersEnd).toString('latin1'));
    if (part === undefined) return { kind: 'hidden' };
    if (part.file) return { kind: 'read', fields, complete: false, spans };
    const valueStart = headersEnd + HEADERS_END.length;
    const valueEnd = head.indexOf(between, valueStart);
    if (valueEnd === -1) return { kind: 'more' };
    if (part.name !== undefined && names.has(part.name)) {
      if (!fields.has(part.name)) {
        fields.set(part.name, head.subarray(valueStart, valueEnd).toString('utf8'));
        spans.set(part.name, [valueStart, valueEnd]);
      }
      else if (!part.name.endsWith('[]')) return { kind: 'twice', name: part.name };
    }
    at = valueEnd + between.length;
  }
}

/** Looks for the text field `name` among the parts before the first file part of `head`. */
export function scanLeadingField(head: Buffer, boundary: string, name: string): FieldScan {
  const scan = scanLeadingFields(head, boundary, new Set([name]));
  if (scan.kind !== 'read') return scan.kind === 'twice' ? { kind: 'twice' } : scan;
  const value = scan.fields.get(name);
  if (value !== undefined) return { kind: 'found', value };
  return scan.complete ? { kind: 'none' } : { kind: 'hidden' };
}

/**
 * Passes a form through unchanged while reading the name of each part. Bytes are passed on once
 * examined: what could still be the start of a part's headers is held back (at most a delimiter and
 * MAX_PART_HEADERS), so the form's closing delimiter leaves only after every part was read, and a
 * guarded field standing twice fails the stream with `refusal()` before the upstream has a whole form.
 */
export class FieldGuard extends Transform {
  private readonly delimiter: Buffer;
  private carry: Buffer;
  /** Leading bytes of `carry` that are not the client's: a CRLF so that the first delimiter matches. */
  private virtual = 2;
  private readonly seen = new Set<string>();

  /** Set once a file part has passed: a `leadingOnly` field after it is refused. */
  private fileSeen = false;

  /** `names`: the fields that may stand once; `refusal` makes the error for one that comes again,
   * or, for one of `leadingOnly`, comes after a file (where the gateway could not read it before
   * choosing where the form goes). */
  constructor(
    boundary: string,
    private readonly names: ReadonlySet<string>,
    private readonly refusal: (name: string, late?: boolean) => Error,
    private readonly leadingOnly: ReadonlySet<string> = new Set(),
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
      const after = at + this.delimiter.length;
      // `--` closes the form: what follows (an epilogue) is no part; it leaves with the flush.
      if (buf.length >= after + 2 && buf[after] === 0x2d && buf[after + 1] === 0x2d) {
        examined = at;
        break;
      }
      const headersEnd = buf.indexOf(HEADERS_END, after);
      if (headersEnd === -1) {
        if (buf.length - at > this.delimiter.length + MAX_PART_HEADERS) {
          done(this.refusal('model'));
          return;
        }
        examined = at;
        break;
      }
      const part = partHead(buf.subarray(at + this.delimiter.length, headersEnd).toString('latin1'));
      // A part the guard cannot read for certain could be any field: the form is refused.
      if (part === undefined) {
        done(this.refusal('model'));
        return;
      }
      if (part.name !== undefined && this.fileSeen && this.leadingOnly.has(part.name)) {
        done(this.refusal(part.name, true));
        return;
      }
      if (part.file) this.fileSeen = true;
      if (part.name !== undefined && this.names.has(part.name)) {
        if (this.seen.has(part.name)) {
          done(this.refusal(part.name));
          return;
        }
        this.seen.add(part.name);
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
