// /console/api/me: a user signed in with their own key sees and changes only their own things.
// Each route is the admin route's own logic (src/plugins/admin.ts, observability.ts) with the user
// forced to the session's, never a copy of it.
import { type Static, Type } from '@sinclair/typebox';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { audited } from '../audit/hook.js';
import { GatewayError } from '../errors.js';
import type { Observability } from '../observability/index.js';
import { createKeyFor, keysOf, revokeKeyOf, userWithUsage } from '../plugins/admin.js';
import {
  RequestParams,
  RequestsQuerySchema,
  SeriesQuerySchema,
  StreamQuerySchema,
  UsageQuerySchema,
  fromStore,
  liveTail,
  requestRecord,
  requestsPage,
  usageAnswer,
  usageSeries,
} from '../plugins/observability.js';
import { requestFilter } from '../observability/queries.js';
import type { Store } from '../store/types.js';
import { signedIn } from './session-routes.js';

// `{"name"?}`: a user names their key; its expiry and the rest are the admin's to set.
const NewKey = Type.Union([
  Type.Object({ name: Type.Optional(Type.Union([Type.String({ maxLength: 200 }), Type.Null()])) }, { additionalProperties: false }),
  Type.Null(),
]);
const KeyParams = Type.Object({ keyId: Type.String({ maxLength: 200 }) });

export interface MeRoutesOptions {
  store: Store;
  observability: Observability;
  /** maxKeysPerUser */
  maxKeys: number;
}

/** The id of the signed-in user; 401 without a session, 403 for an admin's (who has no "me"). */
function me(request: FastifyRequest): string {
  const { session } = signedIn(request);
  if (session.role !== 'user' || session.userId === undefined) {
    throw new GatewayError('route_not_allowed', { message: 'The /console/api/me routes are for a user signed in with their key; an admin uses /admin.' });
  }
  return session.userId;
}

export async function meRoutes(app: FastifyInstance, options: MeRoutesOptions): Promise<void> {
  const { store, observability, maxKeys } = options;

  app.get('/me', async (request) => ({ user: await fromStore(() => userWithUsage(store, me(request))) }));

  app.get('/me/keys', async (request) => fromStore(() => keysOf(store, me(request))));

  app.post<{ Body: Static<typeof NewKey> }>(
    '/me/keys',
    { schema: { body: NewKey }, config: audited('key.create', (_r, answer) => `key:${String(answer.id)}`) },
    async (request, reply) => {
      const created = await fromStore(() => createKeyFor(store, me(request), { name: request.body?.name }, false, maxKeys));
      reply.code(201);
      return created;
    },
  );

  app.delete<{ Params: Static<typeof KeyParams> }>(
    '/me/keys/:keyId',
    { schema: { params: KeyParams }, config: audited('key.revoke', (r) => `key:${(r.params as { keyId: string }).keyId}`) },
    async (request) => fromStore(() => revokeKeyOf(store, request.params.keyId, me(request))),
  );

  app.get<{ Querystring: Static<typeof RequestsQuerySchema> }>('/me/requests', { schema: { querystring: RequestsQuerySchema } }, async (request) =>
    requestsPage(observability, { ...request.query, user: me(request) }),
  );

  const tail = liveTail(app, observability);
  app.get<{ Querystring: Static<typeof StreamQuerySchema> }>('/me/requests/stream', { schema: { querystring: StreamQuerySchema } }, async (request, reply) =>
    tail(requestFilter({ ...request.query, user: me(request) }), reply, signedIn(request).holds),
  );

  app.get<{ Params: Static<typeof RequestParams> }>('/me/requests/:requestId', { schema: { params: RequestParams } }, async (request) =>
    requestRecord(observability, request.params.requestId, me(request)),
  );

  app.get<{ Querystring: Static<typeof UsageQuerySchema> }>('/me/usage', { schema: { querystring: UsageQuerySchema } }, async (request) =>
    usageAnswer(observability, { ...request.query, user: me(request) }),
  );

  app.get<{ Querystring: Static<typeof SeriesQuerySchema> }>('/me/usage/series', { schema: { querystring: SeriesQuerySchema } }, async (request) => {
    // Split by user, a user's own series would be one line of their own id: refused, naming it.
    if (request.query.by === 'user') throw new GatewayError('invalid_request', { param: 'by', message: '`by` takes model or poolKey here: this is one user\'s own usage.' });
    return usageSeries(observability, { ...request.query, user: me(request) });
  });
}
