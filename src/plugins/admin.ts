// The admin API (CONTRACT.md, Admin API): users and their keys, and the pool's upstream keys.
// Guarded by KEYRELAY_ADMIN_TOKEN; without one the routes do not exist at all and answer 404.
import { createHash, timingSafeEqual } from 'node:crypto';
import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { bearerToken } from '../auth.js';
import { GatewayError } from '../errors.js';
import { parseIsoTime } from '../iso-time.js';
import { digestKey, displayPrefix, newGatewayKey, newId } from '../keys.js';
import { quotaLimits } from '../quota/gate.js';
import { usageView } from '../quota/view.js';
import type { KeyDescription, Pool } from '../pool/pool.js';
import type { Services } from '../services.js';
import type { KeyRecord, User } from '../store/types.js';

// Checked by checkTime, not by the `date-time` format: that one lets a leap second through.
// Not empty, so that Fastify's type coercion cannot turn a PATCH's `null` (no expiry) into "".
const IsoTime = Type.String({ minLength: 1, maxLength: 64 });
const LimitsSchema = Type.Object(
  {
    rpm: Type.Optional(Type.Integer({ minimum: 0 })),
    tpm: Type.Optional(Type.Integer({ minimum: 0 })),
    tokensPerDay: Type.Optional(Type.Integer({ minimum: 0 })),
    tokensPerMonth: Type.Optional(Type.Integer({ minimum: 0 })),
    usdPerDay: Type.Optional(Type.Number({ minimum: 0 })),
    usdPerMonth: Type.Optional(Type.Number({ minimum: 0 })),
    maxConcurrent: Type.Optional(Type.Integer({ minimum: 0 })),
  },
  { additionalProperties: false },
);
const CreateUser = Type.Object(
  {
    id: Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$' }),
    name: Type.Optional(Type.String({ maxLength: 200 })),
    models: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 200 }), { maxItems: 100 })),
    expiresAt: Type.Optional(IsoTime),
    limits: Type.Optional(LimitsSchema),
  },
  { additionalProperties: false },
);
const PatchUser = Type.Object(
  {
    name: Type.Optional(Type.String({ maxLength: 200 })),
    models: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 200 }), { maxItems: 100 })),
    expiresAt: Type.Optional(Type.Union([IsoTime, Type.Null()])),
    limits: Type.Optional(LimitsSchema),
  },
  { additionalProperties: false },
);
const CreateKey = Type.Object(
  {
    name: Type.Optional(Type.String({ maxLength: 200 })),
    expiresAt: Type.Optional(IsoTime),
  },
  { additionalProperties: false },
);
const IdParams = Type.Object({ id: Type.String() });
const KeyParams = Type.Object({ keyId: Type.String() });
const PoolKeyParams = Type.Object({ upstream: Type.String(), keyId: Type.String() });

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

function notFound(what: string): GatewayError {
  return new GatewayError('not_found', { message: `No ${what} with that id.` });
}

/**
 * A pool key as `GET /admin/upstreams` shows it: never the secret, its last 4 characters only.
 * `until` (ISO 8601) is when a cooling key is usable again or a disabled key is next probed; null
 * when it is active, or disabled by hand. Counts are this process's, since it started.
 */
function poolKeyView(key: KeyDescription) {
  return {
    id: key.id,
    last4: key.last4,
    state: key.state,
    until: key.until === undefined ? null : new Date(key.until).toISOString(),
    reason: key.reason ?? null,
    inFlight: key.inFlight,
    requests: key.requests,
    failures: key.failures,
    consecutiveFailures: key.consecutiveFailures,
  };
}

function describePool(pool: Pool) {
  return pool.describe().map((u) => ({ id: u.id, strategy: u.strategy, keys: u.keys.map(poolKeyView) }));
}

/** The onRequest hook of every /admin route: the admin token, or 401. */
export function adminGuard(adminToken: string): (request: FastifyRequest) => Promise<void> {
  return tokenGuard(adminToken, 'The admin API needs the admin token.');
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

  app.addHook('onRequest', adminGuard(services.config.adminToken ?? ''));

  app.post<{ Body: Static<typeof CreateUser> }>('/users', { schema: { body: CreateUser } }, async (request, reply) => {
    const { id, name, models, limits } = request.body;
    const expiresAt = checkTime(request.body.expiresAt);
    const user: User = { id, name, models, expiresAt, limits: limits ?? {}, createdAt: new Date().toISOString() };
    if (!(await store.createUser(user))) {
      // A deleted user's objects (files, threads, fine-tuned models) and counters stay theirs: a
      // new user of the same id would inherit them.
      const message = (await store.wasDeleted(id))
        ? `A user with id "${id}" existed and was deleted: ids of deleted users are never reused. Pick another id.`
        : `A user with id "${id}" exists.`;
      throw new GatewayError('conflict', { message, param: 'id' });
    }
    reply.code(201);
    return user;
  });

  app.get('/users', async () => ({ data: await store.listUsers() }));

  app.get<{ Params: Static<typeof IdParams> }>('/users/:id', async (request) => {
    const user = await store.getUser(request.params.id);
    if (!user) throw notFound('user');
    const usage = await store.usage(user.id, quotaLimits(user), Date.now());
    return { ...user, usage: usageView(usage, user.limits) };
  });

  app.patch<{ Params: Static<typeof IdParams>; Body: Static<typeof PatchUser> }>(
    '/users/:id',
    { schema: { body: PatchUser } },
    async (request) => {
      const { expiresAt: given, ...rest } = request.body;
      const expiresAt = checkTime(given);
      const patch = expiresAt === null ? { ...rest, expiresAt: undefined } : { ...rest, ...(expiresAt ? { expiresAt } : {}) };
      const user = await store.updateUser(request.params.id, patch);
      if (!user) throw notFound('user');
      return user;
    },
  );

  app.delete<{ Params: Static<typeof IdParams> }>('/users/:id', async (request) => {
    if (!(await store.deleteUser(request.params.id))) throw notFound('user');
    return { id: request.params.id, deleted: true };
  });

  app.post<{ Params: Static<typeof IdParams>; Body: Static<typeof CreateKey> | undefined }>(
    '/users/:id/keys',
    { schema: { body: Type.Union([CreateKey, Type.Null()]) } },
    async (request, reply) => {
      const expiresAt = checkTime(request.body?.expiresAt);
      const user = await store.getUser(request.params.id);
      if (!user) throw notFound('user');
      const key = newGatewayKey();
      const record: KeyRecord = {
        id: newId('key'),
        userId: user.id,
        name: request.body?.name,
        prefix: displayPrefix(key),
        digest: digestKey(key),
        createdAt: new Date().toISOString(),
        expiresAt,
      };
      await store.createKey(record);
      reply.code(201);
      return { ...publicKey(record), key };
    },
  );

  app.get<{ Params: Static<typeof IdParams> }>('/users/:id/keys', async (request) => {
    if (!(await store.getUser(request.params.id))) throw notFound('user');
    return { data: (await store.listKeys(request.params.id)).map(publicKey) };
  });

  app.delete<{ Params: Static<typeof KeyParams> }>('/keys/:keyId', async (request) => {
    const key = await store.revokeKey(request.params.keyId, new Date().toISOString());
    if (!key) throw notFound('key');
    return publicKey(key);
  });

  const { pool } = services;
  app.get('/upstreams', async () => ({ data: describePool(pool) }));

  // Manual control: a key disabled here stays disabled, in every process, until enabled here.
  for (const action of ['enable', 'disable'] as const) {
    app.post<{ Params: Static<typeof PoolKeyParams> }>(`/upstreams/:upstream/keys/:keyId/${action}`, async (request) => {
      const { upstream, keyId } = request.params;
      if (!pool.setEnabled(upstream, keyId, action === 'enable')) throw notFound('pool key');
      const key = pool.describe().find((u) => u.id === upstream)?.keys.find((k) => k.id === keyId);
      return { upstream, ...poolKeyView(key as KeyDescription) };
    });
  }
}
