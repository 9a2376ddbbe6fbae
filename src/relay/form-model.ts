// Puts another name in place of the `model` field of a multipart/form-data body (RFC 7578) as it
// streams through, and changes no other byte (an Azure deployment, src/relay/upstream-body.ts).
// Parts are read as FieldGuard (form-fields.ts) reads them; what could still begin a part's
// headers is held back, and a `model` part is held until its value ends (it is a model name: at
// most MAX_VALUE bytes, else the form is refused rather than sent unchanged).
import { Transform, type TransformCallback } from 'node:stream';
import { GatewayError } from '../errors.js';
import { partHead } from './form-fields.js';

const HEADERS_END = Buffer.from('\r\n\r\n');
const MAX_PART_HEADERS = 16 * 1024;
const MAX_VALUE = 4096;

function unreadable(): GatewayError {
  return new GatewayError('invalid_multipart', { message: 'The form\'s `model` field could not be read.', param: 'model' });
}

export class FormModelRename extends Transform {
  private readonly delimiter: Buffer;
  private carry: Buffer = Buffer.from('\r\n');
  /** Leading bytes of `carry` that are not the client's: a CRLF so that the first delimiter matches. */
  private virtual = 2;
  private formEnded = false;

  constructor(
    boundary: string,
    private readonly rename: (model: string) => string,
  ) {
    super();
    this.delimiter = Buffer.from(`\r\n--${boundary}`);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    if (this.formEnded) return done(null, chunk);
    const buf = this.carry.length === 0 ? chunk : Buffer.concat([this.carry, chunk]);
    const out: Buffer[] = [];
    let from = 0;
    let examined = 0;
    for (;;) {
      const at = buf.indexOf(this.delimiter, examined);
      if (at === -1) {
        examined = Math.max(examined, buf.length - (this.delimiter.length - 1));
        break;
      }
      const after = at + this.delimiter.length;
      if (buf.length < after + 2) {
        examined = at;
        break;
      }
      // `--` closes the form: the rest passes as it is.
      if (buf[after] === 0x2d && buf[after + 1] === 0x2d) {
        this.formEnded = true;
        examined = buf.length;
        break;
      }
      const headersEnd = buf.indexOf(HEADERS_END, after);
      if (headersEnd === -1) {
        if (buf.length - at > this.delimiter.length + MAX_PART_HEADERS) return done(unreadable());
        examined = at;
        break;
      }
      const part = partHead(buf.subarray(after, headersEnd).toString('latin1'));
      const valueStart = headersEnd + HEADERS_END.length;
      if (part?.name === 'model' && !part.file) {
        const next = buf.indexOf(this.delimiter, valueStart);
        if (next === -1) {
          if (buf.length - valueStart > MAX_VALUE + this.delimiter.length) return done(unreadable());
          examined = at;
          break;
        }
        out.push(buf.subarray(from, valueStart), Buffer.from(this.rename(buf.toString('utf8', valueStart, next)), 'utf8'));
        from = next;
        examined = next;
        continue;
      }
      examined = valueStart;
    }
    out.push(buf.subarray(from, examined));
    this.carry = buf.subarray(examined);
    this.emitBytes(Buffer.concat(out));
    done();
  }

  override _flush(done: TransformCallback): void {
    this.emitBytes(this.carry);
    this.carry = Buffer.alloc(0);
    done();
  }

  /** Pushes `bytes`, less any of the virtual CRLF still at their start. */
  private emitBytes(bytes: Buffer): void {
    const skip = Math.min(this.virtual, bytes.length);
    this.virtual -= skip;
    if (bytes.length > skip) this.push(bytes.subarray(skip));
  }
}
