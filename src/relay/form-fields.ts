// The text fields at the head of a multipart/form-data body (RFC 7578), read as the body arrives
// and before its first file: a transcription's or an image edit's `model`. The body still streams
// through whole (body.ts replays what was read); nothing past the first file part is parsed, and
// at most a bounded head of the body is held.
const CRLF = Buffer.from('\r\n');
const HEADERS_END = Buffer.from('\r\n\r\n');
const NAME = /;\s*name="([^"]*)"/i;
const FILENAME = /;\s*filename\*?=/i;

export type FieldScan =
  /** The field, with its value (cut to `maxValue` characters when longer). */
  | { kind: 'found'; value: string }
  /** A file part, the end of the form, or a malformed head came first: the field is not in the head. */
  | { kind: 'absent' }
  /** Not decided by the bytes so far. */
  | { kind: 'more' };

/** Looks for the text field `name` among the parts before the first file part of `head`. */
export function scanLeadingField(head: Buffer, boundary: string, name: string): FieldScan {
  const delimiter = Buffer.from(`--${boundary}`);
  const between = Buffer.from(`\r\n--${boundary}`);
  let at = head.indexOf(delimiter);
  if (at === -1) return head.length > delimiter.length + 1024 ? { kind: 'absent' } : { kind: 'more' };
  at += delimiter.length;
  for (;;) {
    if (head.length < at + 2) return { kind: 'more' };
    // `--` after a delimiter closes the form.
    if (head[at] === 0x2d && head[at + 1] === 0x2d) return { kind: 'absent' };
    const lineEnd = head.indexOf(CRLF, at);
    if (lineEnd === -1) return { kind: 'more' };
    const headersEnd = head.indexOf(HEADERS_END, lineEnd);
    if (headersEnd === -1) return { kind: 'more' };
    const headers = head.subarray(lineEnd + 2, headersEnd).toString('latin1');
    const disposition = /^content-disposition:(.*)$/im.exec(headers)?.[1];
    if (disposition === undefined || FILENAME.test(disposition)) return { kind: 'absent' };
    const valueStart = headersEnd + HEADERS_END.length;
    const valueEnd = head.indexOf(between, valueStart);
    if (NAME.exec(disposition)?.[1] === name) {
      return valueEnd === -1 ? { kind: 'more' } : { kind: 'found', value: head.subarray(valueStart, valueEnd).toString('utf8') };
    }
    if (valueEnd === -1) return { kind: 'more' };
    at = valueEnd + between.length;
  }
}
