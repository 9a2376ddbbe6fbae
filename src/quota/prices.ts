// Model prices and the money a request costs, in integer micro-dollars.
//
// The built-in table is OpenAI's list prices (standard tier, US dollars) from
// https://platform.openai.com/docs/pricing and https://openai.com/api/pricing, as published in
// late 2025 (text, audio and image tokens per million; images per image; whisper-1 per minute;
// tts-1 per million characters). gpt-tokenizer (the tokenizer used for estimates) ships a price
// table too, but its 4.0.0 data gives gpt-4o and gpt-5 at $10/$30 and has no price for gpt-4o-mini,
// so it is not used. Operators override or add models under `prices:` in the settings; keys there
// may be globs (`llama-*`). docs/prices.md says how each kind of usage is priced.
import type { PriceConfig } from '../config.js';
import { globMatcher } from '../glob.js';
import type { TokenUsage } from './usage.js';

/** A model's rates. Tokens: micro-dollars per million (US dollars per token, times a million,
 * times a million). Units: micro-dollars per image, per minute of audio, per 1,000 characters. */
export interface Price {
  input: number;
  cachedInput: number;
  output: number;
  audioInput: number;
  cachedAudioInput: number;
  audioOutput: number;
  imageInput: number;
  imageOutput: number;
  /** Per image, at the size and quality of the request (the dearest when they are not known). */
  perImage: number;
  perMinute: number;
  perThousandChars: number;
}

/** The size and quality of the images a request asks for; undefined: not known (the dearest). */
export interface ImageChoice {
  size?: string;
  quality?: string;
}

type Entry = PriceConfig;

// Per image, by `quality/size` or by `size` alone (the key a request's choice is looked up by).
const DALL_E_2 = { '256x256': 0.016, '512x512': 0.018, '1024x1024': 0.02 };
const DALL_E_3 = {
  'standard/1024x1024': 0.04,
  'standard/1024x1792': 0.08,
  'standard/1792x1024': 0.08,
  'hd/1024x1024': 0.08,
  'hd/1024x1792': 0.12,
  'hd/1792x1024': 0.12,
};

const BUILT_IN: Record<string, Entry> = {
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
  'gpt-4o-search-preview': { input: 2.5, output: 10 },
  'gpt-4o-mini-search-preview': { input: 0.15, output: 0.6 },
  // Audio: text and audio tokens priced apart.
  'gpt-audio': { input: 2.5, output: 10, audioInput: 32, audioOutput: 64 },
  'gpt-audio-mini': { input: 0.6, output: 2.4, audioInput: 10, audioOutput: 20 },
  'gpt-4o-audio-preview': { input: 2.5, output: 10, audioInput: 40, audioOutput: 80 },
  'gpt-4o-mini-audio-preview': { input: 0.15, output: 0.6, audioInput: 10, audioOutput: 20 },
  // Realtime: text, audio and (gpt-realtime) image input, each with its cached rate.
  'gpt-realtime': { input: 4, cachedInput: 0.4, output: 16, audioInput: 32, cachedAudioInput: 0.4, audioOutput: 64, imageInput: 5 },
  'gpt-realtime-mini': { input: 0.6, cachedInput: 0.06, output: 2.4, audioInput: 10, cachedAudioInput: 0.3, audioOutput: 20, imageInput: 0.8 },
  'gpt-4o-realtime-preview': { input: 5, cachedInput: 2.5, output: 20, audioInput: 40, cachedAudioInput: 2.5, audioOutput: 80 },
  'gpt-4o-mini-realtime-preview': { input: 0.6, cachedInput: 0.3, output: 2.4, audioInput: 10, cachedAudioInput: 0.3, audioOutput: 20 },
  // Transcription and speech.
  'gpt-4o-transcribe': { input: 2.5, output: 10, audioInput: 6 },
  'gpt-4o-mini-transcribe': { input: 1.25, output: 5, audioInput: 3 },
  'gpt-4o-mini-tts': { input: 0.6, output: 12, audioOutput: 12 },
  'whisper-1': { input: 0, perMinute: 0.006 },
  'tts-1': { input: 0, perMillionChars: 15 },
  'tts-1-hd': { input: 0, perMillionChars: 30 },
  // Images: gpt-image-* bill tokens (their output is image tokens); dall-e-* bill per image.
  'gpt-image-1': { input: 5, cachedInput: 1.25, output: 40, imageInput: 10, imageOutput: 40 },
  'gpt-image-1-mini': { input: 2, cachedInput: 0.2, output: 8, imageInput: 2.5, imageOutput: 8 },
  'gpt-image-1.5': { input: 5, cachedInput: 1.25, output: 10, imageInput: 8, imageOutput: 32 },
  'dall-e-2': { input: 0, perImage: DALL_E_2 },
  'dall-e-3': { input: 0, perImage: DALL_E_3 },
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
  'text-embedding-3-small': { input: 0.02 },
  'text-embedding-3-large': { input: 0.13 },
  'text-embedding-ada-002': { input: 0.1 },
  'omni-moderation-latest': { input: 0 },
  'text-moderation-latest': { input: 0 },
};

// Dated snapshots cost what their alias costs unless the table names them (gpt-4o-2024-05-13).
const SNAPSHOT = /-(\d{4}-\d{2}-\d{2}|\d{4})$/;

const toMicros = (usd: number): number => Math.round(usd * 1_000_000);

/** A model's rates, with its per-image table kept aside for the request's size and quality. */
interface Rates {
  price: Price;
  perImage: Readonly<Record<string, number>>;
}

function ratesOf(entry: Entry): Rates {
  const input = toMicros(entry.input);
  const cachedInput = toMicros(entry.cachedInput ?? entry.input);
  const output = toMicros(entry.output ?? 0);
  const audioInput = entry.audioInput === undefined ? input : toMicros(entry.audioInput);
  const perImage: Record<string, number> = {};
  for (const [key, usd] of Object.entries(entry.perImage ?? {})) perImage[key] = toMicros(usd);
  return {
    perImage,
    price: {
      input,
      cachedInput,
      output,
      audioInput,
      // Without a rate of its own, cached audio costs what audio costs: never less than billed.
      cachedAudioInput: entry.cachedAudioInput === undefined ? audioInput : toMicros(entry.cachedAudioInput),
      audioOutput: entry.audioOutput === undefined ? output : toMicros(entry.audioOutput),
      imageInput: entry.imageInput === undefined ? input : toMicros(entry.imageInput),
      imageOutput: entry.imageOutput === undefined ? output : toMicros(entry.imageOutput),
      perImage: Math.max(0, ...Object.values(perImage)),
      perMinute: toMicros(entry.perMinute ?? 0),
      // US dollars per million characters are micro-dollars per character: times 1,000 per 1,000.
      perThousandChars: Math.round((entry.perMillionChars ?? 0) * 1_000),
    },
  };
}

/** The per-image rate of a choice: `quality/size`, else `size`, else the dearest (a choice the
 * table does not know, or one not known at all, is never priced below what it may cost). */
function imageRate(rates: Rates, choice: ImageChoice | undefined): number {
  const { size, quality } = choice ?? {};
  if (size === undefined) return rates.price.perImage;
  return (quality === undefined ? undefined : rates.perImage[`${quality}/${size}`]) ?? rates.perImage[size] ?? rates.price.perImage;
}

export class PriceTable {
  private readonly exact = new Map<string, Rates>();
  private readonly patterns: Array<{ match: (model: string) => boolean; rates: Rates }> = [];

  constructor(overrides: Record<string, PriceConfig> = {}) {
    for (const [model, entry] of Object.entries(BUILT_IN)) this.exact.set(model, ratesOf(entry));
    for (const [model, entry] of Object.entries(overrides)) {
      if (/[*?]/.test(model)) this.patterns.push({ match: globMatcher(model), rates: ratesOf(entry) });
      else this.exact.set(model, ratesOf(entry));
    }
  }

  /** The models priced by name (not by a glob of the settings). */
  names(): string[] {
    return [...this.exact.keys()];
  }

  private rates(model: string): Rates | undefined {
    const exact = this.exact.get(model);
    if (exact) return exact;
    const pattern = this.patterns.find((p) => p.match(model));
    if (pattern) return pattern.rates;
    const alias = model.replace(SNAPSHOT, '');
    return alias === model ? undefined : this.exact.get(alias);
  }

  /** The model's price (its per-image rate for `image`), or undefined when neither the settings
   * nor the table know it. */
  lookup(model: string, image?: ImageChoice): Price | undefined {
    const rates = this.rates(model);
    if (!rates) return undefined;
    return image === undefined ? rates.price : { ...rates.price, perImage: imageRate(rates, image) };
  }
}

const nonNegative = (n: number | undefined): number => (n === undefined || !(n > 0) ? 0 : n);

/** What the usage costs, rounded up to a whole micro-dollar: the gateway never undercharges. Each
 * kind at its own rate: text (cached or not), audio (cached or not), image tokens, then images,
 * minutes and characters. Details larger than their total are cut to it. */
export function costMicros(price: Price, usage: TokenUsage): number {
  const input = nonNegative(usage.input);
  const output = nonNegative(usage.output);
  const audioIn = Math.min(nonNegative(usage.audioInput), input);
  const imageIn = Math.min(nonNegative(usage.imageInput), input - audioIn);
  const cached = Math.min(nonNegative(usage.cachedInput), input);
  const cachedAudio = Math.min(nonNegative(usage.cachedAudioInput), cached, audioIn);
  // Cached tokens that are not audio are priced as cached text (OpenAI reports no split of them).
  const cachedOther = Math.min(cached - cachedAudio, input - audioIn);
  const textIn = Math.max(0, input - audioIn - imageIn - cachedOther);
  const audioOut = Math.min(nonNegative(usage.audioOutput), output);
  const imageOut = Math.min(nonNegative(usage.imageOutput), output - audioOut);
  const textOut = output - audioOut - imageOut;
  const perMillion =
    textIn * price.input +
    cachedOther * price.cachedInput +
    (audioIn - cachedAudio) * price.audioInput +
    cachedAudio * price.cachedAudioInput +
    imageIn * price.imageInput +
    textOut * price.output +
    audioOut * price.audioOutput +
    imageOut * price.imageOutput;
  const units =
    nonNegative(usage.images) * price.perImage +
    (nonNegative(usage.seconds) * price.perMinute) / 60 +
    (nonNegative(usage.characters) * price.perThousandChars) / 1000;
  return Math.ceil(perMillion / 1_000_000 + units);
}

/** The most a request may cost: every input token at the model's dearest input rate and every
 * output token at its dearest output rate (a realtime or audio answer may be all audio), plus its
 * images, minutes and characters. */
export function worstCostMicros(price: Price, tokens: { input: number; output: number }, units: Pick<TokenUsage, 'images' | 'seconds' | 'characters'> = {}): number {
  const inRate = Math.max(price.input, price.cachedInput, price.audioInput, price.cachedAudioInput, price.imageInput);
  const outRate = Math.max(price.output, price.audioOutput, price.imageOutput);
  const perMillion = nonNegative(tokens.input) * inRate + nonNegative(tokens.output) * outRate;
  return costMicros(price, { input: 0, cachedInput: 0, output: 0, ...units }) + Math.ceil(perMillion / 1_000_000);
}
