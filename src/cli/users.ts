// keyrelay users create|list|show|delete
import type { Limits, User } from '../store/types.js';
import type { Command, OptionSpec, OptionValues } from './command.js';
import { answer, fields, flatten, orDash, table } from './format.js';
import { amount, isoTime, list, text, wholeNumber } from './options.js';

/** A user as the admin API shows it; `usage` (the current windows) only on `GET /admin/users/{id}`. */
export interface ApiUser extends User {
  usage?: unknown;
}

interface LimitFlag {
  flag: string;
  field: keyof Limits;
  money: boolean;
  help: string;
}

// In the order of CONTRACT.md, which is also the order shown.
const LIMIT_FLAGS: readonly LimitFlag[] = [
  { flag: 'rpm', field: 'rpm', money: false, help: 'requests per minute' },
  { flag: 'tpm', field: 'tpm', money: false, help: 'tokens per minute' },
  { flag: 'tokens-per-day', field: 'tokensPerDay', money: false, help: 'tokens per UTC day' },
  { flag: 'tokens-per-month', field: 'tokensPerMonth', money: false, help: 'tokens per UTC month' },
  { flag: 'usd-per-day', field: 'usdPerDay', money: true, help: 'US dollars per UTC day' },
  { flag: 'usd-per-month', field: 'usdPerMonth', money: true, help: 'US dollars per UTC month' },
  { flag: 'max-concurrent', field: 'maxConcurrent', money: false, help: 'requests in flight at once' },
];

const CREATE_OPTIONS: Record<string, OptionSpec> = {
  name: { type: 'string', value: 'NAME', help: 'a display name' },
  models: { type: 'string', value: 'a,b', help: 'allowed models, glob patterns (default: any)' },
  'expires-at': { type: 'string', value: 'ISO', help: 'when the user and all its keys stop working' },
};
for (const l of LIMIT_FLAGS) CREATE_OPTIONS[l.flag] = { type: 'string', value: l.money ? 'USD' : 'N', help: `limit: ${l.help}` };

function limitsFrom(options: OptionValues): Limits {
  const limits: Limits = {};
  for (const l of LIMIT_FLAGS) {
    const value = l.money ? amount(options, l.flag) : wholeNumber(options, l.flag);
    if (value !== undefined) limits[l.field] = value;
  }
  return limits;
}

export function describeLimits(limits: Limits | undefined): string {
  const set = LIMIT_FLAGS.filter((l) => limits?.[l.field] !== undefined).map((l) => `${l.field}=${limits?.[l.field]}`);
  return set.length ? set.join(' ') : 'unlimited';
}

function describeModels(models: string[] | undefined): string {
  return models?.length ? models.join(', ') : 'any';
}

function userFields(user: ApiUser): string {
  const rows: Array<[string, string]> = [
    ['id', user.id],
    ['name', orDash(user.name)],
    ['models', describeModels(user.models)],
    ['expiresAt', user.expiresAt ?? 'never'],
    ['createdAt', user.createdAt],
    ['limits', describeLimits(user.limits)],
  ];
  if (user.usage !== undefined) rows.push(...flatten(user.usage, 'usage'));
  return fields(rows);
}

const id = (value: string): string => encodeURIComponent(value);

export const usersCommands: readonly Command[] = [
  {
    path: ['users', 'create'],
    args: ['<id>'],
    options: CREATE_OPTIONS,
    summary: 'create a user, with optional models, expiry and limits',
    async run(ctx, [userId], options) {
      const body = {
        id: userId,
        name: text(options, 'name'),
        models: list(options, 'models'),
        expiresAt: isoTime(options, 'expires-at'),
        limits: limitsFrom(options),
      };
      const user = await ctx.admin().post<ApiUser>('/users', body);
      return answer(ctx, user, (u) => `Created user ${u.id}.\n${userFields(u)}`);
    },
  },
  {
    path: ['users', 'list'],
    args: [],
    summary: 'list the users',
    async run(ctx) {
      const page = await ctx.admin().get<{ data: ApiUser[] }>('/users');
      return answer(ctx, page, ({ data }) => {
        if (data.length === 0) return 'No users yet. Create one with: keyrelay users create <id>\n';
        const rows = data.map((u) => [u.id, orDash(u.name), describeModels(u.models), describeLimits(u.limits), u.expiresAt ?? 'never', u.createdAt]);
        return table(['ID', 'NAME', 'MODELS', 'LIMITS', 'EXPIRES', 'CREATED'], rows);
      });
    },
  },
  {
    path: ['users', 'show'],
    args: ['<id>'],
    summary: 'show one user: models, expiry, limits, usage',
    async run(ctx, [userId]) {
      const user = await ctx.admin().get<ApiUser>(`/users/${id(userId ?? '')}`);
      return answer(ctx, user, userFields);
    },
  },
  {
    path: ['users', 'delete'],
    args: ['<id>'],
    summary: 'delete a user; its keys stop working at once',
    async run(ctx, [userId]) {
      const result = await ctx.admin().delete<{ id: string }>(`/users/${id(userId ?? '')}`);
      return answer(ctx, result, (r) => `Deleted user ${r.id}; its keys no longer work.\n`);
    },
  },
];
