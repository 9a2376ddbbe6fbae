// A user's limits on the command line: one flag per limit of the README's "Users, limits and
// quotas" (--rpm, --usd-per-day ...), shared by `users create` and `users update`, and their
// one-line description.
import type { Limits } from '../store/types.js';
import type { OptionSpec, OptionValues } from './command.js';
import { amount, text, wholeNumber } from './options.js';

interface LimitFlag {
  flag: string;
  field: keyof Limits;
  money: boolean;
  help: string;
}

// In the order of the README, which is also the order shown.
const LIMIT_FLAGS: readonly LimitFlag[] = [
  { flag: 'rpm', field: 'rpm', money: false, help: 'requests per minute' },
  { flag: 'tpm', field: 'tpm', money: false, help: 'tokens per minute' },
  { flag: 'tokens-per-day', field: 'tokensPerDay', money: false, help: 'tokens per UTC day' },
  { flag: 'tokens-per-month', field: 'tokensPerMonth', money: false, help: 'tokens per UTC month' },
  { flag: 'usd-per-day', field: 'usdPerDay', money: true, help: 'US dollars per UTC day' },
  { flag: 'usd-per-month', field: 'usdPerMonth', money: true, help: 'US dollars per UTC month' },
  { flag: 'max-concurrent', field: 'maxConcurrent', money: false, help: 'requests in flight at once' },
];

/** The value of a limit flag that removes the limit (`users update` only). */
export const UNLIMITED = 'unlimited';

/** The limit flags as options; `removable` when the value `unlimited` may remove one. */
export function limitOptions(removable: boolean): Record<string, OptionSpec> {
  const options: Record<string, OptionSpec> = {};
  for (const l of LIMIT_FLAGS) {
    const help = `limit: ${l.help}${removable ? `; "${UNLIMITED}" removes it` : ''}`;
    options[l.flag] = { type: 'string', value: l.money ? 'USD' : 'N', help };
  }
  return options;
}

/** The limits the flags give; absent flags are absent limits. */
export function limitsFrom(options: OptionValues): Limits {
  return mergeLimits({}, limitChanges(options, false));
}

/** What the flags change: a number sets a limit, null removes it (`--rpm unlimited`). */
export function limitChanges(options: OptionValues, removable: boolean): Partial<Record<keyof Limits, number | null>> {
  const changes: Partial<Record<keyof Limits, number | null>> = {};
  const or = removable ? `"${UNLIMITED}"` : undefined;
  for (const l of LIMIT_FLAGS) {
    if (removable && text(options, l.flag) === UNLIMITED) {
      changes[l.field] = null;
      continue;
    }
    const value = l.money ? amount(options, l.flag, or) : wholeNumber(options, l.flag, or);
    if (value !== undefined) changes[l.field] = value;
  }
  return changes;
}

/** `limits` with the changes made: set, replaced or removed one by one, the others kept. */
export function mergeLimits(limits: Limits, changes: Partial<Record<keyof Limits, number | null>>): Limits {
  const merged: Limits = { ...limits };
  for (const [field, value] of Object.entries(changes) as Array<[keyof Limits, number | null]>) {
    if (value === null) delete merged[field];
    else merged[field] = value;
  }
  return merged;
}

export function describeLimits(limits: Limits | undefined): string {
  const set = LIMIT_FLAGS.filter((l) => limits?.[l.field] !== undefined).map((l) => `${l.field}=${limits?.[l.field]}`);
  return set.length ? set.join(' ') : 'unlimited';
}
