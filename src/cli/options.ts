// Turns option strings into the values the admin API takes, or a UsageError naming the option.
import { parseIsoTime } from '../iso-time.js';
import { MAX_USD_LIMIT } from '../quota/amounts.js';
import { type OptionValues, UsageError } from './command.js';

export function text(options: OptionValues, name: string): string | undefined {
  const value = options[name];
  return typeof value === 'string' ? value : undefined;
}

/** `or` names another value the caller accepts, for the message: `"unlimited"`. */
export function wholeNumber(options: OptionValues, name: string, or?: string): number | undefined {
  const raw = text(options, name);
  if (raw === undefined) return undefined;
  if (!/^[0-9]+$/.test(raw) || !Number.isSafeInteger(Number(raw))) {
    throw new UsageError(`--${name}: expected a whole number${or ? ` or ${or}` : ''}, got "${raw}"`);
  }
  return Number(raw);
}

export function amount(options: OptionValues, name: string, or?: string): number | undefined {
  const raw = text(options, name);
  if (raw === undefined) return undefined;
  if (!/^[0-9]+(\.[0-9]+)?$/.test(raw)) {
    throw new UsageError(`--${name}: expected an amount in US dollars like 12.5${or ? ` or ${or}` : ''}, got "${raw}"`);
  }
  if (Number(raw) > MAX_USD_LIMIT) throw new UsageError(`--${name}: at most ${MAX_USD_LIMIT} US dollars, got "${raw}"`);
  return Number(raw);
}

/** An ISO 8601 time, sent as the full UTC form the API stores (so `2030-01-01` works too). */
export function isoTime(options: OptionValues, name: string): string | undefined {
  const raw = text(options, name);
  if (raw === undefined) return undefined;
  // A date alone is that day's start, UTC. The rest is checked as the API checks it.
  const ms = parseIsoTime(/^[0-9]{4}-[0-9]{2}-[0-9]{2}$/.test(raw) ? `${raw}T00:00:00Z` : raw);
  if (ms === undefined) {
    throw new UsageError(`--${name}: expected an ISO 8601 time like 2030-01-31T00:00:00Z, got "${raw}"`);
  }
  return new Date(ms).toISOString();
}

export function list(options: OptionValues, name: string): string[] | undefined {
  const raw = text(options, name);
  if (raw === undefined) return undefined;
  const items = raw.split(',').map((s) => s.trim()).filter(Boolean);
  if (items.length === 0) throw new UsageError(`--${name}: expected a comma-separated list, got "${raw}"`);
  return items;
}

/** True when the URL carries a password (`scheme://user:password@host`), parsed or not. */
export function hasPassword(value: string): boolean {
  try {
    if (new URL(value).password !== '') return true;
  } catch {
    // Not a URL the parser takes: look at its shape alone.
  }
  return /^[^:/?#]+:\/\/[^/?#]*:[^/?#]*@/.test(value);
}

// Arguments stay in shell history and show in every `ps` listing, so a password is refused there
// (as a pool key is read from standard input). The message never repeats the value.
export function refusePassword(what: string, values: readonly string[] | undefined, kind: string): void {
  if (!values?.some(hasPassword)) return;
  throw new UsageError(
    `${what}: a URL with a password is not taken on the command line (it would stay in shell history and show in ps). ` +
      `Set it through the admin API with the JSON body read from a file (curl --data @${kind}.json …), or in the settings file.`,
  );
}
