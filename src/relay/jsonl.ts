// Reads a JSONL stream (a batch's input or output file) one line at a time, as it arrives: never
// more than one line and one chunk held, whatever the file's size. Lines end with LF (a CR before
// it is dropped); an empty line is skipped, as OpenAI skips it.

export class LineTooLong extends Error {
  constructor(readonly line: number, readonly limit: number) {
    super(`line ${line} is longer than ${limit} bytes`);
  }
}

export class FileTooLarge extends Error {
  constructor(readonly limit: number) {
    super(`the file is larger than ${limit} bytes`);
  }
}

export interface JsonlLimits {
  lineBytes: number;
  fileBytes: number;
}

/** Each non-empty line with its number (from 1), decoded as UTF-8. */
export async function* jsonlLines(chunks: AsyncIterable<Buffer | string>, limits: JsonlLimits): AsyncGenerator<{ n: number; text: string }> {
  let held: Buffer[] = [];
  let heldBytes = 0;
  let total = 0;
  let n = 0;
  const line = (bytes: Buffer): { n: number; text: string } | undefined => {
    n++;
    const end = bytes.length > 0 && bytes[bytes.length - 1] === 0x0d ? bytes.length - 1 : bytes.length;
    const text = bytes.toString('utf8', 0, end);
    return text.trim() === '' ? undefined : { n, text };
  };
  for await (const piece of chunks) {
    const chunk = typeof piece === 'string' ? Buffer.from(piece) : piece;
    total += chunk.length;
    if (total > limits.fileBytes) throw new FileTooLarge(limits.fileBytes);
    let from = 0;
    for (let lf = chunk.indexOf(0x0a); lf !== -1; lf = chunk.indexOf(0x0a, from)) {
      const part = chunk.subarray(from, lf);
      if (heldBytes + part.length > limits.lineBytes) throw new LineTooLong(n + 1, limits.lineBytes);
      const whole = heldBytes === 0 ? part : Buffer.concat([...held, part]);
      held = [];
      heldBytes = 0;
      from = lf + 1;
      const found = line(whole);
      if (found) yield found;
    }
    const rest = chunk.subarray(from);
    if (rest.length > 0) {
      if (heldBytes + rest.length > limits.lineBytes) throw new LineTooLong(n + 1, limits.lineBytes);
      // Copied: the chunk's memory may be reused once this loop has moved on.
      held.push(Buffer.from(rest));
      heldBytes += rest.length;
    }
  }
  if (heldBytes > 0) {
    const found = line(Buffer.concat(held));
    if (found) yield found;
  }
}
