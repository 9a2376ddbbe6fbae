// The upstreams and pool keys added at run time, as the store keeps them: one small document for
// the whole pool, changed only as a whole (catalog-store.ts), so that an update is all or nothing on
// every backend and every process reads one consistent version of it. Secrets in it are sealed
// (src/secrets/box.ts); this module never sees them in the clear. Keys may belong to an upstream of
// the catalog or to one of the settings: an operator may add a key to the default upstream of
// OPENAI_API_KEYS without writing that upstream again.
import { GatewayError } from '../errors.js';
import type { StrategyName } from './strategies.js';
import type { UpstreamKind } from './upstream-kind.js';

/** A proxy setting as stored: in the clear when it holds no password, else sealed with its masked form beside it. */
export type StoredProxy = { urls: string[] } | { sealed: string; masked: string[] };

export interface StoredKey {
  id: string;
  /** The pool key, sealed. */
  sealed: string;
  last4: string;
  weight: number;
  models?: string[];
  organization?: string;
  project?: string;
  proxy?: StoredProxy;
  createdAt: string;
  updatedAt: string;
  rotatedAt?: string;
}

export interface StoredUpstream {
  id: string;
  baseUrl: string;
  kind: UpstreamKind;
  /** Azure: model -> deployment. */
  deployments?: Record<string, string>;
  /** Azure's classic API: its api-version. */
  apiVersion?: string;
  models?: string[];
  strategy: StrategyName;
  /** Public model name -> this upstream's, over the settings' top-level ones (aliases.ts). */
  aliases?: Record<string, string>;
  proxy?: StoredProxy;
  createdAt: string;
  updatedAt: string;
}

export interface Catalog {
  /** In the order they were added: model routing takes the first that serves a model, after the settings' upstreams. */
  upstreams: StoredUpstream[];
  /** Keys by upstream id, in the order they were added. */
  keys: Record<string, StoredKey[]>;
}

export const EMPTY_CATALOG: Catalog = Object.freeze({ upstreams: [], keys: {} }) as Catalog;

/** What the settings hold, which the catalog may neither shadow nor change. */
export interface SettingsIds {
  upstreams: ReadonlySet<string>;
  /** Key ids of each settings upstream. */
  keys: ReadonlyMap<string, ReadonlySet<string>>;
}

export function cloneCatalog(catalog: Catalog): Catalog {
  return JSON.parse(JSON.stringify(catalog)) as Catalog;
}

/** A catalog read back from a store; an unreadable one counts as empty, never as half a catalog. */
export function parseCatalog(text: string | null | undefined): Catalog {
  if (!text) return cloneCatalog(EMPTY_CATALOG);
  const value = JSON.parse(text) as Partial<Catalog>;
  return { upstreams: Array.isArray(value.upstreams) ? value.upstreams : [], keys: value.keys && typeof value.keys === 'object' ? value.keys : {} };
}

const notFound = (what: string, param: string | null = null) => new GatewayError('not_found', { message: `No ${what} with that id.`, param });

function readOnly(what: string): GatewayError {
  return new GatewayError('read_only', {
    message: `${what} comes from the settings file or the environment: change it there (SIGHUP or a restart applies it).`,
  });
}

/** Where a stored key may be changed: the upstream must exist, the key must be one of the catalog's. */
export function catalogKey(catalog: Catalog, settings: SettingsIds, upstreamId: string, keyId: string): StoredKey {
  checkUpstreamExists(catalog, settings, upstreamId);
  const key = catalog.keys[upstreamId]?.find((k) => k.id === keyId);
  if (key) return key;
  if (settings.keys.get(upstreamId)?.has(keyId)) throw readOnly(`Pool key "${keyId}" of upstream "${upstreamId}"`);
  throw notFound('pool key');
}

export function checkUpstreamExists(catalog: Catalog, settings: SettingsIds, upstreamId: string): void {
  if (!settings.upstreams.has(upstreamId) && !catalog.upstreams.some((u) => u.id === upstreamId)) throw notFound('upstream');
}

export function catalogUpstream(catalog: Catalog, settings: SettingsIds, upstreamId: string): StoredUpstream {
  const upstream = catalog.upstreams.find((u) => u.id === upstreamId);
  if (upstream) return upstream;
  if (settings.upstreams.has(upstreamId)) throw readOnly(`Upstream "${upstreamId}"`);
  throw notFound('upstream');
}

export function addUpstream(catalog: Catalog, settings: SettingsIds, upstream: StoredUpstream): void {
  if (settings.upstreams.has(upstream.id)) {
    throw new GatewayError('conflict', { message: `Upstream "${upstream.id}" is one of the settings; pick another id.`, param: 'id' });
  }
  if (catalog.upstreams.some((u) => u.id === upstream.id)) {
    throw new GatewayError('conflict', { message: `An upstream with id "${upstream.id}" exists.`, param: 'id' });
  }
  catalog.upstreams.push(upstream);
}

/** Removes the upstream and its keys; what runs on them finishes there. */
export function removeUpstream(catalog: Catalog, settings: SettingsIds, upstreamId: string): StoredUpstream {
  const upstream = catalogUpstream(catalog, settings, upstreamId);
  catalog.upstreams = catalog.upstreams.filter((u) => u !== upstream);
  delete catalog.keys[upstreamId];
  return upstream;
}

export function addKey(catalog: Catalog, settings: SettingsIds, upstreamId: string, key: StoredKey): void {
  checkUpstreamExists(catalog, settings, upstreamId);
  const keys = (catalog.keys[upstreamId] ??= []);
  if (settings.keys.get(upstreamId)?.has(key.id) || keys.some((k) => k.id === key.id)) {
    throw new GatewayError('conflict', { message: `Upstream "${upstreamId}" has a pool key with id "${key.id}".`, param: 'id' });
  }
  keys.push(key);
}

export function removeKey(catalog: Catalog, settings: SettingsIds, upstreamId: string, keyId: string): StoredKey {
  const key = catalogKey(catalog, settings, upstreamId, keyId);
  const left = (catalog.keys[upstreamId] ?? []).filter((k) => k !== key);
  if (left.length > 0) catalog.keys[upstreamId] = left;
  else delete catalog.keys[upstreamId];
  return key;
}

/** A key id for a key added without one: `rt-` and the next free number. */
export function nextKeyId(catalog: Catalog, settings: SettingsIds, upstreamId: string): string {
  const taken = new Set([...(settings.keys.get(upstreamId) ?? []), ...(catalog.keys[upstreamId] ?? []).map((k) => k.id)]);
  for (let n = 1; ; n++) if (!taken.has(`rt-${n}`)) return `rt-${n}`;
}

/** Every sealed value of the catalog with where it is kept (the additional data it was sealed with). */
export function* sealedValues(catalog: Catalog): Generator<{ where: string; get: () => string; set: (v: string) => void }> {
  for (const upstream of catalog.upstreams) {
    const proxy = upstream.proxy;
    if (proxy && 'sealed' in proxy) yield { where: proxyPlace(upstream.id), get: () => proxy.sealed, set: (v) => (proxy.sealed = v) };
  }
  for (const [upstreamId, keys] of Object.entries(catalog.keys)) {
    for (const key of keys) {
      yield { where: keyPlace(upstreamId, key.id), get: () => key.sealed, set: (v) => (key.sealed = v) };
      const proxy = key.proxy;
      if (proxy && 'sealed' in proxy) yield { where: proxyPlace(upstreamId, key.id), get: () => proxy.sealed, set: (v) => (proxy.sealed = v) };
    }
  }
}

/** The additional data a pool key is sealed with. */
export const keyPlace = (upstreamId: string, keyId: string): string => `pool key ${upstreamId}/${keyId}`;
export const proxyPlace = (upstreamId: string, keyId?: string): string =>
  keyId === undefined ? `proxy of upstream ${upstreamId}` : `proxy of pool key ${upstreamId}/${keyId}`;
