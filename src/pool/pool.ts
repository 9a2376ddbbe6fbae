// The upstreams and their key pools, built once from the settings. A request goes to the first
// upstream whose model globs match (strictly: a busy upstream does not spill over to the next,
// which may not serve the model), then to one of that upstream's keys: those that allow the model,
// are usable now (health.ts) and were not tried yet by this request, picked by the upstream's
// strategy (strategies.ts), or, for a request that shares a prompt cache with others, by rendezvous
// hashing (rendezvous.ts) so that it goes where that cache is. A recovering key due for its probe
// takes the request first.
//
// The settings' upstreams come first; those added at run time (catalog.ts, kept up to date by
// runtime.ts) follow, and keys added at run time to a settings upstream join its list. A change
// builds new lists and swaps them in whole: a request holds the upstream and key it was given, so
// a key removed or rotated meanwhile serves it to the end (its secret is dropped with the last
// request that holds it), while every selection after the swap sees the new lists.
import { compileGlobs } from '../glob.js';
import { type AliasTable, mergeAliases, resolveAliases } from './aliases.js';
import { type AttemptTicket, type HealthOptions, KeyHealth, type KeyView } from './health.js';
import { type AttemptResult, type Verdict, classifyAttempt } from './outcome.js';
import { headroom } from './rate-headers.js';
import { type Affinity, type AffinitySource, hashText, rendezvousPick } from './rendezvous.js';
import { type Candidate, type Strategy, type StrategyName, createStrategy } from './strategies.js';
import { type AzureForm, type UpstreamKind, azureForm, defaultModels } from './upstream-kind.js';

/** `settings`: from the settings file or the environment, read-only at run time; `store`: added at run time. */
export type PoolSource = 'settings' | 'store';

export interface PoolKeySettings {
  id: string;
  source?: PoolSource;
  key: string;
  weight?: number;
  models?: readonly string[];
  organization?: string;
  project?: string;
  proxy?: string | readonly string[];
}

export interface UpstreamSettings {
  id: string;
  source?: PoolSource;
  baseUrl: string;
  /** `openai` when absent (upstream-kind.ts). */
  kind?: UpstreamKind;
  /** Azure: model -> deployment name. */
  deployments?: Readonly<Record<string, string>>;
  /** Azure: the `api-version` of the classic API. */
  apiVersion?: string;
  models?: readonly string[];
  proxy?: string | readonly string[];
  strategy?: StrategyName;
  /** Public model name -> this upstream's, over the settings' top-level ones (aliases.ts). */
  aliases?: AliasTable;
  keys: readonly PoolKeySettings[];
}

/** What the pool needs of the settings; `Config` fits it. */
export interface PoolSettings {
  upstreams: readonly UpstreamSettings[];
  /** Aliases for every upstream (aliases.ts). */
  aliases?: AliasTable;
  /** `cacheAffinity`: requests with an affinity go by rendezvous hashing (default true). */
  pool?: { cacheAffinity?: boolean };
}

export interface PoolKey {
  readonly id: string;
  readonly upstreamId: string;
  /** `upstreamId/keyId`: unique in the pool (key ids are unique only within their upstream). */
  readonly ref: string;
  readonly source: PoolSource;
  /** The upstream API key. Never logged, never sent to a client. */
  readonly secret: string;
  readonly last4: string;
  readonly weight: number;
  /** hashText of `ref`: the key's own in rendezvous hashing, the same in every process. */
  readonly seed: number;
  readonly organization?: string;
  readonly project?: string;
  readonly proxy?: string | readonly string[];
  readonly models?: readonly string[];
  readonly allowsModel: (model: string) => boolean;
}

export interface Upstream {
  readonly id: string;
  readonly baseUrl: string;
  /** `https://api.openai.com` */
  readonly origin: string;
  /** The base URL's path without a trailing slash, such as `/v1`. */
  readonly basePath: string;
  readonly source: PoolSource;
  readonly kind: UpstreamKind;
  /** Azure only: the API's form, its deployments by model, its api-version. */
  readonly azure?: { readonly form: AzureForm; readonly deployments: ReadonlyMap<string, string>; readonly apiVersion?: string };
  readonly proxy?: string | readonly string[];
  readonly models?: readonly string[];
  readonly strategy: StrategyName;
  /** Its own aliases, as set (the settings' or the catalog's). */
  readonly ownAliases?: AliasTable;
  /** Every alias it serves (the top-level ones and its own) with the model it sends for it. */
  readonly aliases: ReadonlyMap<string, string>;
  /** The model this upstream is sent for a public name: its alias target, or the name itself. */
  readonly modelFor: (model: string) => string;
  /** Its model globs match the name, or the alias's target when the name is one of its aliases. */
  readonly servesModel: (model: string) => boolean;
  readonly keys: readonly PoolKey[];
}

export interface PoolChoice {
  upstream: Upstream;
  key: PoolKey;
  /** The key is recovering and this request is its trial (health.ts). */
  probe?: boolean;
  /** The key was chosen by the request's affinity (rendezvous.ts), not by the strategy. */
  affinity?: AffinitySource;
}

export interface SelectRequest {
  model?: string;
  /** Refs (`PoolKey.ref`) of the keys this request already tried. */
  exclude?: ReadonlySet<string>;
  /** The key that holds an object the request names (objects.ts): that key or none. */
  pinned?: { upstreamId: string; keyId: string };
  /** What groups the request with others that share its prompt cache (src/relay/affinity.ts),
   * asked for only when there is more than one usable key to choose from. */
  affinity?: () => Affinity | undefined;
}

export type Selection =
  | { ok: true; choice: PoolChoice }
  /**
   * `no_upstream`: no upstream serves the model. `no_key`: none of its keys may serve it.
   * `pinned_missing`: the pinned key is no longer configured. `exhausted`: this request tried every
   * key there is. `unavailable`: every key is cooling or disabled; `retryAt` is the earliest
   * recovery (absent when only an admin can bring one back).
   */
  | { ok: false; reason: 'no_upstream' | 'no_key' | 'pinned_missing' | 'exhausted' | 'unavailable'; retryAt?: number };

/** One request on one key. `finish` counts it and applies its outcome to the key's health, once. */
export interface Attempt {
  readonly choice: PoolChoice;
  readonly startedAt: number;
  finish(result: AttemptResult): Verdict;
}

export interface KeyDescription extends KeyView {
  id: string;
  last4: string;
}

export interface UpstreamDescription {
  id: string;
  strategy: StrategyName;
  keys: KeyDescription[];
}

/** What the run-time catalog adds to the settings, secrets opened (runtime.ts). */
export interface RuntimeEntries {
  upstreams: readonly UpstreamSettings[];
  /** Keys added at run time to upstreams of the settings, by upstream id. */
  keys: ReadonlyMap<string, readonly PoolKeySettings[]>;
}

const any = () => true;

export function keyRef(upstreamId: string, keyId: string): string {
  return `${upstreamId}/${keyId}`;
}

function buildKey(upstream: UpstreamSettings, key: PoolKeySettings): PoolKey {
  return {
    id: key.id,
    upstreamId: upstream.id,
    ref: keyRef(upstream.id, key.id),
    source: key.source ?? 'settings',
    secret: key.key,
    last4: key.key.slice(-4),
    weight: Math.max(1, key.weight ?? 1),
    seed: hashText(keyRef(upstream.id, key.id)),
    organization: key.organization,
    project: key.project,
    proxy: key.proxy,
    models: key.models,
    allowsModel: compileGlobs(key.models) ?? any,
  };
}

function buildUpstream(config: UpstreamSettings, topAliases: AliasTable | undefined): Upstream {
  const url = new URL(config.baseUrl);
  const aliases = resolveAliases(mergeAliases(topAliases, config.aliases));
  const kind = config.kind ?? 'openai';
  const models = config.models ?? defaultModels(config);
  const globs = compileGlobs(models) ?? any;
  const modelFor = (model: string): string => aliases.get(model) ?? model;
  return {
    id: config.id,
    baseUrl: config.baseUrl,
    origin: url.origin,
    basePath: url.pathname.replace(/\/+$/, ''),
    source: config.source ?? 'settings',
    kind,
    ...(kind === 'azure'
      ? { azure: { form: azureForm(config.baseUrl), deployments: new Map(Object.entries(config.deployments ?? {})), apiVersion: config.apiVersion } }
      : {}),
    proxy: config.proxy,
    models,
    strategy: config.strategy ?? 'round-robin',
    ownAliases: config.aliases,
    aliases,
    modelFor,
    servesModel: aliases.size === 0 ? globs : (model) => globs(model) || (aliases.has(model) && globs(modelFor(model))),
    keys: config.keys.map((k) => buildKey(config, k)),
  };
}

interface Usable extends Candidate {
  key: PoolKey;
  seed: number;
}

export class Pool {
  readonly health: KeyHealth;
  private current: readonly Upstream[] = [];
  private settings: readonly UpstreamSettings[];
  private topAliases: AliasTable | undefined;
  private runtime: RuntimeEntries = { upstreams: [], keys: new Map() };
  private readonly strategies = new Map<string, { name: StrategyName; strategy: Strategy }>();
  private readonly changeListeners = new Set<() => void>();
  private readonly now: () => number;
  private affinityOn: boolean;

  constructor(config: PoolSettings, options: HealthOptions = {}) {
    this.settings = config.upstreams;
    this.topAliases = config.aliases;
    this.affinityOn = config.pool?.cacheAffinity ?? true;
    this.health = new KeyHealth(options);
    this.now = options.now ?? Date.now;
    this.rebuild();
  }

  get upstreams(): readonly Upstream[] {
    return this.current;
  }

  /** Puts the run-time catalog's upstreams and keys in place of the ones it had. */
  applyRuntime(entries: RuntimeEntries): void {
    this.runtime = entries;
    this.rebuild();
  }

  /** Puts new settings in place (a reload); the run-time entries stay. */
  applySettings(config: PoolSettings): void {
    this.settings = config.upstreams;
    this.topAliases = config.aliases;
    this.affinityOn = config.pool?.cacheAffinity ?? true;
    this.rebuild();
  }

  /** Called after each change of the lists (the masker learns new secrets there). */
  onChange(listener: () => void): () => void {
    this.changeListeners.add(listener);
    return () => this.changeListeners.delete(listener);
  }

  private rebuild(): void {
    const settingsIds = new Set(this.settings.map((u) => u.id));
    const merged: UpstreamSettings[] = this.settings.map((u) => {
      // A key id of the settings wins over one added at run time (refused by the admin API, but
      // the settings may have gained it since): two keys of one id would share health and pins.
      const own = new Set(u.keys.map((k) => k.id));
      const added = this.runtime.keys.get(u.id)?.filter((k) => !own.has(k.id));
      return added?.length ? { ...u, keys: [...u.keys, ...added] } : u;
    });
    // A run-time upstream never shadows one of the settings (the admin API refuses such an id).
    for (const u of this.runtime.upstreams) if (!settingsIds.has(u.id)) merged.push(u);
    const upstreams = merged.map((u) => buildUpstream(u, this.topAliases));
    for (const upstream of upstreams) {
      const kept = this.strategies.get(upstream.id);
      if (kept?.name !== upstream.strategy) this.strategies.set(upstream.id, { name: upstream.strategy, strategy: createStrategy(upstream.strategy) });
    }
    for (const id of this.strategies.keys()) if (!upstreams.some((u) => u.id === id)) this.strategies.delete(id);
    this.current = upstreams;
    for (const listener of this.changeListeners) listener();
  }

  /** `pool.cacheAffinity`: whether a request's affinity is worth working out. */
  get cacheAffinity(): boolean {
    return this.affinityOn;
  }

  get size(): number {
    return this.upstreams.reduce((n, u) => n + u.keys.length, 0);
  }

  /** Keys that could take a request now, probes included (`GET /readyz`: at least one usable pool key). */
  usableCount(): number {
    let usable = 0;
    for (const u of this.upstreams) for (const k of u.keys) if (this.health.availability(k.ref).kind !== 'resting') usable++;
    return usable;
  }

  /** Every pool key's secret, for masking (src/relay/mask.ts). */
  secrets(): string[] {
    return this.upstreams.flatMap((u) => u.keys.map((k) => k.secret));
  }

  /** The upstream for a model: the first whose globs match; without a model, the first. */
  upstreamFor(model: string | undefined): Upstream | undefined {
    if (model === undefined) return this.upstreams[0];
    return this.upstreams.find((u) => u.servesModel(model));
  }

  upstreamById(id: string): Upstream | undefined {
    return this.upstreams.find((u) => u.id === id);
  }

  /** The settings' top-level aliases (a run-time upstream's own are checked over them). */
  get aliases(): AliasTable {
    return this.topAliases ?? {};
  }

  find(upstreamId: string, keyId: string): PoolChoice | undefined {
    const upstream = this.upstreams.find((u) => u.id === upstreamId);
    const key = upstream?.keys.find((k) => k.id === keyId);
    return upstream && key ? { upstream, key } : undefined;
  }

  /** The next key for this request, or undefined when none can serve it now. */
  select(model: string | undefined, request: Omit<SelectRequest, 'model'> = {}): PoolChoice | undefined {
    const selection = this.choose({ ...request, model });
    return selection.ok ? selection.choice : undefined;
  }

  choose(request: SelectRequest): Selection {
    const { model, exclude, pinned, affinity } = request;
    let upstream: Upstream | undefined;
    let keys: readonly PoolKey[];
    if (pinned) {
      const found = this.find(pinned.upstreamId, pinned.keyId);
      if (!found) return { ok: false, reason: 'pinned_missing' };
      upstream = found.upstream;
      keys = [found.key];
    } else {
      upstream = this.upstreamFor(model);
      if (!upstream) return { ok: false, reason: 'no_upstream' };
      keys = upstream.keys;
    }
    // A key's model globs, like its upstream's, may name the alias or the model it stands for.
    const sent = model === undefined ? undefined : upstream.modelFor(model);
    const allowed = model === undefined ? keys : keys.filter((k) => k.allowsModel(model) || (sent !== model && k.allowsModel(sent as string)));
    if (allowed.length === 0) return { ok: false, reason: 'no_key' };
    const untried = exclude ? allowed.filter((k) => !exclude.has(k.ref)) : allowed;
    if (untried.length === 0) return { ok: false, reason: 'exhausted' };

    const now = this.now();
    const usable: Usable[] = [];
    let retryAt: number | undefined;
    for (const key of untried) {
      const availability = this.health.availability(key.ref);
      if (availability.kind === 'probe') {
        this.health.claimProbe(key.ref);
        return { ok: true, choice: { upstream, key, probe: true } };
      }
      if (availability.kind === 'resting') {
        if (availability.until !== undefined) retryAt = Math.min(retryAt ?? Infinity, availability.until);
        continue;
      }
      const stats = this.health.stats(key.ref);
      usable.push({
        key,
        seed: key.seed,
        index: upstream.keys.indexOf(key),
        weight: key.weight,
        inFlight: stats.inFlight,
        headroom: headroom(this.health.rate(key.ref), now),
      });
    }
    // A pinned request has one candidate: asking the strategy would move its cursor (round robin,
    // smooth weights) for a pick it did not make, skewing the unpinned traffic. So would one that
    // goes by its affinity: the first usable key by rendezvous rank, so that a retry (which leaves
    // out the keys tried) goes on down the same ranking.
    // With one usable key there is nothing to rank: the prompt is not read for it, and that key
    // serves without asking the strategy (a retry down the ranking must not move its cursor either).
    const ranked = !pinned && affinity !== undefined && this.affinityOn;
    const byAffinity = ranked && usable.length > 1 ? affinity() : undefined;
    const picked =
      pinned || (ranked && usable.length === 1) ? usable[0] : byAffinity ? rendezvousPick(byAffinity.hash, usable) : this.strategies.get(upstream.id)?.strategy.pick(usable);
    if (!picked) return { ok: false, reason: 'unavailable', ...(retryAt === undefined ? {} : { retryAt }) };
    return { ok: true, choice: byAffinity ? { upstream, key: picked.key, affinity: byAffinity.source } : { upstream, key: picked.key } };
  }

  /** Starts a request on the chosen key; call `finish` with its outcome, whatever it is. */
  start(choice: PoolChoice): Attempt {
    const ticket: AttemptTicket = this.health.begin(choice.key.ref, choice.probe === true);
    let verdict: Verdict | undefined;
    return {
      choice,
      startedAt: ticket.startedAt,
      finish: (result) => {
        if (verdict) return verdict;
        verdict = classifyAttempt(result);
        // A secret rotated away while the attempt ran: what it earned (the 401 of an old secret
        // revoked at once) says nothing of the new secret, which keeps the key id's health.
        const now = this.find(choice.upstream.id, choice.key.id)?.key;
        const rotated = now !== undefined && now.secret !== choice.key.secret;
        this.health.end(ticket, rotated ? { kind: 'ignored', reason: 'rotated' } : verdict, result.headers);
        return verdict;
      },
    };
  }

  /** The admin's enable/disable; false when there is no such key. */
  setEnabled(upstreamId: string, keyId: string, enabled: boolean): boolean {
    const found = this.find(upstreamId, keyId);
    if (!found) return false;
    if (enabled) this.health.enable(found.key.ref);
    else this.health.disable(found.key.ref);
    return true;
  }

  /** Each upstream and key as `GET /admin/upstreams` shows them (no secret, last 4 characters only). */
  describe(): UpstreamDescription[] {
    return this.upstreams.map((u) => ({
      id: u.id,
      strategy: u.strategy,
      keys: u.keys.map((k) => ({ id: k.id, last4: k.last4, ...this.health.view(k.ref) })),
    }));
  }

  close(): void {
    this.health.close();
  }
}
