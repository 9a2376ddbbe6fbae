// Real usage as the upstream reports it, in any of OpenAI's shapes, reduced to one.
//   chat, completions, embeddings:   {prompt_tokens, completion_tokens,
//                                     prompt_tokens_details.{cached_tokens, audio_tokens},
//                                     completion_tokens_details.audio_tokens}
//   responses, images, transcription: {input_tokens, output_tokens,
//                                     input_tokens_details.{text_tokens, image_tokens, audio_tokens, cached_tokens},
//                                     output_tokens_details.{text_tokens, image_tokens}}
//   realtime (response.done):        {input_tokens, output_tokens,
//                                     input_token_details.{audio_tokens, image_tokens, cached_tokens,
//                                       cached_tokens_details.{audio_tokens}}, output_token_details.audio_tokens}
//   whisper-style transcription:      {type: "duration", seconds}  (no tokens)
// Every number is taken as a count the ledger can hold: a fraction is rounded up, anything above
// MAX_AMOUNT is MAX_AMOUNT, and a negative or non-numeric value counts as absent (0): a count can
// never refund what other parts of the usage cost. Each detail is at most the total it is part of.
import { MAX_AMOUNT } from './amounts.js';
import { isObject } from '../json-object.js';

export interface TokenUsage {
  input: number;
  /** Part of `input` that was read from the prompt cache (cheaper). */
  cachedInput: number;
  output: number;
  /** Part of `input` that is audio tokens. */
  audioInput?: number;
  /** Part of `cachedInput` that is audio tokens. */
  cachedAudioInput?: number;
  /** Part of `output` that is audio tokens. */
  audioOutput?: number;
  /** Part of `input` that is image tokens. */
  imageInput?: number;
  /** Part of `output` that is image tokens. */
  imageOutput?: number;
  /** Images produced, billed per image (dall-e-*). */
  images?: number;
  /** Seconds of audio, billed per minute (whisper-1). */
  seconds?: number;
  /** Characters of input, billed per thousand (tts-1, tts-1-hd). */
  characters?: number;
}

type Json = Record<string, unknown>;


/** A reported count as the ledger can hold it, or undefined when it is not a count at all. */
export function count(v: unknown): number | undefined {
  if (typeof v !== 'number' || Number.isNaN(v) || v < 0) return undefined;
  return Math.min(Math.ceil(v), MAX_AMOUNT);
}

const part = (v: unknown, whole: number): number | undefined => {
  const n = count(v);
  return n === undefined || n === 0 ? undefined : Math.min(n, whole);
};

const field = (o: unknown, key: string): unknown => (isObject(o) ? o[key] : undefined);

export function totalTokens(u: TokenUsage): number {
  return u.input + u.output;
}

/** Sets `key` when the value is a positive count (kept off the object otherwise). */
function put(usage: TokenUsage, key: keyof TokenUsage, value: number | undefined): void {
  if (value !== undefined && value > 0) usage[key] = value;
}

/** The usage object reduced, or undefined when it holds no counts at all. */
export function normalizeUsage(value: unknown): TokenUsage | undefined {
  if (!isObject(value)) return undefined;
  const input = count(value.prompt_tokens) ?? count(value.input_tokens);
  const output = count(value.completion_tokens) ?? count(value.output_tokens);
  const total = count(value.total_tokens);
  if (input === undefined && output === undefined) {
    if (total !== undefined) return { input: total, cachedInput: 0, output: 0 };
    // Billed by duration, not tokens: nothing to count against token limits, the seconds priced per minute.
    if (value.type !== 'duration') return undefined;
    const usage: TokenUsage = { input: 0, cachedInput: 0, output: 0 };
    put(usage, 'seconds', count(value.seconds));
    return usage;
  }
  const inTokens = input ?? 0;
  const outTokens = output ?? 0;
  const inDetails = value.prompt_tokens_details ?? value.input_tokens_details ?? value.input_token_details;
  const outDetails = value.completion_tokens_details ?? value.output_tokens_details ?? value.output_token_details;
  const cached = part(field(inDetails, 'cached_tokens'), inTokens) ?? 0;
  const usage: TokenUsage = { input: inTokens, cachedInput: cached, output: outTokens };
  const audioIn = part(field(inDetails, 'audio_tokens'), inTokens);
  put(usage, 'audioInput', audioIn);
  put(usage, 'imageInput', part(field(inDetails, 'image_tokens'), inTokens - (audioIn ?? 0)));
  put(usage, 'cachedAudioInput', part(field(field(inDetails, 'cached_tokens_details'), 'audio_tokens'), Math.min(cached, audioIn ?? 0)));
  const audioOut = part(field(outDetails, 'audio_tokens'), outTokens);
  put(usage, 'audioOutput', audioOut);
  put(usage, 'imageOutput', part(field(outDetails, 'image_tokens'), outTokens - (audioOut ?? 0)));
  return usage;
}

/** The usage an SSE event carries: `usage` at its top (chat, completions, transcription, images,
 * assistants runs) or inside `response` (Responses API: response.completed and its kin). */
export function eventUsage(event: Json): TokenUsage | undefined {
  if (isObject(event.usage)) return normalizeUsage(event.usage);
  if (isObject(event.response) && isObject(event.response.usage)) return normalizeUsage(event.response.usage);
  return undefined;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const USAGE_KEY = Buffer.from('"usage"');

function skipSpace(buf: Buffer, i: number): number {
  while (i < buf.length && (buf[i] === 0x20 || buf[i] === 0x0a || buf[i] === 0x0d || buf[i] === 0x09)) i++;
  return i;
}

/** The end (exclusive) of the JSON object starting at `from`, or -1 when it is cut off. */
function objectEnd(buf: Buffer, from: number): number {
  let depth = 0;
  let inString = false;
  for (let i = from; i < buf.length; i++) {
    const c = buf[i];
    if (inString) {
      if (c === BACKSLASH) i++;
      else if (c === QUOTE) inString = false;
    } else if (c === QUOTE) {
      inString = true;
    } else if (c === 0x7b) {
      depth++;
    } else if (c === 0x7d) {
      depth--;
      if (depth === 0) return i + 1;
    }
  }
  return -1;
}

/**
 * The usage of a JSON answer, found from its end without parsing the whole body (an embeddings
 * answer can be megabytes of vectors; its usage comes last). Inside a JSON string every quote is
 * escaped, so the bytes `"usage"` followed by a colon can only be a key.
 */
export function findJsonUsage(tail: Buffer): TokenUsage | undefined {
  let at = tail.lastIndexOf(USAGE_KEY);
  while (at !== -1) {
    const colon = skipSpace(tail, at + USAGE_KEY.length);
    if (tail[colon] === 0x3a && (at === 0 || tail[at - 1] !== BACKSLASH)) {
      const start = skipSpace(tail, colon + 1);
      if (tail[start] === 0x7b) {
        const end = objectEnd(tail, start);
        if (end !== -1) {
          try {
            const usage = normalizeUsage(JSON.parse(tail.toString('utf8', start, end)));
            if (usage) return usage;
          } catch {
            // not JSON after all: look further back
          }
        }
      }
    }
    at = at === 0 ? -1 : tail.lastIndexOf(USAGE_KEY, at - 1);
  }
  return undefined;
}
