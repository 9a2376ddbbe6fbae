// Puts another name in place of a JSON request body's top-level `model`, and changes no other
// byte: the body the client sent is what the upstream gets, but for that one string (an Azure
// deployment, src/relay/upstream-body.ts). The body was checked before (src/relay/json-shape.ts:
// valid, no key twice), so one pass that skips every nested value finds the one `model` there is.
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

function skipSpace(buf: Buffer, i: number): number {
  while (i < buf.length && (buf[i] === 0x20 || buf[i] === 0x09 || buf[i] === 0x0a || buf[i] === 0x0d)) i++;
  return i;
}

/** The index just past the string that opens at `i`. */
function stringEnd(buf: Buffer, i: number): number {
  for (let j = i + 1; j < buf.length; j++) {
    const byte = buf[j];
    if (byte === BACKSLASH) j++;
    else if (byte === QUOTE) return j + 1;
  }
  return -1;
}

/** The index just past the value that begins at `i` (an object, an array, a string or a literal). */
function valueEnd(buf: Buffer, i: number): number {
  let depth = 0;
  for (let j = i; j < buf.length; j++) {
    const byte = buf[j];
    if (byte === QUOTE) {
      j = stringEnd(buf, j) - 1;
      if (j < 0) return -1;
      if (depth === 0) return j + 1;
    } else if (byte === 0x7b || byte === 0x5b) depth++;
    else if (byte === 0x7d || byte === 0x5d) {
      if (depth === 0) return j; // the end of the enclosing object: a literal ended here
      depth--;
      if (depth === 0) return j + 1;
    } else if (depth === 0 && (byte === 0x2c || byte === 0x20 || byte === 0x09 || byte === 0x0a || byte === 0x0d)) return j;
  }
  return depth === 0 ? buf.length : -1;
}

/** Where the top-level `model` string stands in `bytes` (quotes included), and its value. */
export function findModel(bytes: Buffer): { start: number; end: number; value: string } | undefined {
  let i = skipSpace(bytes, 0);
  if (bytes[i] !== 0x7b) return undefined;
  i = skipSpace(bytes, i + 1);
  while (i < bytes.length && bytes[i] === QUOTE) {
    const keyEnd = stringEnd(bytes, i);
    if (keyEnd === -1) return undefined;
    // A key written with escapes (`"mod\u0065l"`) is still `model`: decoded as the upstream will.
    const key = JSON.parse(bytes.toString('utf8', i, keyEnd)) as string;
    i = skipSpace(bytes, keyEnd);
    if (bytes[i] !== 0x3a) return undefined;
    const start = skipSpace(bytes, i + 1);
    const end = valueEnd(bytes, start);
    if (end === -1) return undefined;
    if (key === 'model') {
      if (bytes[start] !== QUOTE) return undefined;
      return { start, end, value: JSON.parse(bytes.toString('utf8', start, end)) as string };
    }
    i = skipSpace(bytes, end);
    if (bytes[i] !== 0x2c) return undefined;
    i = skipSpace(bytes, i + 1);
  }
  return undefined;
}

/** `bytes` with the top-level `model` replaced by `rename(model)`; the same buffer when it has no
 * `model` string or `rename` keeps it. */
export function replaceModel(bytes: Buffer, rename: (model: string) => string): Buffer {
  const found = findModel(bytes);
  if (!found) return bytes;
  const name = rename(found.value);
  if (name === found.value) return bytes;
  return Buffer.concat([bytes.subarray(0, found.start), Buffer.from(JSON.stringify(name)), bytes.subarray(found.end)]);
}
