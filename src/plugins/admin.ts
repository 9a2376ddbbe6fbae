// The admin API (README, "Admin API and command line"): users and their keys; upstreams and pool keys are
// admin-upstreams.ts.
// Guarded by KEYRELAY_ADMIN_TOKEN; without one the routes do not exist at all and answer 404.
import { createHash, timingSafeEqual } from 'node:crypto';
import { type Static, type TSchema, Type } from '@sinclair/typebox';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { bearerToken } from '../auth.js';
import { GatewayError } from '../errors.js';
import { isPast, parseIsoTime } from '../iso-time.js';
import { originWarnings } from '../inbound/cors.js';
import { OriginError, parseOrigin } from '../inbound/origins.js';
import { digestKey, displayPrefix, newGatewayKey, newId } from '../keys.js';
import { PERMISSIONS, type Permission } from '../operations/costs.js';
import { quotaLimits } from '../quota/gate.js';
import { unpricedModelWarnings } from '../quota/unpriced.js';
import { LIMIT_MAXIMUM } from '../quota/amounts.js';
import { usageView } from '../quota/view.js';
import { audited } from '../audit/hook.js';
import type { Services } from '../services.js';
import { adminUpstreamsPlugin } from './admin-upstreams.js';
import type { KeyRecord, Limits as UserLimits, User, UserPatch } from '../store/types.js';

// Every optional field takes null for "none": no limit, no name, any model, no expiry. On a
// create that is the field left out; on an update it removes what was set.
const orNull = <T extends TSchema>(schema: T, description: string) => Type.Optional(Type.Union([schema, Type.Null()], { description }));

// Each limit is bounded by what the ledger counts exactly (src/quota/amounts.ts).
const countLimit = (max: number) => orNull(Type.Integer({ minimum: 0, maximum: max }), `must be a whole number from 0 to ${max}, or null for no limit`);
const usdLimit = (max: number) =>
  orNull(Type.Number({ minimum: 0, maximum: max }), `must be a number of US dollars from 0 to ${max} (cents allowed), or null for no limit`);
const LimitsSchema = Type.Object(
  {
    rpm: countLimit(LIMIT_MAXIMUM.rpm),
    tpm: countLimit(LIMIT_MAXIMUM.tpm),
    tokensPerDay: countLimit(LIMIT_MAXIMUM.tokensPerDay),
    tokensPerMonth: countLimit(LIMIT_MAXIMUM.tokensPerMonth),
    usdPerDay: usdLimit(LIMIT_MAXIMUM.usdPerDay),
    usdPerMonth: usdLimit(LIMIT_MAXIMUM.usdPerMonth),
    maxConcurrent: countLimit(LIMIT_MAXIMUM.maxConcurrent),
  },
  { additionalProperties: false },
);
const Limits = orNull(LimitsSchema, 'must be an object of limits (rpm, tpm, tokensPerDay, tokensPerMonth, usdPerDay, usdPerMonth, maxConcurrent), or null for none');
const Name = orNull(Type.String({ maxLength: 200 }), 'must be a string of at most 200 characters, or null for none');
const Models = orNull(
  Type.Array(Type.String({ minLength: 1, maxLength: 200 }), { maxItems: 100 }),
  'must be a list of at most 100 model names or glob patterns (1 to 200 characters each), or null for any model',
);
// Checked by checkTime, not by the `date-time` format: that one lets a leap second through.
const ExpiresAt = orNull(
  Type.String({ minLength: 1, maxLength: 64 }),
  'must be an ISO 8601 date and time with a time zone, such as 2030-01-31T00:00:00Z, or null for none',
);
const Allow = orNull(
  Type.Array(Type.Union(PERMISSIONS.map((p) => Type.Literal(p))), { maxItems: PERMISSIONS.length, uniqueItems: true }),
  `must be a list of the operations refused unless allowed that the user may call (${PERMISSIONS.join(', ')}), or null for none`,
);
// Checked by checkOrigins (src/inbound/origins.ts), which also writes each as browsers send it.
const Origins = orNull(
  Type.Array(Type.String({ minLength: 1, maxLength: 300 }), { maxItems: 100 }),
  'must be a list of at most 100 page origins (scheme://host[:port], no path) or *, or null for any page',
);
const CreateUser = Type.Object(
  {
    id: Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$' }),
    name: Name,
    models: Models,
    expiresAt: ExpiresAt,
    limits: Limits,
    allow: Allow,
    origins: Origins,
  },
  { additionalProperties: false },
);
const PatchUser = Type.Object(
  { name: Name, models: Models, expiresAt: ExpiresAt, limits: Limits, allow: Allow, origins: Origins },
  { additionalProperties: false },
);
export const CreateKey = Type.Object({ name: Name, expiresAt: ExpiresAt }, { additionalProperties: false });
// `?allowPast=true`: create the user or key already expired (to test a client's handling of it).
export const CreateQuery = Type.Object({ allowPast: Type.Optional(Type.Literal('true')) }, { additionalProperties: false });
const IdParams = Type.Object({ id: Type.String() });
// Query strings are text (no type coercion): `limit` and `offset` are read by wholeNumber.
const ListUsersQuery = Type.Object(
  {
    search: Type.Optional(Type.String({ maxLength: 200 })),
    limit: Type.Optional(Type.String({ maxLength: 10 })),
    offset: Type.Optional(Type.String({ maxLength: 16 })),
  },
  { additionalProperties: false },
);
const MAX_USERS_PAGE = 1000;

/** A query parameter written in digits only (not `1e2`, ` 5` or `5.0`), within bounds, or a 400 naming it. */
function wholeNumber(text: string, param: string, min: number, max: number): number {
  const n = /^[0-9]{1,15}$/.test(text) ? Number(text) : -1;
  if (n < min || n > max) throw new GatewayError('invalid_request', { param, message: `\`${param}\` must be a whole number ${max === Number.MAX_SAFE_INTEGER ? `of ${min} or more` : `from ${min} to ${max}`}.` });
  return n;
}
const KeyParams = Type.Object({ keyId: Type.String() });

// What each change writes to the audit log (src/audit/hook.ts): an action and its target.
const param = (name: string) => (request: { params: unknown }) => String((request.params as Record<string, unknown>)[name]);

function digestOf(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}

/** The key as the API shows it: never the digest. */
export function publicKey(key: KeyRecord): Omit<KeyRecord, 'digest'> {
  const { digest: _digest, ...shown } = key;
  return shown;
}

/** An `expiresAt` as given, once it is known to be a real ISO 8601 time (iso-time.ts). */
function checkTime<T extends string | null | undefined>(value: T): T {
  if (typeof value === 'string' && parseIsoTime(value) === undefined) {
    throw new GatewayError('invalid_request', {
      message: '`expiresAt` must be an ISO 8601 date and time with a time zone, such as 2030-01-31T00:00:00Z.',
      param: 'expiresAt',
    });
  }
  return value;
}

/** An expiry given on a create: one already past would make a user or key that never works,
 * which is nearly always a typo (a year, a day and month swapped), so it needs `allowPast=true`. */
function checkFuture(expiresAt: string | undefined, allowPast: boolean, what: 'user' | 'key'): string | undefined {
  if (expiresAt === undefined || allowPast || !isPast(expiresAt, Date.now())) return expiresAt;
  throw new GatewayError('invalid_request', {
    param: 'expiresAt',
    message: `\`expiresAt\` ${expiresAt} is in the past: the ${what} would be expired from the start. Give a later time, or allowPast=true (keyrelay --allow-past) to create it expired.`,
  });
}

/** A field that takes null: null is "none", the same as the field left out. */
const some = <T>(value: T | null | undefined): T | undefined => (value === null ? undefined : value);

/** Limits as stored: those given a number; null, like absent, is no limit. */
function limitsOf(given: Static<typeof LimitsSchema> | null | undefined): UserLimits {
  const limits: UserLimits = {};
  for (const [field, value] of Object.entries(given ?? {}) as Array<[keyof UserLimits, number | null | undefined]>) {
    if (typeof value === 'number') limits[field] = value;
  }
  return limits;
}

/** A user's origins as stored: each as browsers send it, no repeats; none (null, or an empty
 * list) is absent, which is any page. */
function checkOrigins(given: string[] | null | undefined): string[] | undefined {
  if (!given?.length) return undefined;
  const origins = given.map((value, i) => {
    try {
      return parseOrigin(value);
    } catch (err) {
      if (!(err instanceof OriginError)) throw err;
      throw new GatewayError('invalid_request', { message: `\`origins.${i}\`: ${err.message}.`, param: `origins.${i}` });
    }
  });
  return [...new Set(origins)];
}

/** An allow list as stored: none is absent, not an empty list. */
const allowed = (given: Permission[] | null | undefined): Permission[] | undefined => (given?.length ? given : undefined);

function notFound(what: string): GatewayError {
  return new GatewayError('not_found', { message: `No ${what} with that id.` });
}

/** The onRequest hook of every /admin route: the admin token, or an admin's console session
 * (read and CSRF-checked before this hook: src/console-server/session-auth.ts), or 401. */
export function adminGuard(adminToken: string): (request: FastifyRequest) => Promise<void> {
  const bearer = tokenGuard(adminToken, 'The admin API needs the admin token.');
  return async (request) => {
    if (request.headers.authorization === undefined && request.consoleSession?.session.role === 'admin') return;
    return bearer(request);
  };
}

/** A user with their usage in each window, as GET /admin/users/{id} answers (and /console/api/me). */
export async function userWithUsage(store: Services['store'], id: string) {
  const user = await store.getUser(id);
  if (!user) throw notFound('user');
  const usage = await store.usage(user.id, quotaLimits(user), Date.now());
  return { ...user, usage: usageView(usage, user.limits) };
}

/** A user's keys, never a secret nor a digest. */
export async function keysOf(store: Services['store'], userId: string) {
  if (!(await store.getUser(userId))) throw notFound('user');
  return { data: (await store.listKeys(userId)).map(publicKey) };
}

/** Revoked and expired keys kept per user (listed, and named in a refusal as revoked); older ones
 * are forgotten when the user gets another key. */
export const ENDED_KEYS_KEPT = 100;

/** Makes a key for the user, who holds fewer than `maxKeys` live keys; the answer shows its
 * secret, this once. */
export async function createKeyFor(store: Services['store'], userId: string, body: Static<typeof CreateKey> | undefined, allowPast: boolean, maxKeys: number) {
  const expiresAt = checkFuture(some(checkTime(body?.expiresAt)), allowPast, 'key');
  const user = await store.getUser(userId);
  if (!user) throw notFound('user');
  const key = newGatewayKey();
  const record: KeyRecord = {
    id: newId('key'),
    userId: user.id,
    name: some(body?.name),
    prefix: displayPrefix(key),
    digest: digestKey(key),
    createdAt: new Date().toISOString(),
    expiresAt,
  };
  if (!(await store.createKey(record, maxKeys))) {
    throw new GatewayError('too_many_keys', {
      message: `User ${user.id} already holds ${maxKeys} live keys, as many as a user may (maxKeysPerUser). Revoke one before creating another.`,
    });
  }
  // Ended keys stay listed, but not without end: a user making and revoking keys in a loop
  // would otherwise fill the store as surely as one making them.
  await store.forgetEndedKeys(user.id, ENDED_KEYS_KEPT, Date.now());
  return { ...publicKey(record), key };
}

/** Revokes the key; `owner` set, only a key of that user (another user's key is not found). */
export async function revokeKeyOf(store: Services['store'], keyId: string, owner?: string) {
  if (owner !== undefined && (await store.getKey(keyId))?.userId !== owner) throw notFound('key');
  const key = await store.revokeKey(keyId, new Date().toISOString());
  if (!key) throw notFound('key');
  return publicKey(key);
}

/** A hook that answers 401 `refusal` unless the request's bearer token is `expected`. */
export function tokenGuard(expectedToken: string, refusal: string): (request: FastifyRequest) => Promise<void> {
  const expected = digestOf(expectedToken);
  return async (request) => {
    const token = bearerToken(request.raw);
    // Compare digests so the comparison takes the same time whatever the token's length.
    if (token === undefined || !timingSafeEqual(digestOf(token), expected)) {
      throw new GatewayError('invalid_api_key', { message: refusal });
    }
  };
}

export async function adminPlugin(app: FastifyInstance, services: Services): Promise<void> {
  const { store } = services;
  const { prices } = services;
  // A user as created or changed, with warnings about it when there are any (a dollar limit over
  // models without a price, origins the gateway's cors.origins leave out).
  const withWarnings = (user: User): User & { warnings?: string[] } => {
    const warnings = [...unpricedModelWarnings(user, prices), ...originWarnings(user, services.cors)];
    return warnings.length === 0 ? user : { ...user, warnings };
  };

  app.addHook('onRequest', adminGuard(services.config.adminToken ?? ''));

  const createdUser = audited('user.create', (_r, answer) => `user:${String(answer.id)}`);
  const createUserRoute = { schema: { body: CreateUser, querystring: CreateQuery }, config: createdUser };
  app.post<{ Body: Static<typeof CreateUser>; Querystring: Static<typeof CreateQuery> }>('/users', createUserRoute, async (request, reply) => {
    const { id, name, models, expiresAt, limits, allow, origins } = request.body;
    const user: User = {
      id,
      name: some(name),
      models: some(models),
      expiresAt: checkFuture(some(checkTime(expiresAt)), request.query.allowPast === 'true', 'user'),
      limits: limitsOf(limits),
      allow: allowed(allow),
      origins: checkOrigins(origins),
      createdAt: new Date().toISOString(),
    };
    if (!(await store.createUser(user))) {
      // A deleted user's objects (files, threads, fine-tuned models) and counters stay theirs: a
      // new user of the same id would inherit them.
      const message = (await store.wasDeleted(id))
        ? `A user with id "${id}" existed and was deleted: ids of deleted users are never reused. Pick another id.`
        : `A user with id "${id}" exists.`;
      throw new GatewayError('conflict', { message, param: 'id' });
    }
    reply.code(201);
    return withWarnings(user);
  });

  app.get<{ Querystring: Static<typeof ListUsersQuery> }>('/users', { schema: { querystring: ListUsersQuery } }, async (request) => {
    const { search, limit, offset } = request.query;
    const needle = search?.toLowerCase();
    // In creation order, as ever; the whole list is read (users are few) and cut here.
    const users = (await store.listUsers()).filter((u) => needle === undefined || u.id.toLowerCase().includes(needle) || (u.name ?? '').toLowerCase().includes(needle));
    const start = offset === undefined ? 0 : wholeNumber(offset, 'offset', 0, Number.MAX_SAFE_INTEGER);
    const count = limit === undefined ? users.length : wholeNumber(limit, 'limit', 1, MAX_USERS_PAGE);
    return { data: users.slice(start, start + count), total: users.length };
  });

  app.get<{ Params: Static<typeof IdParams> }>('/users/:id', async (request) => userWithUsage(store, request.params.id));

  app.patch<{ Params: Static<typeof IdParams>; Body: Static<typeof PatchUser> }>(
    '/users/:id',
    { schema: { body: PatchUser }, config: audited('user.update', (r) => `user:${param('id')(r)}`) },
    async (request) => {
      const body = request.body;
      // A field left out is kept; a field set to null is removed. `limits` is replaced whole.
      const patch: UserPatch = {};
      if ('name' in body) patch.name = some(body.name);
      if ('models' in body) patch.models = some(body.models);
      if ('expiresAt' in body) patch.expiresAt = some(checkTime(body.expiresAt));
      if ('limits' in body) patch.limits = limitsOf(body.limits);
      if ('allow' in body) patch.allow = allowed(body.allow);
      if ('origins' in body) patch.origins = checkOrigins(body.origins);
      const user = await store.updateUser(request.params.id, patch);
      if (!user) throw notFound('user');
      return withWarnings(user);
    },
  );

  app.delete<{ Params: Static<typeof IdParams> }>('/users/:id', { config: audited('user.delete', (r) => `user:${param('id')(r)}`) }, async (request) => {
    if (!(await store.deleteUser(request.params.id))) throw notFound('user');
    return { id: request.params.id, deleted: true };
  });

  app.post<{ Params: Static<typeof IdParams>; Body: Static<typeof CreateKey> | undefined; Querystring: Static<typeof CreateQuery> }>(
    '/users/:id/keys',
    { schema: { body: Type.Union([CreateKey, Type.Null()]), querystring: CreateQuery }, config: audited('key.create', (_r, answer) => `key:${String(answer.id)}`) },
    async (request, reply) => {
      const created = await createKeyFor(store, request.params.id, request.body ?? undefined, request.query.allowPast === 'true', services.config.maxKeysPerUser);
      reply.code(201);
      return created;
    },
  );

  app.get<{ Params: Static<typeof IdParams> }>('/users/:id/keys', async (request) => keysOf(store, request.params.id));

  app.delete<{ Params: Static<typeof KeyParams> }>('/keys/:keyId', { config: audited('key.revoke', (r) => `key:${param('keyId')(r)}`) }, async (request) => revokeKeyOf(store, request.params.keyId));

  await app.register(adminUpstreamsPlugin, { ...services, prefix: '' });
}
