// The worst case of what a request bills besides the tokens of its text: images (per image, or as
// image tokens), audio (per minute, or as audio tokens) and characters of speech. Which of them a
// model bills follows from its price (src/quota/prices.ts). The bounds, each documented in
// docs/prices.md:
//   - n: a form's `n` after its file is taken at the API's maximum, 10; a size or quality after
//     the file (or `auto`) at the dearest;
//   - audio: a file of B bytes lasts at most B / 750 seconds: 6 kbit/s is the least bitrate of the
//     formats OpenAI takes (Opus in ogg or webm); OpenAI refuses files above 25 MB, so no more
//     than 25 MB counts. A form sent without a Content-Length counts as its size limit;
//   - audio tokens: at most 20 a second (OpenAI counts 10 a second for input audio, 20 for output
//     audio), and never more than the model's context window;
//   - gpt-image-* output: OpenAI's table of image tokens by size and quality (6,240 at most);
//     an edit's input: a 32,000-character prompt and 16 images of at most 8,000 tokens each;
//   - gpt-4o-mini-tts output: 10 audio tokens per input character (speed 0.25 of a slow voice, at
//     20 tokens a second, is about 8).
import * as catalogue from 'gpt-tokenizer/models';
import type { FormFacts } from '../relay/body.js';
import type { ImageChoice, Price } from './prices.js';

/** Units a request bills besides tokens: the most it may use, or the exact count (characters). */
export interface Units {
  images?: number;
  /** The size and quality its images are priced at (src/quota/prices.ts, per image). */
  image?: ImageChoice;
  seconds?: number;
  characters?: number;
}

export interface UnitsEstimate {
  promptTokens: number;
  maxOutputTokens: number;
  units?: Units;
}

/** OpenAI's maximum `n` for image generations, edits and variations. */
export const MAX_IMAGES = 10;
export const LEAST_AUDIO_BYTES_PER_SECOND = 750;
export const MAX_AUDIO_FILE_BYTES = 25 * 1024 * 1024;
export const AUDIO_TOKENS_PER_SECOND = 20;
export const IMAGE_EDIT_INPUT_TOKENS = 32_000 + 16 * 8_000;
export const SPEECH_TOKENS_PER_CHARACTER = 10;
// The API's defaults for a request that surely names no size or quality.
const DEFAULT_SIZE = '1024x1024';
const DEFAULT_QUALITY = 'standard';

// Image output tokens of gpt-image-1 by quality and size (OpenAI's image generation guide).
const IMAGE_TOKENS: Readonly<Record<string, number>> = {
  'low/1024x1024': 272,
  'low/1024x1536': 408,
  'low/1536x1024': 400,
  'medium/1024x1024': 1056,
  'medium/1024x1536': 1584,
  'medium/1536x1024': 1568,
  'high/1024x1024': 4160,
  'high/1024x1536': 6240,
  'high/1536x1024': 6208,
};
export const MOST_IMAGE_TOKENS = Math.max(...Object.values(IMAGE_TOKENS));

const models = catalogue as unknown as Record<string, { context_window?: number } | undefined>;

/** The most output tokens one image of this choice makes; the most of all when it is not in the table. */
export function imageTokens(choice: ImageChoice): number {
  return IMAGE_TOKENS[`${choice.quality}/${choice.size}`] ?? MOST_IMAGE_TOKENS;
}

/** How many images a request asks for: a whole number from 1 to MAX_IMAGES (the upstream refuses others). */
export function imageCount(value: unknown): number {
  const n = typeof value === 'string' && /^\s*\d+\s*$/.test(value) ? Number(value) : value;
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 1 ? Math.min(n, MAX_IMAGES) : 1;
}

const text = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

/** The images of a request: `n` of them, priced per image by a model that does, else as tokens. */
export function imagesEstimate(price: Price | undefined, n: number, image: ImageChoice, promptTokens: number): UnitsEstimate {
  if (price && price.perImage > 0) return { promptTokens, maxOutputTokens: 0, units: { images: n, image } };
  return { promptTokens, maxOutputTokens: n * imageTokens(image) };
}

/** How many images a JSON request asks for, and of what size and quality: the API's defaults for
 * those it does not name. A body too large to parse (`measured`) was read for some top-level
 * settings only, `n` among them but not `size` and `quality`: those are at their dearest. */
export function jsonImages(json: Record<string, unknown>, measured: boolean): { n: number; image: ImageChoice } {
  if (measured) return { n: imageCount(json.n), image: {} };
  return { n: imageCount(json.n), image: { size: text(json.size) ?? DEFAULT_SIZE, quality: text(json.quality) ?? DEFAULT_QUALITY } };
}

/** Speech: per character for a model priced so (tts-1), else its text and a bound on its audio. */
export function speechEstimate(price: Price | undefined, characters: number, promptTokens: number): UnitsEstimate {
  if (price && price.perThousandChars > 0) return { promptTokens, maxOutputTokens: 0, units: { characters } };
  return { promptTokens, maxOutputTokens: characters * SPEECH_TOKENS_PER_CHARACTER };
}

/** The longest an audio file of `bytes` bytes can play, in whole seconds. */
export function audioSeconds(bytes: number): number {
  return Math.ceil(Math.min(bytes, MAX_AUDIO_FILE_BYTES) / LEAST_AUDIO_BYTES_PER_SECOND);
}

/** The worst case of a form (a transcription, a translation, an image edit or variation). */
export function formEstimate(shape: 'audio' | 'images', model: string | undefined, form: FormFacts, price: Price | undefined, outputCap: number): UnitsEstimate {
  const { fields, complete } = form;
  if (shape === 'audio') {
    const seconds = audioSeconds(form.bytes);
    if (price && price.perMinute > 0) return { promptTokens: 0, maxOutputTokens: 0, units: { seconds } };
    const window = model === undefined ? undefined : models[model]?.context_window;
    const audio = seconds * AUDIO_TOKENS_PER_SECOND;
    return { promptTokens: window === undefined ? audio : Math.min(audio, window), maxOutputTokens: outputCap };
  }
  // A field the form does not show before its file may come after it: its worst.
  const n = fields.has('n') ? imageCount(fields.get('n')) : complete ? 1 : MAX_IMAGES;
  const image: ImageChoice = {
    size: fields.get('size') ?? (complete ? DEFAULT_SIZE : undefined),
    quality: fields.get('quality') ?? (complete ? DEFAULT_QUALITY : undefined),
  };
  return imagesEstimate(price, n, image, price && price.perImage > 0 ? 0 : IMAGE_EDIT_INPUT_TOKENS);
}
