// Prices of work OpenAI bills per call rather than per token, read from the request: the `flat`
// decisions of src/operations/costs.ts. OpenAI's list prices (https://platform.openai.com/docs/pricing):
//   - videos, per second generated: sora-2 $0.10 (720p); sora-2-pro $0.30 at 720x1280 or
//     1280x720, $0.50 at 1024x1792 or 1792x1024;
//   - containers, per 20-minute session by memory limit: 1g $0.03, 4g $0.12, 16g $0.48, 64g $1.92.
// What the request does not show is taken at its worst: a form's fields past `model` are not read,
// so a video sent as a form is priced at its model's longest length and highest price per second.
import type { FlatCharge } from '../operations/costs.js';

const SNAPSHOT = /-\d{4}-\d{2}-\d{2}$/;
const usd = (dollars: number): number => Math.round(dollars * 1_000_000);

/** Micro-dollars per second of video, by model and size. */
const VIDEO_PER_SECOND: Record<string, Record<string, number>> = {
  'sora-2': { '720x1280': usd(0.1), '1280x720': usd(0.1) },
  'sora-2-pro': { '720x1280': usd(0.3), '1280x720': usd(0.3), '1024x1792': usd(0.5), '1792x1024': usd(0.5) },
};
const VIDEO_SECONDS = [4, 8, 12];
const EXTENSION_SECONDS = [4, 8, 12, 16, 20];
const DEFAULT_VIDEO_SECONDS = 4;
const DEFAULT_VIDEO_SIZE = '720x1280';
const HIGHEST_PER_SECOND = Math.max(...Object.values(VIDEO_PER_SECOND).flatMap((sizes) => Object.values(sizes)));

const CONTAINER: Record<string, number> = { '1g': usd(0.03), '4g': usd(0.12), '16g': usd(0.48), '64g': usd(1.92) };
const DEFAULT_CONTAINER = '1g';

type Json = Record<string, unknown>;

/** A number of seconds as the API takes it (a string, or a number), else the longest allowed. */
function seconds(value: unknown, allowed: number[], fallback: number): number {
  if (value === undefined || value === null) return fallback;
  const n = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value;
  return typeof n === 'number' && allowed.includes(n) ? n : Math.max(...allowed);
}

/** The price per second of a model at a size; `size` undefined: a form, whose size is not read. */
function videoPerSecond(model: string, json: Json | undefined): number | undefined {
  const sizes = VIDEO_PER_SECOND[model] ?? VIDEO_PER_SECOND[model.replace(SNAPSHOT, '')];
  if (!sizes) return undefined;
  const highest = Math.max(...Object.values(sizes));
  if (json === undefined) return highest;
  const size = json.size;
  // A size left out is the default; one the model does not make the upstream refuses (the
  // reservation is then released), so the highest is only a bound.
  if (size === undefined || size === null) return sizes[DEFAULT_VIDEO_SIZE] ?? highest;
  return (typeof size === 'string' ? sizes[size] : undefined) ?? highest;
}

/**
 * What the call costs, in micro-dollars; undefined when the model has no price here. `json` is
 * undefined for a form (only its `model` is read).
 */
export function flatMicros(charge: FlatCharge, model: string | undefined, json: Json | undefined): number | undefined {
  switch (charge) {
    case 'video_seconds': {
      if (model === undefined) return undefined;
      const perSecond = videoPerSecond(model, json);
      if (perSecond === undefined) return undefined;
      const length = json ? seconds(json.seconds, VIDEO_SECONDS, DEFAULT_VIDEO_SECONDS) : Math.max(...VIDEO_SECONDS);
      return perSecond * length;
    }
    case 'video_extension_seconds':
      return HIGHEST_PER_SECOND * (json ? seconds(json.seconds, EXTENSION_SECONDS, Math.max(...EXTENSION_SECONDS)) : Math.max(...EXTENSION_SECONDS));
    case 'container_memory': {
      const limit = json?.memory_limit ?? DEFAULT_CONTAINER;
      return typeof limit === 'string' && CONTAINER[limit] !== undefined ? CONTAINER[limit] : Math.max(...Object.values(CONTAINER));
    }
  }
}

/** How each flat charge is read, for docs/metering.md. */
export const FLAT_CHARGE_TEXT: Record<FlatCharge, { reserves: string; charges: string }> = {
  video_seconds: {
    reserves: '`seconds` (default 4) × the price per second of `model` (default sora-2) at `size` (default 720x1280); a form: 12 s at the model\'s highest price',
    charges: 'the reservation',
  },
  video_extension_seconds: {
    reserves: '`seconds` × $0.50 (the highest price per second: the source video\'s model is not in the request); a form: 20 s',
    charges: 'the reservation',
  },
  container_memory: {
    reserves: 'one session at `memory_limit` (default 1g): $0.03, $0.12, $0.48 or $1.92',
    charges: 'the reservation',
  },
};
