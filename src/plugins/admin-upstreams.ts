// The admin API of upstreams and pool keys (README, "The key pool": upstreams and keys at run time).
// Reads show the pool as this process serves it: the settings' upstreams and keys (`source:
// settings`, read-only here) and those added at run time (`source: store`). Each change is one
// atomic write of the catalog (src/pool/catalog-store.ts); this process applies it before it
// answers, every other process within a second (src/pool/runtime.ts). Secrets are write-only.
import { type Static, Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { GatewayError } from '../errors.js';
import {
  type Catalog,
  type SettingsIds,
  addKey,
  addUpstream,
  catalogKey,
  catalogUpstream,
  keyPlace,
  nextKeyId,
  proxyPlace,
  removeKey,
  removeUpstream,
  sealedValues,
} from '../pool/catalog.js';
import { checkAliases, checkBaseUrl, checkKind, checkProxy, sealKey, storedProxy } from '../pool/catalog-input.js';
import { type Pool, type PoolKey, type Upstream, keyRef } from '../pool/pool.js';
import { openCatalog } from '../pool/runtime.js';
import { testKey } from '../relay/key-test.js';
import { SecretError, sealedKeyId } from '../secrets/box.js';
import { type AuditSpec, audited } from '../audit/hook.js';
import type { Services } from '../services.js';
import { CreateKey, CreateUpstream, KeyParams, PatchKey, PatchUpstream, RotateKey, TestKey, UpstreamParams } from './admin-upstreams-schemas.js';
import { keyView, upstreamView } from './admin-upstreams-views.js';
import { fromStore } from './observability.js';

/** The ids the settings hold, as this process serves them now (a reload may change them). */
function settingsIds(pool: Pool): SettingsIds {
  const upstreams = new Set<string>();
  const keys = new Map<string, Set<string>>();
  for (const u of pool.upstreams) {
    if (u.source === 'settings') upstreams.add(u.id);
    keys.set(u.id, new Set(u.keys.filter((k) => k.source === 'settings').map((k) => k.id)));
  }
  return { upstreams, keys };
}

const notFound = (what: string) => new GatewayError('not_found', { message: `No ${what} with that id.` });


type Params = { upstream?: string; keyId?: string };
const upstreamTarget: AuditSpec['target'] = (r) => `upstream:${(r.params as Params).upstream ?? ''}`;
const keyTarget: AuditSpec['target'] = (r) => `pool_key:${(r.params as Params).upstream ?? ''}/${(r.params as Params).keyId ?? ''}`;

export async function adminUpstreamsPlugin(app: FastifyInstance, services: Services): Promise<void> {
  const { pool, store, secretBox: box } = services;

  function upstreamOf(id: string): Upstream {
    const upstream = pool.upstreams.find((u) => u.id === id);
    if (!upstream) throw notFound('upstream');
    return upstream;
  }
  function keyOf(upstreamId: string, keyId: string): { upstream: Upstream; key: PoolKey } {
    const upstream = upstreamOf(upstreamId);
    const key = upstream.keys.find((k) => k.id === keyId);
    if (!key) throw notFound('pool key');
    return { upstream, key };
  }
  const showUpstream = (id: string) => upstreamView(upstreamOf(id), pool.health);
  const showKey = (upstreamId: string, keyId: string) => keyView(keyOf(upstreamId, keyId).key, pool.health);

  /** One atomic change of the catalog, served by this process before it returns. */
  async function change<T>(fn: (catalog: Catalog, settings: SettingsIds) => T): Promise<T> {
    const settings = settingsIds(pool);
    let written: { result: T };
    try {
      written = await store.poolCatalog.update((catalog) => {
        const result = fn(catalog, settings);
        // A catalog this process cannot open it would not serve (runtime.ts keeps the version it
        // has): written anyway, the change would be answered 404 with no audit entry, and every
        // process of the other secret would stop following the catalog, removals included.
        openCatalog(catalog, box);
        return result;
      });
    } catch (err) {
      if (err instanceof GatewayError) throw err;
      if (err instanceof SecretError) {
        throw new GatewayError('conflict', {
          message: `KEYRELAY_SECRET: this process cannot open what the store holds (${err.message}); nothing was changed. Give every process the same KEYRELAY_SECRET.`,
        });
      }
      throw new GatewayError('quota_backend_unavailable', { message: 'The store did not take the change; nothing was changed. Retry.', headers: { 'retry-after': '1' }, cause: err });
    }
    await services.catalog.reload();
    return written.result;
  }

  /** A key added or given a new secret starts afresh: what its id's old secret earned is not its own. */
  function freshHealth(upstreamId: string, keyId: string, keepManual: boolean): void {
    const ref = keyRef(upstreamId, keyId);
    const record = pool.health.record(ref);
    if (record.state === 'active' || (keepManual && record.reason === 'manual')) return;
    pool.health.enable(ref);
  }

  // Manual control: a key disabled here stays disabled, in every process, until enabled here.
  for (const action of ['enable', 'disable'] as const) {
    app.post<{ Params: Static<typeof KeyParams> }>(`/upstreams/:upstream/keys/:keyId/${action}`, { config: audited(`pool_key.${action}`, keyTarget) }, async (request) => {
      const { upstream, keyId } = request.params;
      if (!pool.setEnabled(upstream, keyId, action === 'enable')) throw notFound('pool key');
      return { upstream, ...showKey(upstream, keyId) };
    });
  }

  app.get('/upstreams', async () => ({ data: pool.upstreams.map((u) => upstreamView(u, pool.health)) }));

  app.get<{ Params: Static<typeof UpstreamParams> }>('/upstreams/:upstream', async (request) => showUpstream(request.params.upstream));

  const createUpstream = { schema: { body: CreateUpstream }, config: audited('upstream.create', (_r, answer) => `upstream:${String(answer.id)}`) };
  app.post<{ Body: Static<typeof CreateUpstream> }>('/upstreams', createUpstream, async (request, reply) => {
    const body = request.body;
    const baseUrl = checkBaseUrl(body.baseUrl);
    const kind = body.kind ?? 'openai';
    checkKind({ kind, baseUrl, deployments: body.deployments, apiVersion: body.apiVersion });
    const proxy = body.proxy === undefined || body.proxy === null ? undefined : storedProxy(checkProxy(body.proxy), box, proxyPlace(body.id));
    const aliases = body.aliases ? checkAliases(body.aliases, pool.aliases) : undefined;
    const now = new Date().toISOString();
    await change((catalog, settings) =>
      addUpstream(catalog, settings, {
        id: body.id,
        baseUrl,
        kind,
        ...(body.deployments ? { deployments: body.deployments } : {}),
        ...(body.apiVersion ? { apiVersion: body.apiVersion } : {}),
        ...(body.models ? { models: body.models } : {}),
        strategy: body.strategy ?? 'round-robin',
        ...(proxy ? { proxy } : {}),
        ...(aliases && Object.keys(aliases).length > 0 ? { aliases } : {}),
        createdAt: now,
        updatedAt: now,
      }),
    );
    reply.code(201);
    return showUpstream(body.id);
  });

  app.patch<{ Params: Static<typeof UpstreamParams>; Body: Static<typeof PatchUpstream> }>(
    '/upstreams/:upstream',
    { schema: { body: PatchUpstream }, config: audited('upstream.update', upstreamTarget) },
    async (request) => {
      const id = request.params.upstream;
      const body = request.body;
      // Checked and sealed before the write: a bad field changes nothing.
      const baseUrl = body.baseUrl === undefined ? undefined : checkBaseUrl(body.baseUrl);
      const proxy = body.proxy === undefined || body.proxy === null ? undefined : storedProxy(checkProxy(body.proxy), box, proxyPlace(id));
      const aliases = body.aliases ? checkAliases(body.aliases, pool.aliases) : undefined;
      await change((catalog, settings) => {
        const upstream = catalogUpstream(catalog, settings, id);
        if (baseUrl !== undefined) upstream.baseUrl = baseUrl;
        if (body.models !== undefined) {
          if (body.models === null) delete upstream.models;
          else upstream.models = body.models;
        }
        if (body.strategy !== undefined) upstream.strategy = body.strategy;
        // A new table replaces the old one whole; null or {} removes it.
        if (body.aliases === null || (aliases && Object.keys(aliases).length === 0)) delete upstream.aliases;
        else if (aliases) upstream.aliases = aliases;
        if (body.proxy === null) delete upstream.proxy;
        else if (proxy) upstream.proxy = proxy;
        for (const field of ['deployments', 'apiVersion'] as const) {
          const value = body[field];
          if (value === null) delete upstream[field];
          else if (value !== undefined) (upstream as Record<typeof field, unknown>)[field] = value;
        }
        // The upstream as it would be: a fault throws, and the catalog is not written.
        checkKind(upstream);
        upstream.updatedAt = new Date().toISOString();
      });
      return showUpstream(id);
    },
  );

  app.delete<{ Params: Static<typeof UpstreamParams> }>('/upstreams/:upstream', { config: audited('upstream.delete', upstreamTarget) }, async (request) => {
    const id = request.params.upstream;
    const removed = await change((catalog, settings) => {
      const keys = (catalog.keys[id] ?? []).map((k) => k.id);
      return { upstream: removeUpstream(catalog, settings, id), keys };
    });
    // Its keys leave with it: each is announced as a key removed one by one would be.
    for (const key of removed.keys) void services.alerts.emit('pool_key.removed', { upstream: id, key });
    return { id: removed.upstream.id, deleted: true };
  });

  app.get<{ Params: Static<typeof UpstreamParams> }>('/upstreams/:upstream/keys', async (request) => ({
    data: upstreamOf(request.params.upstream).keys.map((k) => keyView(k, pool.health)),
  }));

  app.get<{ Params: Static<typeof KeyParams> }>('/upstreams/:upstream/keys/:keyId', async (request) => showKey(request.params.upstream, request.params.keyId));

  app.post<{ Params: Static<typeof UpstreamParams>; Body: Static<typeof CreateKey> }>(
    '/upstreams/:upstream/keys',
    { schema: { body: CreateKey }, config: audited('pool_key.create', (r, answer) => `pool_key:${(r.params as Params).upstream ?? ''}/${String(answer.id)}`) },
    async (request, reply) => {
      const upstreamId = request.params.upstream;
      const body = request.body;
      if (!box.configured) throw new GatewayError('secret_not_configured', { param: 'key' });
      const proxyUrls = body.proxy === undefined || body.proxy === null ? undefined : checkProxy(body.proxy);
      const now = new Date().toISOString();
      const id = await change((catalog, settings) => {
        const keyId = body.id ?? nextKeyId(catalog, settings, upstreamId);
        const { sealed, last4 } = sealKey(body.key, box, keyPlace(upstreamId, keyId));
        addKey(catalog, settings, upstreamId, {
          id: keyId,
          sealed,
          last4,
          weight: body.weight ?? 1,
          ...(body.models ? { models: body.models } : {}),
          ...(body.organization ? { organization: body.organization } : {}),
          ...(body.project ? { project: body.project } : {}),
          ...(proxyUrls ? { proxy: storedProxy(proxyUrls, box, proxyPlace(upstreamId, keyId)) } : {}),
          createdAt: now,
          updatedAt: now,
        });
        return keyId;
      });
      freshHealth(upstreamId, id, false);
      void services.alerts.emit('pool_key.added', { upstream: upstreamId, key: id });
      reply.code(201);
      return showKey(upstreamId, id);
    },
  );

  app.patch<{ Params: Static<typeof KeyParams>; Body: Static<typeof PatchKey> }>(
    '/upstreams/:upstream/keys/:keyId',
    { schema: { body: PatchKey }, config: audited('pool_key.update', keyTarget) },
    async (request) => {
      const { upstream: upstreamId, keyId } = request.params;
      const body = request.body;
      const proxy = body.proxy === undefined || body.proxy === null ? undefined : storedProxy(checkProxy(body.proxy), box, proxyPlace(upstreamId, keyId));
      await change((catalog, settings) => {
        const key = catalogKey(catalog, settings, upstreamId, keyId);
        if (body.weight !== undefined) key.weight = body.weight;
        for (const field of ['models', 'organization', 'project'] as const) {
          const value = body[field];
          if (value === null) delete key[field];
          else if (value !== undefined) (key as Record<typeof field, unknown>)[field] = value;
        }
        if (body.proxy === null) delete key.proxy;
        else if (proxy) key.proxy = proxy;
        key.updatedAt = new Date().toISOString();
      });
      // The admin's hand, shared by every process through the key's health (as /enable and /disable).
      if (body.enabled === true) pool.health.enable(keyRef(upstreamId, keyId));
      if (body.enabled === false) pool.health.disable(keyRef(upstreamId, keyId));
      return showKey(upstreamId, keyId);
    },
  );

  app.delete<{ Params: Static<typeof KeyParams> }>('/upstreams/:upstream/keys/:keyId', { config: audited('pool_key.delete', keyTarget) }, async (request) => {
    const { upstream: upstreamId, keyId } = request.params;
    const removed = await change((catalog, settings) => removeKey(catalog, settings, upstreamId, keyId));
    void services.alerts.emit('pool_key.removed', { upstream: upstreamId, key: removed.id });
    return { upstream: upstreamId, id: removed.id, last4: removed.last4, deleted: true };
  });

  app.post<{ Params: Static<typeof KeyParams>; Body: Static<typeof RotateKey> }>(
    '/upstreams/:upstream/keys/:keyId/rotate',
    { schema: { body: RotateKey }, config: audited('pool_key.rotate', keyTarget) },
    async (request) => {
      const { upstream: upstreamId, keyId } = request.params;
      if (!box.configured) throw new GatewayError('secret_not_configured', { param: 'key' });
      const { sealed, last4 } = sealKey(request.body.key, box, keyPlace(upstreamId, keyId));
      await change((catalog, settings) => {
        const key = catalogKey(catalog, settings, upstreamId, keyId);
        const now = new Date().toISOString();
        Object.assign(key, { sealed, last4, updatedAt: now, rotatedAt: now });
      });
      freshHealth(upstreamId, keyId, true);
      void services.alerts.emit('pool_key.rotated', { upstream: upstreamId, key: keyId });
      return showKey(upstreamId, keyId);
    },
  );

  // Tests change nothing, but who tried which key through which proxy is worth a line of the audit.
  app.post<{ Params: Static<typeof KeyParams> }>('/upstreams/:upstream/keys/:keyId/test', { config: audited('pool_key.test', keyTarget) }, async (request) => {
    const { upstream, key } = keyOf(request.params.upstream, request.params.keyId);
    const result = await testKey(upstream, key, { dispatcher: services.outbound.dispatcherFor({ upstream, key }), mask: services.masker.text });
    return { ...result, key: { id: key.id, last4: key.last4 } };
  });

  app.post<{ Params: Static<typeof UpstreamParams>; Body: Static<typeof TestKey> }>(
    '/upstreams/:upstream/test-key',
    { schema: { body: TestKey }, config: audited('upstream.test_key', upstreamTarget) },
    async (request) => {
      const upstream = upstreamOf(request.params.upstream);
      const body = request.body;
      const proxy = body.proxy === undefined ? undefined : checkProxy(body.proxy);
      // A key of no pool: its own object, so it gets an egress of its own and leaves no trace in the pool.
      const key: PoolKey = {
        id: 'test',
        upstreamId: upstream.id,
        ref: keyRef(upstream.id, '(test)'),
        source: 'store',
        secret: body.key,
        last4: body.key.slice(-4),
        weight: 1,
        seed: 0,
        organization: body.organization,
        project: body.project,
        proxy: proxy ?? undefined,
        allowsModel: () => true,
      };
      const result = await testKey(upstream, key, { dispatcher: services.outbound.dispatcherFor({ upstream, key }), mask: services.masker.text });
      return { ...result, key: { last4: key.last4 } };
    },
  );

  const refused = (err: unknown): never => {
    if (err instanceof SecretError) throw new GatewayError('conflict', { message: `${err.message}. Nothing was re-sealed.` });
    throw err;
  };

  // Re-seals every secret of the catalog, then every webhook's signing secret, under
  // KEYRELAY_SECRET; those sealed under KEYRELAY_SECRET_PREVIOUS (and webhook secrets kept as given)
  // are the ones it changes. Run once every process has both secrets.
  app.post('/secrets/rotate', { config: audited('secrets.rotate', () => 'secrets') }, async () => {
    const current = box.currentId;
    if (!current) throw new GatewayError('secret_not_configured');
    // A webhook secret that does not open stops the rotation before anything is written.
    await fromStore(() => services.alerts.checkSecrets().catch(refused));
    const counts = await change((catalog) => {
      let resealed = 0;
      let total = 0;
      for (const value of sealedValues(catalog)) {
        total++;
        if (sealedKeyId(value.get()) === current) continue;
        try {
          value.set(box.seal(box.open(value.get(), value.where), value.where));
        } catch (err) {
          refused(err);
        }
        resealed++;
      }
      return { resealed, total };
    });
    const hooks = await fromStore(() => services.alerts.reseal().catch(refused));
    return { keyId: current, resealed: counts.resealed + hooks.resealed, total: counts.total + hooks.total };
  });
}
