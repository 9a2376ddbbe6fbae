// A request's worst case before it is sent: its prompt tokens, counted with gpt-tokenizer (pure
// JavaScript, no WASM to load, maintained, and it ships the model catalogue used here for output
// caps), plus the most output it may produce: its max_tokens (at most the model's output cap),
// else that cap.
// An estimate of the prompt, not OpenAI's exact count: images, audio and stored conversations
// (previous_response_id) are approximated or unseen. Settling replaces it with the real usage.
import { countTokens } from 'gpt-tokenizer';
import * as catalogue from 'gpt-tokenizer/models';
import type { Cost, EstimateShape } from '../operations/costs.js';
import type { RequestFacts } from '../relay/body.js';

export interface Estimate {
  model?: string;
  readonly promptTokens: number;
  maxOutputTokens: number;
  /** The endpoint bills tokens: its answer's usage is charged (or estimated when it has none). */
  metered: boolean;
}

// OpenAI: roughly 3 tokens of framing per chat message, 3 more to prime the answer.
const PER_MESSAGE = 4;
const PER_CONVERSATION = 3;
// A high-detail image of the largest size gpt-4o takes: 8 tiles of 170 plus 85.
const IMAGE_TOKENS = 1445;
// /v1/completions answers 16 tokens when max_tokens is not set (OpenAI API reference).
const COMPLETIONS_DEFAULT_MAX = 16;
// Past this many characters in one request, a string counts as its UTF-8 length: never fewer
// tokens than it really has (a token is at least one byte), and no unbounded tokenizing.
const TOKENIZE_BUDGET = 256 * 1024;
const MAX_CHOICES = 128;

const SKIPPED = new Set(['url', 'image_url', 'data', 'file_data', 'file_id', 'detail', 'type', 'role', 'format', 'id', 'call_id']);
const IMAGE_TYPES = new Set(['image_url', 'input_image', 'image']);

const models = catalogue as unknown as Record<string, { max_output_tokens?: number } | undefined>;
const SNAPSHOT = /-(\d{4}-\d{2}-\d{2}|\d{4})$/;

/** The most output tokens the model can produce in one answer, when the catalogue knows it. */
export function outputCap(model: string): number | undefined {
  return models[model]?.max_output_tokens ?? models[model.replace(SNAPSHOT, '')]?.max_output_tokens;
}

/** Tokens of a text, special-token markers counted as the plain text they are in a prompt. */
export function countText(text: string): number {
  return text.length === 0 ? 0 : countTokens(text, { disallowedSpecial: new Set() });
}

// Prompts repeat from request to request (a system prompt, tool definitions, a conversation's
// earlier turns): their counts are remembered, within a bound on the text kept.
const REMEMBERED_TEXT_CHARS = 16 * 1024;
const REMEMBERED_CHARS = 4 * 1024 * 1024;
const remembered = new Map<string, number>();
let rememberedChars = 0;

function countPromptText(text: string): number {
  if (text.length > REMEMBERED_TEXT_CHARS) return countText(text);
  const known = remembered.get(text);
  if (known !== undefined) return known;
  const tokens = countText(text);
  if (rememberedChars + text.length > REMEMBERED_CHARS) {
    remembered.clear();
    rememberedChars = 0;
  }
  remembered.set(text, tokens);
  rememberedChars += text.length;
  return tokens;
}

class Counter {
  tokens = 0;
  private budget = TOKENIZE_BUDGET;

  text(s: string): void {
    if (s.length === 0) return;
    if (s.length > this.budget) {
      this.tokens += Buffer.byteLength(s);
      return;
    }
    this.budget -= s.length;
    this.tokens += countPromptText(s);
  }

  /** Every string in the value, less ids, URLs and binary data. */
  walk(value: unknown, depth = 0): void {
    // Never reached by an accepted body (at most MAX_JSON_DEPTH deep), kept for any other caller.
    if (depth > 64) return;
    if (typeof value === 'string') this.text(value);
    else if (typeof value === 'number') this.tokens += 1; // a token id in a token-array prompt
    else if (Array.isArray(value)) for (const v of value) this.walk(v, depth + 1);
    else if (value !== null && typeof value === 'object') {
      const o = value as Record<string, unknown>;
      if (typeof o.type === 'string' && IMAGE_TYPES.has(o.type)) {
        this.tokens += IMAGE_TOKENS;
        return;
      }
      for (const key in o) if (!SKIPPED.has(key)) this.walk(o[key], depth + 1);
    }
  }

  /**
   * Tool and schema definitions reach the model as their JSON text. JSON.stringify recurses as
   * deep as the value: request bodies are refused past MAX_JSON_DEPTH at read (relay/json-shape.ts).
   */
  json(value: unknown): void {
    if (value !== undefined && value !== null) this.text(JSON.stringify(value));
  }

  /** A list of messages, or one string (which the API takes as one user message). */
  messages(value: unknown): void {
    if (value === undefined || value === null) return;
    this.tokens += PER_CONVERSATION + PER_MESSAGE * (Array.isArray(value) ? value.length : 1);
    this.walk(value);
  }
}

function choices(...values: unknown[]): number {
  let n = 1;
  for (const v of values) if (typeof v === 'number' && Number.isSafeInteger(v) && v > n) n = v;
  return Math.min(n, MAX_CHOICES);
}

/** How many prompts a completions `prompt` holds (each gets its own answers). */
function promptCount(value: unknown): number {
  if (!Array.isArray(value) || value.length === 0 || typeof value[0] === 'number') return 1;
  return value.length;
}

type Json = Record<string, unknown>;

interface Shape {
  /** Feeds the request's prompt to the counter. */
  prompt(counter: Counter, json: Json): void;
  /** The most output tokens the request may produce, given the cap of one answer. */
  output(json: Json, cap: number, maxTokens: number | undefined): number;
}

// How the worst case of each estimator shape of src/operations/costs.ts is read from its JSON body.
const SHAPES = new Map<EstimateShape, Shape>([
  [
    'chat',
    {
      prompt(c, j) {
        c.messages(j.messages);
        c.json(j.tools);
        c.json(j.functions);
        c.json(j.response_format);
      },
      output: (j, cap) => cap * choices(j.n),
    },
  ],
  [
    'completions',
    {
      prompt(c, j) {
        c.walk(j.prompt);
        c.walk(j.suffix);
      },
      output: (j, _cap, max) => (max ?? COMPLETIONS_DEFAULT_MAX) * choices(j.n, j.best_of) * promptCount(j.prompt),
    },
  ],
  [
    'responses',
    {
      prompt(c, j) {
        c.messages(j.input);
        c.walk(j.instructions);
        c.json(j.tools);
        c.json(j.text);
      },
      output: (_j, cap) => cap,
    },
  ],
  ['embeddings', { prompt: (c, j) => c.walk(j.input), output: () => 0 }],
  ['moderations', { prompt: (c, j) => c.walk(j.input), output: () => 0 }],
  ['images', { prompt: (c, j) => c.walk(j.prompt), output: (j, cap) => cap * choices(j.n) }],
  [
    'speech',
    {
      prompt(c, j) {
        c.walk(j.input);
        c.walk(j.instructions);
      },
      output: (_j, cap) => cap,
    },
  ],
]);

const UNMETERED: Estimate = { promptTokens: 0, maxOutputTokens: 0, metered: false };

/**
 * The worst case of a request, by what its operation costs (src/operations/costs.ts). Operations
 * billed by their model reserve nothing and are charged the usage their answer reports; free ones
 * and those whose cost the gateway cannot read are not metered.
 */
export function estimateRequest(
  cost: Cost,
  model: string | undefined,
  json: Json | undefined,
  facts: RequestFacts,
  defaultMaxOutput: number,
): Estimate {
  if (cost.kind === 'free' || cost.kind === 'unbounded') return UNMETERED;
  const shape = cost.kind === 'tokens' ? SHAPES.get(cost.shape) : undefined;
  if (!shape || !json) return { model, promptTokens: 0, maxOutputTokens: 0, metered: true };
  // OpenAI answers 400 to a max_tokens above the model's cap, so no answer runs past it: the worst
  // case counts at most the cap per answer (were the catalogue behind a new model, settling still
  // charges the real usage). Past that, what the ledger can count bounds it (src/quota/amounts.ts).
  const modelCap = model ? outputCap(model) : undefined;
  const maxTokens = facts.maxTokens === undefined || modelCap === undefined ? facts.maxTokens : Math.min(facts.maxTokens, modelCap);
  const cap = maxTokens ?? modelCap ?? defaultMaxOutput;
  let prompt: number | undefined;
  return {
    model,
    metered: true,
    maxOutputTokens: shape.output(json, cap, maxTokens),
    // Counted on first use: a request whose user has no token or dollar limit, and whose answer
    // reports its usage, is never tokenized at all.
    get promptTokens(): number {
      if (prompt === undefined) {
        const counter = new Counter();
        shape.prompt(counter, json);
        prompt = counter.tokens;
      }
      return prompt;
    },
  };
}
