// A request's worst case before it is sent: its prompt tokens, counted with gpt-tokenizer (pure
// JavaScript, no WASM to load, maintained, and it ships the model catalogue used here for output
// caps), plus the most output it may produce: its max_tokens (at most the model's output cap),
// else that cap.
// An estimate of the prompt, not OpenAI's exact count: images, audio and stored conversations
// (previous_response_id) are approximated or unseen. Settling replaces it with the real usage.
import { countTokens } from 'gpt-tokenizer';
import * as catalogue from 'gpt-tokenizer/models';
import type { Cost, EstimateShape, Permission } from '../operations/costs.js';
import type { RequestFacts } from '../relay/body.js';
import type { Price } from './prices.js';
import { type Units, formEstimate, imagesEstimate, jsonImages, speechEstimate } from './units-estimate.js';
import { flatMicros } from './flat-prices.js';

export interface Estimate {
  model?: string;
  readonly promptTokens: number;
  maxOutputTokens: number;
  /** The endpoint bills tokens: its answer's usage is charged (or estimated when it has none). */
  metered: boolean;
  /** What it bills besides tokens (src/quota/units-estimate.ts): images, audio seconds at their
   * worst, speech characters exactly. */
  units?: Units;
  /** Its answer may report no usage (a transcript as plain text, speech as audio bytes): it is then
   * charged this worst case, marked estimated, its prompt (`audio`) or its output (`speech`) as
   * audio tokens. */
  silent?: 'audio' | 'speech';
  /** A price per call (src/quota/flat-prices.ts, or an allowed operation's amount): reserved, and
   * charged once the upstream took the request. */
  flatMicros?: number;
  /** The work goes on after the answer (a thread run): charged its worst case, not the answer's usage. */
  chargeWorstCase?: boolean;
  /** Where the output bound of one answer came from, for a refusal to explain it (src/quota/gate.ts). */
  outputBound?: OutputBound;
}

/** The output tokens one answer was assumed to take at most, and why. */
export interface OutputBound {
  tokens: number;
  /** The request's own max_tokens (or kin), or the model's output cap below it; the model's output
   * cap, or `quota.defaultMaxOutputTokens`, when it set none; or the API's own default (16 for
   * /v1/completions). */
  from: 'request' | 'request_capped' | 'model_cap' | 'default_setting' | 'api_default';
}

// OpenAI: roughly 3 tokens of framing per chat message, 3 more to prime the answer.
const PER_MESSAGE = 4;
const PER_CONVERSATION = 3;
/** A high-detail image of the largest size gpt-4o takes: 8 tiles of 170 plus 85. */
export const IMAGE_TOKENS = 1445;
// /v1/completions answers 16 tokens when max_tokens is not set (OpenAI API reference).
const COMPLETIONS_DEFAULT_MAX = 16;
// Past this many characters in one request, a string counts as its UTF-8 length: never fewer
// tokens than it really has (a token is at least one byte), and no unbounded tokenizing.
const TOKENIZE_BUDGET = 256 * 1024;
const MAX_CHOICES = 128;
// The longest a number can grow when written out again (1e20 is 100000000000000000000).
export const LONGEST_NUMBER = 24;

/** Keys whose values are not prompt text: ids, URLs, binary data, labels. */
export const SKIPPED: ReadonlySet<string> = new Set(['url', 'image_url', 'data', 'file_data', 'file_id', 'detail', 'type', 'role', 'format', 'id', 'call_id']);
/** The `type` of an object that is an image, counted as IMAGE_TOKENS. */
export const IMAGE_TYPES: ReadonlySet<string> = new Set(['image_url', 'input_image', 'image']);

const models = catalogue as unknown as Record<string, { max_output_tokens?: number } | undefined>;
const SNAPSHOT = /-(\d{4}-\d{2}-\d{2}|\d{4})$/;

/** The most output tokens the model can produce in one answer, when the catalogue knows it. */
export function outputCap(model: string): number | undefined {
  return models[model]?.max_output_tokens ?? models[model.replace(SNAPSHOT, '')]?.max_output_tokens;
}

// The tokenizer's time grows with the square of the length of each piece it cuts a text into, and
// a piece is a run of characters of one kind: 100 KB of letters (or spaces, CJK, emoji) without a
// break takes seconds of CPU, during which the process serves nothing. A run longer than this is
// counted in windows of this many characters instead, in time linear in its length, plus one token
// for each of its two edges: whole, a character beside the run may share a token with it, or the
// run's last character with what follows (`\s+(?!\S)`), which can make one token fewer or more
// there; inside the run a cut only splits tokens. Never fewer tokens than whole.
const LONG_RUN = 256;
const LONG_RUNS = new RegExp(`\\S{${LONG_RUN + 1},}|\\s{${LONG_RUN + 1},}`, 'g');

const countPlain = (text: string): number => (text.length === 0 ? 0 : countTokens(text, { disallowedSpecial: new Set() }));

/** The tokens of a long run, window by window (a window never ends inside a surrogate pair). */
function countRun(run: string): number {
  let tokens = 0;
  for (let at = 0; at < run.length; ) {
    let end = Math.min(run.length, at + LONG_RUN);
    const code = run.charCodeAt(end - 1);
    if (end < run.length && code >= 0xd800 && code <= 0xdbff) end--;
    tokens += countPlain(run.slice(at, end));
    at = end;
  }
  return tokens;
}

/** Tokens of a text, special-token markers counted as the plain text they are in a prompt. */
export function countText(text: string): number {
  if (text.length <= LONG_RUN) return countPlain(text);
  let tokens = 0;
  let from = 0;
  for (const run of text.matchAll(LONG_RUNS)) {
    tokens += countPlain(text.slice(from, run.index)) + countRun(run[0]) + 2;
    from = run.index + run[0].length;
  }
  return tokens + countPlain(from === 0 ? text : text.slice(from));
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

/**
 * What the one pass over a body too large to parse measured of one of its top-level fields
 * (src/relay/json-digest.ts): enough for a count never below what the parsed body would give.
 */
export interface FieldSize {
  /** False for `null`, which counts as absent. */
  present: boolean;
  /** Its members when it is an array, else -1. */
  items: number;
  /** Its first member is a number (a token-array prompt). */
  firstIsNumber: boolean;
  /** The most tokens `walk` finds in it: the UTF-8 bytes of its strings as written (an escape is
   * never shorter than what it stands for), one per number, IMAGE_TOKENS per image, less what is
   * under SKIPPED keys. */
  walked: number;
  /** The bytes of its JSON text, plus LONGEST_NUMBER per number written with an exponent. */
  textBytes: number;
}

/** Reads the prompt of a request, field by field, from its parsed body or its measured sizes. */
interface PromptReader {
  /** Every string of the field, less ids, URLs and binary data. */
  walk(field: string): number;
  /** Tool and schema definitions reach the model as their JSON text. */
  json(field: string): number;
  /** A list of messages, or one string (which the API takes as one user message). */
  messages(field: string): number;
  /** How many prompts a completions `prompt` holds (each gets its own answers). */
  prompts(field: string): number;
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
}

type Json = Record<string, unknown>;

/** A body parsed whole: its strings are tokenized, up to TOKENIZE_BUDGET characters in all. */
class ParsedPrompt implements PromptReader {
  private readonly counter = new Counter();
  constructor(private readonly body: Json) {}

  private count(read: (c: Counter) => void): number {
    const before = this.counter.tokens;
    read(this.counter);
    return this.counter.tokens - before;
  }

  walk(field: string): number {
    return this.count((c) => c.walk(this.body[field]));
  }

  json(field: string): number {
    const value = this.body[field];
    // JSON.stringify recurses as deep as the value: bodies are refused past MAX_JSON_DEPTH at read (relay/json-shape.ts).
    return value === undefined || value === null ? 0 : this.count((c) => c.text(JSON.stringify(value)));
  }

  messages(field: string): number {
    const value = this.body[field];
    if (value === undefined || value === null) return 0;
    return PER_CONVERSATION + PER_MESSAGE * (Array.isArray(value) ? value.length : 1) + this.walk(field);
  }

  prompts(field: string): number {
    const value = this.body[field];
    if (!Array.isArray(value) || value.length === 0 || typeof value[0] === 'number') return 1;
    return value.length;
  }
}

/** A body read without a tree: bytes stand for tokens (a token is at least one byte), so the
 * count is never below the tokenizer's, and costs nothing more than the pass that measured it. */
class MeasuredPrompt implements PromptReader {
  constructor(private readonly sizes: ReadonlyMap<string, FieldSize>) {}

  walk(field: string): number {
    return this.sizes.get(field)?.walked ?? 0;
  }

  json(field: string): number {
    const size = this.sizes.get(field);
    return size?.present ? size.textBytes : 0;
  }

  messages(field: string): number {
    const size = this.sizes.get(field);
    if (!size?.present) return 0;
    return PER_CONVERSATION + PER_MESSAGE * (size.items === -1 ? 1 : size.items) + size.walked;
  }

  prompts(field: string): number {
    const size = this.sizes.get(field);
    return !size || size.items <= 0 || size.firstIsNumber ? 1 : size.items;
  }
}

function choices(...values: unknown[]): number {
  let n = 1;
  for (const v of values) if (typeof v === 'number' && Number.isSafeInteger(v) && v > n) n = v;
  return Math.min(n, MAX_CHOICES);
}

type Reading = 'walk' | 'json' | 'messages';

interface Shape {
  /** The fields that hold the request's prompt, how each is read, in the order they are counted. */
  prompt: ReadonlyArray<readonly [Reading, string]>;
  /** The most output tokens the request may produce, given the cap of one answer. */
  output(json: Json, cap: number, maxTokens: number | undefined, prompts: number): number;
}

// How the worst case of each estimator shape of src/operations/costs.ts is read from its JSON body.
const SHAPES = new Map<EstimateShape, Shape>([
  [
    'chat',
    {
      prompt: [
        ['messages', 'messages'],
        ['json', 'tools'],
        ['json', 'functions'],
        ['json', 'response_format'],
      ],
      output: (j, cap) => cap * choices(j.n),
    },
  ],
  [
    'completions',
    {
      prompt: [
        ['walk', 'prompt'],
        ['walk', 'suffix'],
      ],
      output: (j, _cap, max, prompts) => (max ?? COMPLETIONS_DEFAULT_MAX) * choices(j.n, j.best_of) * prompts,
    },
  ],
  [
    'responses',
    {
      prompt: [
        ['messages', 'input'],
        ['walk', 'instructions'],
        ['json', 'tools'],
        ['json', 'text'],
      ],
      output: (_j, cap) => cap,
    },
  ],
  ['embeddings', { prompt: [['walk', 'input']], output: () => 0 }],
  ['moderations', { prompt: [['walk', 'input']], output: () => 0 }],
  // Their output is set by estimateRequest from what they ask for (units-estimate.ts).
  ['images', { prompt: [['walk', 'prompt']], output: () => 0 }],
  [
    'speech',
    {
      prompt: [
        ['walk', 'input'],
        ['walk', 'instructions'],
      ],
      output: () => 0,
    },
  ],
]);

/** Whether an estimator shape counts any output (embeddings and moderations answer none). */
export function countsOutput(shape: EstimateShape): boolean {
  return (SHAPES.get(shape)?.output({}, 1, undefined, 1) ?? 0) > 0;
}

/** The fields an estimator shape reads its prompt from, in order (docs/metering.md). */
export function promptFieldsOf(shape: EstimateShape): string[] {
  return SHAPES.get(shape)?.prompt.map(([, field]) => field) ?? [];
}

/** The top-level fields any estimate reads its prompt from: what the one pass measures in a body too large to parse. */
export const PROMPT_FIELDS: ReadonlySet<string> = new Set([...SHAPES.values()].flatMap((shape) => shape.prompt.map(([, field]) => field)));

const UNMETERED: Estimate = { promptTokens: 0, maxOutputTokens: 0, metered: false };

/** What one call of an operation refused unless allowed reserves, in micro-dollars. */
export type AllowedMicros = (permission: Permission) => number;

/**
 * The worst case of a request, by what its operation costs (src/operations/costs.ts). Operations
 * billed by their model reserve nothing and are charged the usage their answer reports; flat and
 * allowed ones reserve their price; free ones and those whose cost the gateway cannot read are not
 * metered. `sizes`: for a body too large to parse, what the one pass measured of its prompt fields
 * (`json` then holds only its top-level settings). `price`: the model's, which says what it bills
 * besides tokens (images, minutes, characters); a form's worst case is read from what it showed
 * before its file.
 */
export function estimateRequest(
  cost: Cost,
  model: string | undefined,
  json: Json | undefined,
  facts: RequestFacts,
  defaultMaxOutput: number,
  sizes?: ReadonlyMap<string, FieldSize>,
  price?: Price,
  allowedMicros?: AllowedMicros,
): Estimate {
  if (cost.kind === 'allowed') {
    // Charged whatever the answer says: what the call opened is spent out of the gateway's sight.
    return { promptTokens: 0, maxOutputTokens: 0, metered: true, flatMicros: allowedMicros?.(cost.permission) ?? 0 };
  }
  if (cost.kind === 'flat') {
    const micros = flatMicros(cost.charge, model, json);
    // No price here: the model is named so that admission refuses it under a dollar limit.
    return micros === undefined ? { model, promptTokens: 0, maxOutputTokens: 0, metered: true } : { promptTokens: 0, maxOutputTokens: 0, metered: true, flatMicros: micros };
  }
  if (cost.kind === 'capped') {
    const cap = (field: string): number => {
      const value = json?.[field];
      return typeof value === 'number' && Number.isSafeInteger(value) && value > 0 ? value : 0;
    };
    return { model, promptTokens: cap(cost.promptCap), maxOutputTokens: cap(cost.outputCap), metered: true, chargeWorstCase: true };
  }
  if (cost.kind === 'free' || cost.kind === 'unbounded' || cost.kind === 'later') return UNMETERED;
  if (cost.kind === 'model' && cost.form && facts.form) {
    const cap = (model ? outputCap(model) : undefined) ?? defaultMaxOutput;
    return { model, metered: true, silent: cost.form === 'audio' ? 'audio' : undefined, ...formEstimate(cost.form, model, facts.form, price, cap) };
  }
  const shape = cost.kind === 'tokens' ? SHAPES.get(cost.shape) : undefined;
  if (!shape || !json) return { model, promptTokens: 0, maxOutputTokens: 0, metered: true };
  // OpenAI answers 400 to a max_tokens above the model's cap, so no answer runs past it: the worst
  // case counts at most the cap per answer (were the catalogue behind a new model, settling still
  // charges the real usage). Past that, what the ledger can count bounds it (src/quota/amounts.ts).
  const modelCap = model ? outputCap(model) : undefined;
  const maxTokens = facts.maxTokens === undefined || modelCap === undefined ? facts.maxTokens : Math.min(facts.maxTokens, modelCap);
  const cap = maxTokens ?? modelCap ?? defaultMaxOutput;
  const reader: PromptReader = sizes ? new MeasuredPrompt(sizes) : new ParsedPrompt(json);
  let prompt: number | undefined;
  const outputBound: OutputBound =
    maxTokens !== undefined
      ? { tokens: maxTokens, from: maxTokens === facts.maxTokens ? 'request' : 'request_capped' }
      : cost.kind === 'tokens' && cost.shape === 'completions'
        ? { tokens: COMPLETIONS_DEFAULT_MAX, from: 'api_default' }
        : { tokens: cap, from: modelCap !== undefined ? 'model_cap' : 'default_setting' };
  let maxOutputTokens = shape.output(json, cap, maxTokens, reader.prompts('prompt'));
  let units: Units | undefined;
  // Images and speech: their output follows from what they ask for, not from a token cap.
  const shapeName = cost.kind === 'tokens' ? cost.shape : undefined;
  if (shapeName === 'images') {
    const { n, image } = jsonImages(json, sizes !== undefined);
    ({ maxOutputTokens, units } = imagesEstimate(price, n, image, 0));
  }
  if (shapeName === 'speech') {
    // A string's length counts UTF-16 units, never fewer than its characters; past PARSE_BYTES, its UTF-8 bytes.
    const characters = typeof json.input === 'string' ? json.input.length : (sizes?.get('input')?.walked ?? 0);
    ({ maxOutputTokens, units } = speechEstimate(price, characters, 0));
  }
  return {
    model,
    metered: true,
    // Images and speech are bounded by what they ask for, not by an output bound to explain.
    outputBound: shapeName === 'images' || shapeName === 'speech' ? undefined : outputBound,
    maxOutputTokens,
    units,
    silent: shapeName === 'speech' ? 'speech' : undefined,
    // Counted on first use: a request whose user has no token or dollar limit, and whose answer
    // reports its usage, is never tokenized at all.
    get promptTokens(): number {
      if (prompt === undefined) {
        prompt = 0;
        for (const [reading, field] of shape.prompt) prompt += reader[reading](field);
      }
      return prompt;
    },
  };
}
