// Keeps this process's pool in step with the run-time catalog (catalog.ts): at start it reads the
// catalog and opens every sealed secret, and refuses to start when one does not open (a wrong
// KEYRELAY_SECRET must never serve garbled keys); after that, each notice of a new version
// (catalog-store.ts) reads the catalog again and swaps the pool's lists (pool.ts). One reload runs at
// a time; notices that come meanwhile make one more. A version that does not open (a process of
// another secret wrote it) leaves the pool as it was and says so in the log.
import type { Logger } from 'pino';
import { type SecretBox, SecretError } from '../secrets/box.js';
import { type Catalog, type StoredProxy, keyPlace, proxyPlace } from './catalog.js';
import type { CatalogStore } from './catalog-store.js';
import type { Pool, PoolKeySettings, RuntimeEntries, UpstreamSettings } from './pool.js';

function openProxy(box: SecretBox, proxy: StoredProxy | undefined, where: string): string[] | undefined {
  if (!proxy) return undefined;
  if ('urls' in proxy) return proxy.urls;
  return JSON.parse(box.open(proxy.sealed, where)) as string[];
}

/** The catalog with its secrets opened, as the pool takes it; throws SecretError. */
export function openCatalog(catalog: Catalog, box: SecretBox): RuntimeEntries {
  const keysOf = (upstreamId: string): PoolKeySettings[] =>
    (catalog.keys[upstreamId] ?? []).map((k) => ({
      id: k.id,
      source: 'store',
      key: box.open(k.sealed, keyPlace(upstreamId, k.id)),
      weight: k.weight,
      models: k.models,
      organization: k.organization,
      project: k.project,
      proxy: openProxy(box, k.proxy, proxyPlace(upstreamId, k.id)),
    }));
  const upstreams: UpstreamSettings[] = catalog.upstreams.map((u) => ({
    id: u.id,
    source: 'store',
    baseUrl: u.baseUrl,
    kind: u.kind,
    ...(u.deployments ? { deployments: u.deployments } : {}),
    ...(u.apiVersion ? { apiVersion: u.apiVersion } : {}),
    models: u.models,
    strategy: u.strategy,
    aliases: u.aliases,
    proxy: openProxy(box, u.proxy, proxyPlace(u.id)),
    keys: keysOf(u.id),
  }));
  const own = new Set(catalog.upstreams.map((u) => u.id));
  const keys = new Map<string, PoolKeySettings[]>();
  for (const upstreamId of Object.keys(catalog.keys)) if (!own.has(upstreamId)) keys.set(upstreamId, keysOf(upstreamId));
  return { upstreams, keys };
}

export interface CatalogSync {
  /** The version this process serves. */
  readonly version: number;
  /** Reads the catalog now and applies it; resolves once this process serves that version or a newer one. */
  reload(): Promise<void>;
  close(): void;
}

/** Applies the catalog as it is now (throws SecretError when it does not open), then follows its changes. */
export async function startCatalogSync(pool: Pool, store: CatalogStore, box: SecretBox, log: Logger): Promise<CatalogSync> {
  let version = -1;
  let running: Promise<void> | undefined;
  let again = false;
  let failedVersion = -1;

  async function applyOnce(strict: boolean): Promise<void> {
    const read = await store.read();
    if (read.version === version) return;
    let entries: RuntimeEntries;
    try {
      entries = openCatalog(read.catalog, box);
    } catch (err) {
      if (strict) throw err;
      if (failedVersion !== read.version) log.error({ version: read.version, reason: (err as Error).message }, 'pool catalog: a new version does not open; this process keeps serving the one it has');
      failedVersion = read.version;
      return;
    }
    pool.applyRuntime(entries);
    const changed = version >= 0;
    version = read.version;
    const keys = entries.upstreams.reduce((n, u) => n + u.keys.length, 0) + [...entries.keys.values()].reduce((n, k) => n + k.length, 0);
    if (changed) log.info({ version, upstreams: entries.upstreams.length, keys }, 'pool catalog applied');
    else if (keys > 0 || entries.upstreams.length > 0) log.info({ version, upstreams: entries.upstreams.map((u) => u.id), keys }, 'pool catalog: upstreams and keys added at run time');
  }

  function reload(): Promise<void> {
    if (running) {
      again = true;
      return running;
    }
    running = (async () => {
      do {
        again = false;
        try {
          await applyOnce(false);
        } catch (err) {
          log.warn({ reason: (err as Error).message }, 'pool catalog: cannot read it now; this process keeps serving the one it has');
        }
      } while (again);
    })().finally(() => {
      running = undefined;
    });
    return running;
  }

  try {
    await applyOnce(true);
  } catch (err) {
    if (err instanceof SecretError) throw err;
    // The store is down at start: the gateway starts on its settings (as it does for quotas) and
    // takes the catalog up when the store answers (the version poll), refusing then what does not open.
    log.warn({ reason: (err as Error).message }, 'pool catalog: cannot read it at start; serving the settings\' upstreams and keys until the store answers');
  }
  // A notice without a version (pub/sub) always reloads; the poll's counter only when it differs
  // from what this process serves and from a version already found not to open.
  const unwatch = store.watch((seen) => {
    if (seen === undefined || (seen !== version && seen !== failedVersion)) void reload();
  });
  return {
    get version() {
      return version;
    },
    reload,
    close: unwatch,
  };
}
