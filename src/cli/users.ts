// keyrelay users create|list|show|update|delete
import { PERMISSIONS } from '../operations/costs.js';
import type { User } from '../store/types.js';
import { type Command, type Context, type OptionSpec, type OptionValues, UsageError } from './command.js';
import { answer, fields, orDash, table } from './format.js';
import { describeLimits, limitChanges, limitOptions, limitsFrom, mergeLimits } from './limits.js';
import { isoTime, list, text } from './options.js';
import { type UserUsage, usageTable } from './user-usage.js';

/** A user as the admin API shows it; `usage` (the current windows) only on `GET /admin/users/{id}`. */
export interface ApiUser extends User {
  usage?: UserUsage;
  /** What the admin API warns of after a create or an update (models a dollar limit will refuse). */
  warnings?: string[];
}

/** The admin API's warnings, on stderr: they reach the person with --json too. */
function warn(ctx: Context, user: ApiUser): void {
  for (const warning of user.warnings ?? []) ctx.io.stderr.write(`keyrelay: warning: ${warning}\n`);
}

const CREATE_OPTIONS: Record<string, OptionSpec> = {
  name: { type: 'string', value: 'NAME', help: 'a display name' },
  models: { type: 'string', value: 'a,b', help: 'allowed models, glob patterns (default: any)' },
  'expires-at': { type: 'string', value: 'ISO', help: 'when the user and all its keys stop working' },
  allow: { type: 'string', value: 'a,b', help: `operations refused unless allowed that the user may call: ${PERMISSIONS.join(', ')}` },
  origins: { type: 'string', value: 'a,b', help: 'browser page origins the keys may be used from, scheme://host[:port] (default: any; docs/browsers.md)' },
  'allow-past': { type: 'boolean', help: 'accept an --expires-at already past (the user starts expired)' },
  ...limitOptions(false),
};

const UPDATE_OPTIONS: Record<string, OptionSpec> = {
  name: { type: 'string', value: 'NAME', help: 'a new display name' },
  models: { type: 'string', value: 'a,b', help: 'allowed models, glob patterns, in place of the current list' },
  'any-model': { type: 'boolean', help: 'allow every model again' },
  'expires-at': { type: 'string', value: 'ISO', help: 'when the user and all its keys stop working' },
  'no-expiry': { type: 'boolean', help: 'the user no longer expires' },
  allow: { type: 'string', value: 'a,b', help: 'operations refused unless allowed that the user may call, in place of the current list' },
  'allow-none': { type: 'boolean', help: 'allow none of the operations refused unless allowed' },
  origins: { type: 'string', value: 'a,b', help: 'browser page origins the keys may be used from, in place of the current list' },
  'any-origin': { type: 'boolean', help: 'let the keys be used from any page and any client again' },
  ...limitOptions(true),
  'clear-limits': { type: 'boolean', help: 'remove every limit not given on this line' },
};

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
  // Shown only when set: most users are allowed none of these operations.
  if (user.allow?.length) rows.push(['allow', user.allow.join(', ')]);
  if (user.origins?.length) rows.push(['origins', user.origins.join(', ')]);
  return fields(rows);
}

function shown(user: ApiUser): string {
  const usage = user.usage === undefined ? '' : usageTable(user.usage);
  return userFields(user) + (usage ? `\n${usage}` : '');
}

/** `--allow`, each name checked before anything is sent. */
function permissions(options: OptionValues): string[] | undefined {
  const names = list(options, 'allow');
  const unknown = names?.filter((name) => !(PERMISSIONS as readonly string[]).includes(name));
  if (unknown?.length) throw new UsageError(`--allow: unknown ${unknown.join(', ')}; one of ${PERMISSIONS.join(', ')}`);
  return names;
}

const id = (value: string): string => encodeURIComponent(value);

function either(options: OptionValues, a: string, b: string): void {
  if (options[a] !== undefined && options[b] !== undefined) throw new UsageError(`--${a} and --${b} contradict each other`);
}

/**
 * The body of PATCH /admin/users/{id}. PATCH replaces `limits` whole, so limits given one by one
 * are merged into the user's current ones, read first; --clear-limits starts from none instead.
 */
async function userPatch(ctx: Context, userId: string, options: OptionValues): Promise<Record<string, unknown>> {
  either(options, 'models', 'any-model');
  either(options, 'expires-at', 'no-expiry');
  either(options, 'allow', 'allow-none');
  either(options, 'origins', 'any-origin');
  // Every value is checked before anything is sent.
  const changes = limitChanges(options, true);
  const patch: Record<string, unknown> = {};
  const name = text(options, 'name');
  if (name !== undefined) patch.name = name;
  // An empty list is what the API stores for "any model".
  const models = options['any-model'] === true ? [] : list(options, 'models');
  if (models !== undefined) patch.models = models;
  const expiresAt = options['no-expiry'] === true ? null : isoTime(options, 'expires-at');
  if (expiresAt !== undefined) patch.expiresAt = expiresAt;
  const allow = options['allow-none'] === true ? null : permissions(options);
  if (allow !== undefined) patch.allow = allow;
  const origins = options['any-origin'] === true ? null : list(options, 'origins');
  if (origins !== undefined) patch.origins = origins;
  const clear = options['clear-limits'] === true;
  if (!clear && Object.keys(changes).length === 0) {
    if (Object.keys(patch).length === 0) throw new UsageError('nothing to change; "keyrelay users update --help" lists the options');
    return patch;
  }
  // Between this read and the PATCH another change of the limits would be lost: the API has no
  // conditional update to prevent it.
  const current = clear ? {} : (await ctx.admin().get<ApiUser>(`/users/${id(userId)}`)).limits;
  patch.limits = mergeLimits(current ?? {}, changes);
  return patch;
}

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
        allow: permissions(options),
        origins: list(options, 'origins'),
      };
      const user = await ctx.admin().post<ApiUser>(options['allow-past'] === true ? '/users?allowPast=true' : '/users', body);
      warn(ctx, user);
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
    summary: 'show one user: models, expiry, limits, and usage in the current windows',
    async run(ctx, [userId]) {
      const user = await ctx.admin().get<ApiUser>(`/users/${id(userId ?? '')}`);
      return answer(ctx, user, shown);
    },
  },
  {
    path: ['users', 'update'],
    args: ['<id>'],
    options: UPDATE_OPTIONS,
    summary: "change a user's name, models, expiry, limits, allowed operations or origins; limits not named are kept",
    async run(ctx, [userId = ''], options) {
      const patch = await userPatch(ctx, userId, options);
      const user = await ctx.admin().patch<ApiUser>(`/users/${id(userId)}`, patch);
      warn(ctx, user);
      return answer(ctx, user, (u) => `Updated user ${u.id}.\n${userFields(u)}`);
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
