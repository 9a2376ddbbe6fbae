// What an answer shows of the units it is billed by, when its `usage` does not say (usage-tap.ts
// reads that): the images of a dall-e-* answer (its `data` items, each with a `url` or a
// `b64_json`), and the `duration` of a whisper-1 `verbose_json` transcript. Read as the answer
// passes, in bounded memory: a few bytes carried between chunks for the image keys, the first
// HEAD_BYTES and the last TAIL_BYTES for the duration (OpenAI writes it near the start).
import type { ResponseTap } from './forward.js';
import { count } from '../quota/usage.js';

// Inside a JSON string every quote is escaped: these bytes can only be keys (or a value no image
// answer has).
const IMAGE_KEYS = [Buffer.from('"b64_json"'), Buffer.from('"url"')];
const CARRY = Math.max(...IMAGE_KEYS.map((k) => k.length)) - 1;
const HEAD_BYTES = 4096;
const TAIL_BYTES = 64 * 1024;
const DURATION = /"duration"\s*:\s*(-?[0-9][0-9.eE+-]*)/;

export class AnswerUnits implements ResponseTap {
  private ok = false;
  private complete = false;
  private carry = Buffer.alloc(0);
  private imageKeys = 0;
  private head: Buffer[] = [];
  private headBytes = 0;
  private tail = Buffer.alloc(0);

  /** `images`: count the images; `duration`: read the duration. */
  constructor(private readonly wants: { images: boolean; duration: boolean }) {}

  start(status: number, headers: Record<string, string | string[] | undefined>): void {
    this.ok = status >= 200 && status < 300 && String(headers['content-type'] ?? '').toLowerCase().includes('json');
    this.complete = false;
    this.carry = Buffer.alloc(0);
    this.imageKeys = 0;
    this.head = [];
    this.headBytes = 0;
    this.tail = Buffer.alloc(0);
  }

  chunk(chunk: Buffer): Buffer {
    if (!this.ok) return chunk;
    if (this.wants.images) this.countKeys(chunk);
    if (this.wants.duration) this.keep(chunk);
    return chunk;
  }

  end(complete: boolean): void {
    this.complete = complete;
  }

  /** The images of a complete JSON answer, or undefined when there is none to count. */
  images(): number | undefined {
    return this.ok && this.complete && this.wants.images ? this.imageKeys : undefined;
  }

  /** The seconds of audio a complete JSON answer gives as its `duration`, rounded up. */
  seconds(): number | undefined {
    if (!this.ok || !this.complete || !this.wants.duration) return undefined;
    const text = Buffer.concat(this.head).toString('latin1');
    const found = DURATION.exec(text) ?? DURATION.exec(this.tail.toString('latin1'));
    return found ? count(Number(found[1])) : undefined;
  }

  private countKeys(chunk: Buffer): void {
    const buf = this.carry.length === 0 ? chunk : Buffer.concat([this.carry, chunk]);
    for (const key of IMAGE_KEYS) {
      // A key wholly inside the carry was counted with the chunk before.
      for (let at = buf.indexOf(key); at !== -1; at = buf.indexOf(key, at + 1)) if (at + key.length > this.carry.length) this.imageKeys++;
    }
    this.carry = Buffer.from(buf.subarray(Math.max(0, buf.length - CARRY)));
  }

  private keep(chunk: Buffer): void {
    if (this.headBytes < HEAD_BYTES) {
      const part = chunk.subarray(0, HEAD_BYTES - this.headBytes);
      this.head.push(Buffer.from(part));
      this.headBytes += part.length;
    }
    const joined = Buffer.concat([this.tail, chunk]);
    this.tail = Buffer.from(joined.subarray(Math.max(0, joined.length - TAIL_BYTES)));
  }
}
