// RFC 6455 frames, read as far as the relay of a WebSocket session needs (ws-session.ts): each
// frame is cut out of the byte stream whole and handed on with its bytes as they came, so that
// what is relayed is exactly what was sent. No extension is negotiated (websocket.ts drops
// `sec-websocket-extensions` from the handshake), so a frame with an RSV bit set is a protocol
// error, as is a client frame without a mask (RFC 6455 5.1) or a server frame with one.
import { randomBytes } from 'node:crypto';
import os from 'node:os';

export const OP_CONTINUATION = 0x0;
export const OP_TEXT = 0x1;
export const OP_BINARY = 0x2;
export const OP_CLOSE = 0x8;

/** Why a stream of frames cannot be read on: the close code the peer is told. */
export class FrameError extends Error {
  constructor(
    readonly code: 1002 | 1009,
    message: string,
    /** For a 1009: whether the message had too many frames rather than too many bytes. */
    readonly tooManyFrames = false,
  ) {
    super(message);
  }
}

// Frames one message may be made of. A frame with little or no payload adds nothing to a message's
// size but costs a few hundred bytes of memory while the message is held: without a count, a
// message of empty continuation frames never ends and never reaches its size limit. Clients send
// a message in one frame, or in fragments of kilobytes: 4,096 of them is 16 MiB at 4 KiB each.
export const MAX_MESSAGE_FRAMES = 4096;

export interface Frame {
  fin: boolean;
  opcode: number;
  /** The frame's bytes, header and (masked) payload, exactly as they came. */
  raw: Buffer;
  /** The payload, unmasked. */
  payload: Buffer;
}

/** Cuts frames out of a byte stream; holds at most one frame of `maxFrame` payload bytes. */
export class FrameReader {
  private chunks: Buffer[] = [];
  private have = 0;

  constructor(
    private readonly maxFrame: number,
    /** Client frames are masked; the server's never are. */
    private readonly masked: boolean,
  ) {}

  push(chunk: Buffer): Frame[] {
    this.chunks.push(chunk);
    this.have += chunk.length;
    const frames: Frame[] = [];
    for (;;) {
      const frame = this.next();
      if (!frame) return frames;
      frames.push(frame);
    }
  }

  /** The first chunk, made at least `n` bytes long (n <= have) by joining only as many as that takes. */
  private peek(n: number): Buffer {
    if (this.chunks[0] && this.chunks[0].length >= n) return this.chunks[0];
    let count = 0;
    let size = 0;
    while (size < n) size += (this.chunks[count++] as Buffer).length;
    const joined = Buffer.concat(this.chunks.slice(0, count), size);
    this.chunks.splice(0, count, joined);
    return joined;
  }

  private take(n: number): Buffer {
    const whole = this.peek(n);
    const out = whole.subarray(0, n);
    const rest = whole.subarray(n);
    this.chunks = rest.length > 0 ? [rest, ...this.chunks.slice(1)] : this.chunks.slice(1);
    this.have -= n;
    return out;
  }

  private next(): Frame | undefined {
    if (this.have < 2) return undefined;
    const head = this.peek(Math.min(this.have, 14));
    const b0 = head[0] as number;
    const b1 = head[1] as number;
    const fin = (b0 & 0x80) !== 0;
    const opcode = b0 & 0x0f;
    const isMasked = (b1 & 0x80) !== 0;
    if ((b0 & 0x70) !== 0) throw new FrameError(1002, 'RSV bits set: no extension was negotiated');
    if (isMasked !== this.masked) throw new FrameError(1002, this.masked ? 'client frames must be masked' : 'server frames must not be masked');
    if (opcode > OP_BINARY && opcode < OP_CLOSE) throw new FrameError(1002, `unknown opcode ${opcode}`);
    if (opcode > 0x0a) throw new FrameError(1002, `unknown opcode ${opcode}`);
    let length = b1 & 0x7f;
    let offset = 2;
    if (length === 126) {
      if (this.have < 4) return undefined;
      length = head.readUInt16BE(2);
      offset = 4;
    } else if (length === 127) {
      if (this.have < 10) return undefined;
      const high = head.readUInt32BE(2);
      // Past 2^53 the length is no number JavaScript holds; far past any limit anyway.
      length = high > 0x1fffff ? Number.MAX_SAFE_INTEGER : high * 2 ** 32 + head.readUInt32BE(6);
      offset = 10;
    }
    if (opcode >= OP_CLOSE && (!fin || length > 125)) throw new FrameError(1002, 'control frames are short and never fragmented');
    if (length > this.maxFrame) throw new FrameError(1009, `frame of ${length} bytes over the limit of ${this.maxFrame}`);
    const headerLength = offset + (isMasked ? 4 : 0);
    if (this.have < headerLength + length) return undefined;
    const raw = this.take(headerLength + length);
    const body = raw.subarray(headerLength);
    let payload = body;
    if (isMasked) payload = unmask(body, raw.subarray(offset, offset + 4));
    return { fin, opcode, raw, payload };
  }
}

/** The payload XORed with the mask, four bytes at a time (the copy starts at offset 0 of its own
 * memory, so it can be read as 32-bit words). */
function unmask(body: Buffer, mask: Buffer): Buffer {
  const out = Buffer.allocUnsafeSlow(body.length);
  body.copy(out);
  const words = body.length >>> 2;
  const word = mask.readUInt32LE(0);
  const view = new Uint32Array(out.buffer, out.byteOffset, words);
  const key = os.endianness() === 'LE' ? word : mask.readUInt32BE(0);
  for (let i = 0; i < words; i++) view[i] = (view[i] as number) ^ key;
  for (let i = words * 4; i < body.length; i++) out[i] = (out[i] as number) ^ (mask[i & 3] as number);
  return out;
}

/** One message's frames, put together; bounded by `maxMessage` payload bytes. */
export interface Message {
  opcode: number;
  payload: Buffer;
  /** The frames it came in, as they came. */
  frames: Buffer[];
}

export class MessageAssembler {
  private current: { opcode: number; parts: Buffer[]; frames: Buffer[]; size: number; count: number } | undefined;

  constructor(private readonly maxMessage: number) {}

  /** True while a fragmented message has begun and not ended. */
  get open(): boolean {
    return this.current !== undefined;
  }

  /** Adds a data frame; returns the message when it ends. */
  add(frame: Frame, keepFrames: boolean): Message | undefined {
    if (frame.opcode === OP_CONTINUATION) {
      if (!this.current) throw new FrameError(1002, 'continuation without a message');
    } else {
      if (this.current) throw new FrameError(1002, 'new message inside a fragmented one');
      this.current = { opcode: frame.opcode, parts: [], frames: [], size: 0, count: 0 };
    }
    const m = this.current;
    m.size += frame.payload.length;
    m.count += 1;
    if (m.size > this.maxMessage) throw new FrameError(1009, `message over the limit of ${this.maxMessage} bytes`);
    if (m.count > MAX_MESSAGE_FRAMES) throw new FrameError(1009, `message in more than ${MAX_MESSAGE_FRAMES} frames`, true);
    m.parts.push(frame.payload);
    if (keepFrames) m.frames.push(frame.raw);
    if (!frame.fin) return undefined;
    this.current = undefined;
    return { opcode: m.opcode, payload: m.parts.length === 1 ? (m.parts[0] as Buffer) : Buffer.concat(m.parts), frames: m.frames };
  }
}

/** A frame the gateway writes itself: unmasked to the client, masked to the upstream. */
export function encodeFrame(opcode: number, payload: Buffer, mask: boolean): Buffer {
  const length = payload.length;
  const extended = length < 126 ? 0 : length < 65536 ? 2 : 8;
  const head = Buffer.alloc(2 + extended + (mask ? 4 : 0));
  head[0] = 0x80 | opcode;
  head[1] = (mask ? 0x80 : 0) | (extended === 0 ? length : extended === 2 ? 126 : 127);
  if (extended === 2) head.writeUInt16BE(length, 2);
  if (extended === 8) head.writeBigUInt64BE(BigInt(length), 2);
  if (!mask) return Buffer.concat([head, payload]);
  const key = randomBytes(4);
  key.copy(head, 2 + extended);
  const body = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i++) body[i] = (payload[i] as number) ^ (key[i & 3] as number);
  return Buffer.concat([head, body]);
}

export function closeFrame(code: number, reason: string, mask: boolean): Buffer {
  const text = Buffer.from(reason.slice(0, 100));
  const payload = Buffer.alloc(2 + text.length);
  payload.writeUInt16BE(code, 0);
  text.copy(payload, 2);
  return encodeFrame(OP_CLOSE, payload, mask);
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const TYPE_KEY = Buffer.from('"type"');

const isSpace = (c: number | undefined): boolean => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;

/**
 * The top-level `type` of a JSON event, found without parsing it. `whole` false (the upstream's
 * events): OpenAI writes `type` first, so this reads a few dozen bytes. `whole` true (a client's):
 * every top-level key is looked at, and a second `type`, or a key written with escapes (which
 * could spell `type`), makes the answer `ambiguous`: the caller then parses the event, as the
 * upstream will (the last of equal keys wins). Builds nothing; the text is walked once.
 */
export function eventType(text: Buffer, whole: boolean): { type?: string; ambiguous: boolean } {
  let depth = 0;
  let ended = false;
  let found: string | undefined;
  let i = 0;
  while (i < text.length) {
    const c = text[i] as number;
    if (c === QUOTE) {
      const end = stringEnd(text, i);
      if (end === -1) return { type: found, ambiguous: true };
      let j = end;
      while (isSpace(text[j])) j++;
      if (depth === 1 && text[j] === 0x3a) {
        if (text.subarray(i, end).includes(BACKSLASH)) return { type: found, ambiguous: true };
        if (end - i === TYPE_KEY.length && text.compare(TYPE_KEY, 0, TYPE_KEY.length, i, end) === 0) {
          if (found !== undefined) return { type: found, ambiguous: true };
          j++;
          while (isSpace(text[j])) j++;
          if (text[j] !== QUOTE) return { ambiguous: true };
          const valueEnd = stringEnd(text, j);
          if (valueEnd === -1 || valueEnd - j > 130) return { ambiguous: true };
          const raw = text.toString('utf8', j + 1, valueEnd - 1);
          if (raw.includes('\\')) return { ambiguous: true };
          found = raw;
          if (!whole) return { type: found, ambiguous: false };
          i = valueEnd;
          continue;
        }
      }
      i = end;
      continue;
    }
    // One object and nothing else: anything before or after it at the top is not an event.
    if (depth === 0 && !isSpace(c) && (c !== 0x7b || ended)) return { type: found, ambiguous: true };
    if (c === 0x7b || c === 0x5b) depth++;
    else if (c === 0x7d || c === 0x5d) {
      depth--;
      if (depth === 0) ended = true;
    }
    i++;
  }
  return { type: found, ambiguous: false };
}

/** The index just past the string that opens at `from`, or -1 when it is cut off. Quotes are
 * found with indexOf (native speed over a long base64 string); one preceded by an odd number of
 * backslashes is escaped. */
function stringEnd(text: Buffer, from: number): number {
  let i = from + 1;
  for (;;) {
    const quote = text.indexOf(QUOTE, i);
    if (quote === -1) return -1;
    let slashes = 0;
    while (quote - slashes - 1 > from && text[quote - slashes - 1] === BACKSLASH) slashes++;
    if (slashes % 2 === 0) return quote + 1;
    i = quote + 1;
  }
}
