// Real usage as the upstream reports it, in any of OpenAI's shapes, reduced to one.
//   chat, completions, embeddings:   {prompt_tokens, completion_tokens, prompt_tokens_details.cached_tokens}
//   responses, images, transcription: {input_tokens, output_tokens, input_tokens_details.cached_tokens}
//   whisper-style transcription:      {type: "duration", seconds}  (no tokens)

export interface TokenUsage {
  input: number;
  /** Part of `input` that was read from the prompt cache (cheaper). */
  cachedInput: number;
  output: number;
}

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => v !== null && typeof v === 'object' && !Array.isArray(v);
const count = (v: unknown): number | undefined => (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : undefined);

export function totalTokens(u: TokenUsage): number {
  return u.input + u.output;
}

/** The usage object reduced, or undefined when it holds no token counts at all. */
export function normalizeUsage(value: unknown): TokenUsage | undefined {
  if (!isObject(value)) return undefined;
  const input = count(value.prompt_tokens) ?? count(value.input_tokens);
  const output = count(value.completion_tokens) ?? count(value.output_tokens);
  const total = count(value.total_tokens);
  if (input === undefined && output === undefined) {
    if (total !== undefined) return { input: total, cachedInput: 0, output: 0 };
    // Billed by duration, not tokens: nothing to count against token or token-priced limits.
    return value.type === 'duration' ? { input: 0, cachedInput: 0, output: 0 } : undefined;
  }
  // Realtime's response.done spells it `input_token_details`.
  const details = isObject(value.prompt_tokens_details) ? value.prompt_tokens_details : (value.input_tokens_details ?? value.input_token_details);
  const cached = isObject(details) ? (count(details.cached_tokens) ?? 0) : 0;
  const inTokens = input ?? 0;
  return { input: inTokens, cachedInput: Math.min(cached, inTokens), output: output ?? 0 };
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
