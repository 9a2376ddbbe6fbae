// Model prices and the money a request costs, in integer micro-dollars.
//
// The built-in table is OpenAI's list prices (standard tier, US dollars per million tokens) from
// https://openai.com/api/pricing and https://platform.openai.com/docs/pricing, as published in
// August 2025. gpt-tokenizer (the tokenizer used for estimates) ships a price table too, but its
// 4.0.0 data gives gpt-4o and gpt-5 at $10/$30 and has no price for gpt-4o-mini, so it is not
// used. Operators override or add models under `prices:` in the settings; keys there may be
// globs (`llama-*`).
import type { PriceConfig } from '../config.js';
import { globMatcher } from '../glob.js';
import type { TokenUsage } from './usage.js';

/** Micro-dollars per million tokens: US dollars per token, times a million, times a million. */
export interface Price {
  input: number;
  cachedInput: number;
  output: number;
}

type Table = Record<string, { input: number; cachedInput?: number; output?: number }>;

const BUILT_IN: Table = {
  'gpt-5': { input: 1.25, cachedInput: 0.125, output: 10 },
  'gpt-5-mini': { input: 0.25, cachedInput: 0.025, output: 2 },
  'gpt-5-nano': { input: 0.05, cachedInput: 0.005, output: 0.4 },
  'gpt-5-chat-latest': { input: 1.25, cachedInput: 0.125, output: 10 },
  'gpt-4.1': { input: 2, cachedInput: 0.5, output: 8 },
  'gpt-4.1-mini': { input: 0.4, cachedInput: 0.1, output: 1.6 },
  'gpt-4.1-nano': { input: 0.1, cachedInput: 0.025, output: 0.4 },
  'gpt-4o': { input: 2.5, cachedInput: 1.25, output: 10 },
  'gpt-4o-2024-05-13': { input: 5, output: 15 },
  'chatgpt-4o-latest': { input: 5, output: 15 },
  'gpt-4o-mini': { input: 0.15, cachedInput: 0.075, output: 0.6 },
  'gpt-4o-audio-preview': { input: 2.5, output: 10 },
  'gpt-4o-mini-audio-preview': { input: 0.15, output: 0.6 },
  'gpt-4o-search-preview': { input: 2.5, output: 10 },
  'gpt-4o-mini-search-preview': { input: 0.15, output: 0.6 },
  'gpt-4o-transcribe': { input: 2.5, output: 10 },
  'gpt-4o-mini-transcribe': { input: 1.25, output: 5 },
  'gpt-4o-mini-tts': { input: 0.6, output: 12 },
  o1: { input: 15, cachedInput: 7.5, output: 60 },
  'o1-pro': { input: 150, output: 600 },
  'o1-mini': { input: 1.1, cachedInput: 0.55, output: 4.4 },
  o3: { input: 2, cachedInput: 0.5, output: 8 },
  'o3-pro': { input: 20, output: 80 },
  'o3-mini': { input: 1.1, cachedInput: 0.55, output: 4.4 },
  'o4-mini': { input: 1.1, cachedInput: 0.275, output: 4.4 },
  'gpt-4-turbo': { input: 10, output: 30 },
  'gpt-4': { input: 30, output: 60 },
  'gpt-3.5-turbo': { input: 0.5, output: 1.5 },
  'gpt-3.5-turbo-instruct': { input: 1.5, output: 2 },
  'davinci-002': { input: 2, output: 2 },
  'babbage-002': { input: 0.4, output: 0.4 },
  'gpt-image-1': { input: 5, cachedInput: 1.25, output: 40 },
  'text-embedding-3-small': { input: 0.02 },
  'text-embedding-3-large': { input: 0.13 },
  'text-embedding-ada-002': { input: 0.1 },
  'omni-moderation-latest': { input: 0 },
  'text-moderation-latest': { input: 0 },
};

// Dated snapshots cost what their alias costs unless the table names them (gpt-4o-2024-05-13).
const SNAPSHOT = /-(\d{4}-\d{2}-\d{2}|\d{4})$/;

const toMicros = (usdPerMillion: number): number => Math.round(usdPerMillion * 1_000_000);

function priceOf(entry: { input: number; cachedInput?: number; output?: number }): Price {
  return {
    input: toMicros(entry.input),
    cachedInput: toMicros(entry.cachedInput ?? entry.input),
    output: toMicros(entry.output ?? 0),
  };
}

export class PriceTable {
  private readonly exact = new Map<string, Price>();
  private readonly patterns: Array<{ match: (model: string) => boolean; price: Price }> = [];

  constructor(overrides: Record<string, PriceConfig> = {}) {
    for (const [model, entry] of Object.entries(BUILT_IN)) this.exact.set(model, priceOf(entry));
    for (const [model, entry] of Object.entries(overrides)) {
      if (/[*?]/.test(model)) this.patterns.push({ match: globMatcher(model), price: priceOf(entry) });
      else this.exact.set(model, priceOf(entry));
    }
  }

  /** The models priced by name (not by a glob of the settings). */
  names(): string[] {
    return [...this.exact.keys()];
  }

  /** The model's price, or undefined when neither the settings nor the table know it. */
  lookup(model: string): Price | undefined {
    const exact = this.exact.get(model);
    if (exact) return exact;
    const pattern = this.patterns.find((p) => p.match(model));
    if (pattern) return pattern.price;
    const alias = model.replace(SNAPSHOT, '');
    return alias === model ? undefined : this.exact.get(alias);
  }
}

/** What the usage costs, rounded up to a whole micro-dollar: the gateway never undercharges. */
export function costMicros(price: Price, usage: TokenUsage): number {
  const cached = Math.min(usage.cachedInput, usage.input);
  const perMillion = (usage.input - cached) * price.input + cached * price.cachedInput + usage.output * price.output;
  return Math.ceil(perMillion / 1_000_000);
}
