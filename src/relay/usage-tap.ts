// Reads the real usage from an answer as it passes, on the hot path: chunks go on uncopied
// unless something has to be taken out of them.
//   JSON answers: the `usage` object, found in the last 256 KB once the body is complete.
//   SSE answers:  every `data:` event that carries usage (the last chunk of a chat or completions
//                 stream, response.completed, transcript.text.done ...), and the text of the
//                 deltas, so that a stream that breaks off is charged what it streamed.
// When the gateway asked the upstream for `stream_options.include_usage` on the client's behalf
// (`stripUsage`), the tap also gives the client the stream it asked for: without the usage chunk,
// and without the `"usage":null` that OpenAI then adds to every other chunk (usage-strip.ts). That
// path reads no line but the usage chunk's: the text of the others is kept unread, as on the plain
// path, and read only if the stream ends without usage.
import type { TokenUsage } from '../quota/usage.js';
import { countText } from '../quota/estimate.js';
import { type Line, LineSplitter } from '../quota/sse-lines.js';
import { eventUsage, findJsonUsage } from '../quota/usage.js';
import type { ResponseTap } from './forward.js';
import { isEventStream } from './headers.js';
import { isObject } from '../json-object.js';
import { UsageStrip } from './usage-strip.js';

const JSON_TAIL_BYTES = 256 * 1024;
// A line longer than this is not parsed (nor held back): usage is then estimated.
const MAX_LINE_BYTES = 8 * 1024 * 1024;
const TEXT_FLUSH_CHARS = 1024 * 1024;
const DATA = Buffer.from('data:');

// Text of events not read at once is read when the stream ends without usage, or once this much
// of it has waited this long (bounded memory per stream).
const DEFERRED_BYTES = 8 * 1024;
const DEFERRED_MS = 200;
const USAGE_KEY = Buffer.from('"usage"');

type Json = Record<string, unknown>;
const isObjectStart = (byte: number | undefined): boolean => byte === 0x7b;

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
  /** A chunk as it came, lines cut anywhere: read in order through one splitter. */
  raw?: boolean;
}

/** Where the JSON object of an SSE `data:` line begins, or -1 when the line holds none. */
function dataObjectAt(buf: Buffer, start: number, end: number): number {
  if (end - start < 7 || buf.compare(DATA, 0, 5, start, start + 5) !== 0) return -1;
  const value = buf[start + 5] === 0x20 ? start + 6 : start + 5;
  return buf[value] === 0x7b ? value : -1; // not `[DONE]`, not a bare value
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

  /** Takes the usage out when the gateway asked for it (undefined otherwise, or once it gave up). */
  private strip: UsageStrip | undefined;
  /** Reads deferred raw chunks, whose lines may be cut anywhere. */
  private rawLines: LineSplitter | undefined;
  /** The open line grew past MAX_LINE_BYTES: its bytes are skipped up to its end (readRaw). */
  private skippingLine = false;

  private readonly watch: boolean;

  /** `watch`: look for usage (metered endpoints); `stripUsage`: see the file's head. */
  constructor(options: { stripUsage: boolean; watch?: boolean }) {
    this.watch = options.watch ?? true;
    if (options.stripUsage) this.strip = new UsageStrip(this.usageLine, MAX_LINE_BYTES);
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
    // The text of every event waits, unread, as on the path above; the usage chunk is read by the strip.
    this.defer({ buf: chunk, start: 0, end: chunk.length, raw: true });
    const out = this.strip.push(chunk);
    if (this.strip.overflowed) {
      this.strip = undefined;
      this.giveUp();
    }
    return out;
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

  /** Reads one line. */
  private parse(buf: Buffer, start: number, end: number): void {
    const value = dataObjectAt(buf, start, end);
    if (value === -1) return;
    if (!keyWithValue(buf.subarray(value, end), USAGE_KEY, isObjectStart)) {
      // Only its text can matter, and only if no usage comes: kept as it is, read if needed.
      this.defer({ buf, start: value, end });
      return;
    }
    const event = parseEvent(buf, value, end);
    if (!event) return;
    const usage = eventUsage(event);
    if (usage) this.reported = usage;
    this.collectText(event, this.deferred.length === 0 ? this.addText : this.deferText);
  }

  /** The strip's reader of a line holding a usage object: true when it is the chat/completions
   * usage chunk (no choices), to take out. Its text, if any, is read with the deferred events. */
  private readonly usageLine = (buf: Buffer, start: number, end: number): boolean => {
    const value = dataObjectAt(buf, start, end);
    const event = value === -1 ? undefined : parseEvent(buf, value, end);
    if (!event) return false;
    const usage = eventUsage(event);
    if (usage) this.reported = usage;
    return Array.isArray(event.choices) && event.choices.length === 0 && isObject(event.usage);
  };

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
      if (item.raw) {
        this.readRaw(item.buf.subarray(item.start, item.end));
        continue;
      }
      if (item.lines) {
        new LineSplitter().push(item.buf.subarray(item.start, item.end), this.readTextLine);
        continue;
      }
      const event = parseEvent(item.buf, item.start, item.end);
      if (event) this.collectText(event, this.addText);
    }
  }

  /**
   * Reads the text of the stream's lines as they come whole. A line past MAX_LINE_BYTES is not
   * gathered further (its text is not counted): the bytes up to its end are skipped, so that a line
   * of hundreds of MB with no newline holds no more than the bound.
   */
  private readRaw(buf: Buffer): void {
    if (this.skippingLine) {
      const lf = buf.indexOf(0x0a);
      const cr = buf.indexOf(0x0d);
      const end = lf === -1 ? cr : cr === -1 ? lf : Math.min(lf, cr);
      if (end === -1) return;
      this.skippingLine = false;
      buf = buf.subarray(end);
    }
    this.rawLines ??= new LineSplitter();
    this.rawLines.push(buf, this.readTextLine);
    if (this.rawLines.pending.length > MAX_LINE_BYTES) {
      this.rawLines = undefined;
      this.skippingLine = true;
    }
  }

  private readonly readTextLine = (line: Line): void => {
    const value = dataObjectAt(line.buf, line.start, line.end);
    const event = value === -1 ? undefined : parseEvent(line.buf, value, line.end);
    if (event) this.collectText(event, this.addText);
  };

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
}
