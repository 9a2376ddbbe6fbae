// Reads the real usage from an answer as it passes, on the hot path: chunks go on uncopied
// unless something has to be taken out of them.
//   JSON answers: the `usage` object, found in the last 256 KB once the body is complete.
//   SSE answers:  every `data:` event that carries usage (the last chunk of a chat or completions
//                 stream, response.completed, transcript.text.done ...), and the text of the
//                 deltas, so that a stream that breaks off is charged what it streamed.
// When the gateway asked the upstream for `stream_options.include_usage` on the client's behalf
// (`stripUsage`), the tap also gives the client the stream it asked for: without the usage chunk,
// and without the `"usage":null` that OpenAI then adds to every other chunk.
import type { TokenUsage } from '../quota/usage.js';
import { countText } from '../quota/estimate.js';
import { type Line, LineSplitter } from '../quota/sse-lines.js';
import { eventUsage, findJsonUsage } from '../quota/usage.js';
import type { ResponseTap } from './forward.js';
import { isEventStream } from './headers.js';
import { isObject } from '../json-object.js';

const NULL_USAGE = Buffer.from(',"usage":null');
const JSON_TAIL_BYTES = 256 * 1024;
// A line longer than this is not parsed (nor held back): usage is then estimated.
const MAX_LINE_BYTES = 8 * 1024 * 1024;
const TEXT_FLUSH_CHARS = 1024 * 1024;
const EMPTY = Buffer.alloc(0);
const DATA = Buffer.from('data:');

// Text of events not read at once is read when the stream ends without usage, or once this much
// of it has waited this long (bounded memory per stream).
const DEFERRED_BYTES = 8 * 1024;
const DEFERRED_MS = 200;
const USAGE_KEY = Buffer.from('"usage"');
const FINISH_KEY = Buffer.from('"finish_reason"');

type Json = Record<string, unknown>;
const isObjectStart = (byte: number | undefined): boolean => byte === 0x7b;
const isNotNull = (byte: number | undefined): boolean => byte !== undefined && byte !== 0x6e;

function skipSpace(buf: Buffer, i: number, end: number): number {
  while (i < end && (buf[i] === 0x20 || buf[i] === 0x09 || buf[i] === 0x0a || buf[i] === 0x0d)) i++;
  return i;
}

/**
 * Whether the JSON text `json` has the key `key` (quotes included) with a value whose first byte
 * passes `test`. Inside a JSON string every quote is escaped, so these bytes followed by a colon
 * are a key; a false yes only costs a parse.
 */
function keyWithValue(json: Buffer, key: Buffer, test: (byte: number | undefined) => boolean): boolean {
  const end = json.length;
  for (let at = json.indexOf(key); at !== -1; at = json.indexOf(key, at + 1)) {
    const colon = skipSpace(json, at + key.length, end);
    if (json[colon] === 0x3a && test(json[skipSpace(json, colon + 1, end)])) return true;
  }
  return false;
}

function parseEvent(buf: Buffer, start: number, end: number): Json | undefined {
  try {
    const event: unknown = JSON.parse(buf.toString('utf8', start, end));
    return isObject(event) ? event : undefined;
  } catch {
    return undefined;
  }
}

export interface Measured {
  usage: TokenUsage;
  /** Counted by the gateway (no usage reported): a stream that broke off or was aborted. */
  estimated: boolean;
}

interface Piece {
  buf: Buffer;
  start: number;
  end: number;
  /** Whole lines of an SSE chunk, not one event's JSON: split when read. */
  lines?: boolean;
}

/** Where the JSON object of an SSE `data:` line begins, or -1 when the line holds none. */
function dataObjectAt(buf: Buffer, start: number, end: number): number {
  if (end - start < 7 || buf.compare(DATA, 0, 5, start, start + 5) !== 0) return -1;
  const value = buf[start + 5] === 0x20 ? start + 6 : start + 5;
  return buf[value] === 0x7b ? value : -1; // not `[DONE]`, not a bare value
}

/** The length of the longest end of `buf` that could be the start of `,"usage":null`. */
function heldSuffix(buf: Buffer): number {
  for (let k = Math.min(buf.length, NULL_USAGE.length); k > 0; k--) {
    if (buf.compare(NULL_USAGE, 0, k, buf.length - k, buf.length) === 0) return k;
  }
  return 0;
}

export class UsageTap implements ResponseTap {
  private status = 0;
  private started = false;
  private mode: 'sse' | 'json' | 'none' = 'none';
  private reported: TokenUsage | undefined;
  private readonly lines = new LineSplitter();
  private textParts: string[] = [];
  private textChars = 0;
  private textTokens = 0;
  private tail: Buffer[] = [];
  private tailBytes = 0;
  /** Events whose text is not read yet, and text of later events, in stream order. */
  private deferred: Array<Piece | string> = [];
  private deferredBytes = 0;
  private deferredSince = 0;

  private strip: boolean;
  private out: Piece[] = [];
  private current: Buffer = EMPTY;
  /** Bytes of the open line already sent to the client. */
  private openSent = 0;
  /** The last complete line was taken out (an LF completing its CRLF goes too). */
  private lastDropped = false;
  /** The data line of the usage chunk was taken out: the blank line ending its event goes too. */
  private dropBlank = false;
  /** A choice has finished: the usage chunk may come next, so lines are held until whole. */
  private finished = false;

  private readonly watch: boolean;

  /** `watch`: look for usage (metered endpoints); `stripUsage`: see the file's head. */
  constructor(options: { stripUsage: boolean; watch?: boolean }) {
    this.strip = options.stripUsage;
    this.watch = options.watch ?? true;
  }

  start(status: number, headers: Record<string, string | string[] | undefined>): void {
    this.started = true;
    this.status = status;
    if (!this.watch || status < 200 || status >= 300) return;
    const encoding = headers['content-encoding'];
    if (encoding !== undefined && encoding !== 'identity') return;
    const type = headers['content-type'];
    if (isEventStream(type)) this.mode = 'sse';
    else if (String(type ?? '').toLowerCase().includes('json')) this.mode = 'json';
  }

  chunk(chunk: Buffer): Buffer {
    if (this.mode === 'json') {
      this.keepTail(chunk);
      return chunk;
    }
    if (this.mode !== 'sse') return chunk;
    if (!this.strip) {
      // A chunk of whole lines with no usage object in any of them (the usual delta chunk): kept as
      // it is, for its text if no usage comes, without splitting it into lines now.
      if (this.lines.idle && chunk[chunk.length - 1] === 0x0a && !keyWithValue(chunk, USAGE_KEY, isObjectStart)) {
        this.defer({ buf: chunk, start: 0, end: chunk.length, lines: true });
        return chunk;
      }
      this.lines.push(chunk, this.observeLine);
      if (this.lines.pending.length > MAX_LINE_BYTES) this.giveUp();
      return chunk;
    }
    return this.rewrite(chunk);
  }

  end(complete: boolean): void {
    if (this.mode === 'json' && complete && !this.reported) {
      const tail = this.tail.length === 1 ? (this.tail[0] as Buffer) : Buffer.concat(this.tail);
      this.reported = findJsonUsage(tail.length > JSON_TAIL_BYTES * 2 ? tail.subarray(tail.length - JSON_TAIL_BYTES * 2) : tail);
    }
    this.tail = [];
  }

  /**
   * What the request used; undefined when it used nothing (no answer, or an error answer). Without
   * reported usage: the prompt's estimate (asked for only then) and the text that streamed.
   */
  measure(promptTokens: () => number): Measured | undefined {
    if (!this.started || this.status < 200 || this.status >= 300) return undefined;
    if (this.reported) return { usage: this.reported, estimated: false };
    if (this.deferred.length > 0) this.readDeferred();
    if (this.textChars > 0) this.flushText();
    return { usage: { input: promptTokens(), cachedInput: 0, output: this.textTokens }, estimated: true };
  }

  private keepTail(chunk: Buffer): void {
    this.tail.push(chunk);
    this.tailBytes += chunk.length;
    while (this.tail.length > 1 && this.tailBytes - (this.tail[0] as Buffer).length >= JSON_TAIL_BYTES) {
      this.tailBytes -= (this.tail.shift() as Buffer).length;
    }
  }

  private giveUp(): void {
    this.mode = 'none';
    this.lines.reset();
  }

  private readonly observeLine = (line: Line): void => {
    this.parse(line.buf, line.start, line.end);
  };

  /** Reads one line; true when it is the data line of a chat/completions usage chunk. */
  private parse(buf: Buffer, start: number, end: number): boolean {
    const value = dataObjectAt(buf, start, end);
    if (value === -1) return false;
    const json = buf.subarray(value, end);
    // A finished choice matters only to the rewrite (the usage chunk may come next).
    if (!keyWithValue(json, USAGE_KEY, isObjectStart) && !(this.strip && keyWithValue(json, FINISH_KEY, isNotNull))) {
      // Only its text can matter, and only if no usage comes: kept as it is, read if needed.
      this.defer({ buf, start: value, end });
      return false;
    }
    const event = parseEvent(buf, value, end);
    if (!event) return false;
    const usage = eventUsage(event);
    if (usage) this.reported = usage;
    this.collectText(event, this.deferred.length === 0 ? this.addText : this.deferText);
    return Array.isArray(event.choices) && event.choices.length === 0 && isObject(event.usage);
  }

  private defer(piece: Piece): void {
    const now = performance.now();
    if (this.deferred.length === 0) this.deferredSince = now;
    this.deferred.push(piece);
    this.deferredBytes += piece.end - piece.start;
    // A slow stream would hold its events' buffers for its whole life: read as they come instead.
    if (this.deferredBytes > DEFERRED_BYTES || now - this.deferredSince > DEFERRED_MS) this.readDeferred();
  }

  private readonly deferText = (text: string): void => {
    this.deferred.push(text);
  };

  /** Collects the text of the deferred events, in order, as if each had been read when it came. */
  private readDeferred(): void {
    const deferred = this.deferred;
    this.deferred = [];
    this.deferredBytes = 0;
    for (const item of deferred) {
      if (typeof item === 'string') {
        this.addText(item);
        continue;
      }
      if (item.lines) {
        new LineSplitter().push(item.buf.subarray(item.start, item.end), (line) => {
          const value = dataObjectAt(line.buf, line.start, line.end);
          const event = value === -1 ? undefined : parseEvent(line.buf, value, line.end);
          if (event) this.collectText(event, this.addText);
        });
        continue;
      }
      const event = parseEvent(item.buf, item.start, item.end);
      if (event) this.collectText(event, this.addText);
    }
  }

  private collectText(event: Json, addText: (text: string) => void): void {
    const choices = event.choices;
    if (!Array.isArray(choices)) {
      // Responses, transcription, and other typed events stream their text as `delta`.
      if (typeof event.delta === 'string') addText(event.delta);
      return;
    }
    for (const choice of choices) {
      if (!isObject(choice)) continue;
      if (typeof choice.text === 'string') addText(choice.text);
      const delta = choice.delta;
      if (isObject(delta)) {
        if (typeof delta.content === 'string') addText(delta.content);
        if (typeof delta.refusal === 'string') addText(delta.refusal);
        if (typeof delta.reasoning_content === 'string') addText(delta.reasoning_content);
        if (Array.isArray(delta.tool_calls)) {
          for (const call of delta.tool_calls) {
            if (isObject(call) && isObject(call.function) && typeof call.function.arguments === 'string') addText(call.function.arguments);
          }
        }
      }
      if (choice.finish_reason !== null && choice.finish_reason !== undefined) this.finished = true;
    }
  }

  private readonly addText = (text: string): void => {
    this.textParts.push(text);
    this.textChars += text.length;
    if (this.textChars >= TEXT_FLUSH_CHARS) this.flushText();
  };

  private flushText(): void {
    this.textTokens += countText(this.textParts.join(''));
    this.textParts = [];
    this.textChars = 0;
  }

  // Taking the injected usage out.

  private rewrite(chunk: Buffer): Buffer {
    this.out = [];
    this.current = chunk;
    this.lines.push(chunk, this.rewriteLine, this.loneLf);
    const open = this.lines.pending;
    if (open.length > MAX_LINE_BYTES) {
      this.emit(open, this.openSent, open.length);
      this.strip = false;
      this.giveUp();
    } else if (open.length > this.openSent && !this.finished) {
      // Not near the end of the stream: send what is there of the line at once, but for bytes
      // that may turn out to start a `,"usage":null` to take out.
      const cut = open.length - heldSuffix(open);
      if (cut > this.openSent) {
        this.emitWithout(open, this.openSent, Math.min(open.length, cut + 1), cut);
        this.openSent = cut;
      }
    }
    this.current = EMPTY;
    return this.joined();
  }

  private readonly loneLf = (): void => {
    if (!this.lastDropped) this.emit(this.current, 0, 1);
  };

  private readonly rewriteLine = (line: Line): void => {
    const { buf, start, end, next } = line;
    const from = start + this.openSent;
    this.openSent = 0;
    if (start === end) {
      this.lastDropped = this.dropBlank;
      this.dropBlank = false;
      if (!this.lastDropped) this.emit(buf, from, next);
      return;
    }
    const usageChunk = this.parse(buf, start, end);
    // A usage chunk partly sent already (it came before any choice finished) cannot be unsent.
    if (usageChunk && from === start) {
      this.dropBlank = true;
      this.lastDropped = true;
      return;
    }
    this.dropBlank = false;
    this.lastDropped = false;
    this.emitWithout(buf, from, end, next);
  };

  /** Emits buf[from, emitEnd) less every `,"usage":null` that ends before `searchEnd` and is
   * followed by `}` or `,` (a key and its value, not text: text has its quotes escaped). */
  private emitWithout(buf: Buffer, from: number, searchEnd: number, emitEnd: number): void {
    let pos = from;
    const view = buf.subarray(from, searchEnd);
    let at = view.indexOf(NULL_USAGE);
    while (at !== -1) {
      const abs = from + at;
      const after = abs + NULL_USAGE.length;
      if (after < searchEnd && (buf[after] === 0x7d || buf[after] === 0x2c)) {
        this.emit(buf, pos, abs);
        pos = after;
      }
      at = view.indexOf(NULL_USAGE, at + 1);
    }
    this.emit(buf, pos, emitEnd);
  }

  private emit(buf: Buffer, start: number, end: number): void {
    if (end <= start) return;
    const last = this.out[this.out.length - 1];
    if (last && last.buf === buf && last.end === start) last.end = end;
    else this.out.push({ buf, start, end });
  }

  private joined(): Buffer {
    const out = this.out;
    this.out = [];
    if (out.length === 0) return EMPTY;
    if (out.length === 1) {
      const only = out[0] as Piece;
      return only.start === 0 && only.end === only.buf.length ? only.buf : only.buf.subarray(only.start, only.end);
    }
    return Buffer.concat(out.map((p) => p.buf.subarray(p.start, p.end)));
  }
}
