// /admin/webhooks: the alert webhooks added at run time, beside those of the settings (read-only
// here), and the last delivery attempts of each (docs/alerts.md). The signing secret is write-only:
// answers show its last 4 characters; it is kept sealed (src/alerts/sealed.ts).
import { type Static, Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { Alerts } from '../alerts/alerts.js';
import { audited } from '../audit/hook.js';
import { SECRET_MAX, SECRET_MIN, WEBHOOK_ID } from '../alerts/settings.js';
import { EVENT_TYPES, type AlertStore, type EventType, type Webhook, isEventType } from '../alerts/types.js';
import { GatewayError } from '../errors.js';
import { newId } from '../keys.js';
import { adminGuard } from './admin.js';
import { fromStore } from './observability.js';

const CreateWebhook = Type.Object(
  {
    id: Type.Optional(Type.String({ description: 'must be 1 to 64 letters, digits, dots, dashes or underscores, starting with a letter or digit' })),
    url: Type.String({ maxLength: 2048, description: 'must be an http:// or https:// URL of at most 2048 characters' }),
    events: Type.Array(Type.String({ maxLength: 64 }), { minItems: 1, maxItems: 20, description: `must be a list of events: ${EVENT_TYPES.join(', ')}` }),
    secret: Type.String({ minLength: SECRET_MIN, maxLength: SECRET_MAX, description: `must be a string of ${SECRET_MIN} to ${SECRET_MAX} characters` }),
  },
  { additionalProperties: false },
);
const IdParams = Type.Object({ id: Type.String() });
const DeliveriesQuery = Type.Object({ limit: Type.Optional(Type.String({ maxLength: 10 })) }, { additionalProperties: false });

const invalid = (param: string, message: string): GatewayError => new GatewayError('invalid_request', { param, message });

/** A receiver's URL as answers show it: a basic-auth password is a secret too, so it is masked. */
function shownUrl(raw: string): string {
  try {
    const url = new URL(raw);
    if (!url.password) return raw;
    url.password = '***';
    return url.href;
  } catch {
    return raw;
  }
}

/** A webhook as the API shows it: never its secret (the last 4 characters of it), nor its URL's password. */
export function webhookView(hook: Webhook) {
  return { id: hook.id, url: shownUrl(hook.url), events: hook.events, source: hook.source, createdAt: hook.createdAt ?? null, last4: hook.last4 };
}

function checkUrl(raw: string): string {
  let url: URL | undefined;
  try {
    url = new URL(raw);
  } catch {
    url = undefined;
  }
  if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:') || !url.hostname) {
    throw invalid('url', '`url` must be an http:// or https:// URL.');
  }
  return raw;
}

function checkEvents(events: string[]): EventType[] {
  const unknown = events.filter((e) => !isEventType(e));
  if (unknown.length > 0) {
    throw invalid('events', `Unknown event${unknown.length > 1 ? 's' : ''}: ${unknown.slice(0, 5).map((e) => JSON.stringify(e.slice(0, 64))).join(', ')}. Known events: ${EVENT_TYPES.join(', ')}.`);
  }
  return [...new Set(events as EventType[])];
}

export async function webhooksPlugin(app: FastifyInstance, options: { alerts: Alerts; store: AlertStore; adminToken: string }): Promise<void> {
  const { alerts, store } = options;
  app.addHook('onRequest', adminGuard(options.adminToken));

  async function found(id: string): Promise<Webhook> {
    const hook = await fromStore(() => alerts.webhook(id));
    if (!hook) throw new GatewayError('not_found', { message: 'No webhook with that id.' });
    return hook;
  }

  app.post<{ Body: Static<typeof CreateWebhook> }>(
    '/webhooks',
    { schema: { body: CreateWebhook }, config: audited('webhook.create', (_r, answer) => `webhook:${String(answer.id)}`) },
    async (request, reply) => {
      const { id, url, events, secret } = request.body;
      if (id !== undefined && !new RegExp(WEBHOOK_ID).test(id)) throw invalid('id', '`id` must be 1 to 64 letters, digits, dots, dashes or underscores, starting with a letter or digit.');
      const hookId = id ?? newId('wh');
      const added = await fromStore(() =>
        alerts.add({ id: hookId, url: checkUrl(url), events: checkEvents(events), secret, last4: secret.slice(-4), source: 'store', createdAt: new Date().toISOString() }),
      );
      // An id of the settings is taken too: the two never share one.
      if (!added) throw new GatewayError('conflict', { message: `A webhook with id "${hookId}" exists.`, param: 'id' });
      reply.code(201);
      return webhookView(added);
    },
  );

  app.get('/webhooks', async () => ({ data: (await fromStore(() => alerts.webhooks())).map(webhookView) }));

  app.get<{ Params: Static<typeof IdParams> }>('/webhooks/:id', async (request) => webhookView(await found(request.params.id)));

  app.delete<{ Params: Static<typeof IdParams> }>(
    '/webhooks/:id',
    { config: audited('webhook.remove', (request) => `webhook:${(request.params as { id: string }).id}`) },
    async (request) => {
      const hook = await found(request.params.id);
      if (hook.source === 'settings') {
        throw new GatewayError('read_only', { message: `The webhook "${hook.id}" comes from the settings file: change it there.` });
      }
      if (!(await fromStore(() => store.removeWebhook(hook.id)))) throw new GatewayError('not_found', { message: 'No webhook with that id.' });
      return { id: hook.id, deleted: true };
    },
  );

  app.get<{ Params: Static<typeof IdParams>; Querystring: Static<typeof DeliveriesQuery> }>(
    '/webhooks/:id/deliveries',
    { schema: { querystring: DeliveriesQuery } },
    async (request) => {
      const raw = request.query.limit;
      const limit = raw === undefined ? 20 : /^[0-9]{1,3}$/.test(raw) ? Number(raw) : 0;
      if (limit < 1 || limit > 100) throw invalid('limit', '`limit` must be a whole number from 1 to 100.');
      const hook = await found(request.params.id);
      return { data: await fromStore(() => store.attempts(hook.id, limit)) };
    },
  );
}
