// The upstreams and their key pools, built once from the settings. Selection is by model (the
// first upstream whose globs match), then round robin over that upstream's keys that allow it.
import type { Config, PoolKeyConfig, UpstreamConfig } from '../config.js';
import { compileGlobs } from '../glob.js';

export interface PoolKey {
  readonly id: string;
  readonly upstreamId: string;
  /** The upstream API key. Never logged, never sent to a client. */
  readonly secret: string;
  readonly last4: string;
  readonly weight: number;
  readonly organization?: string;
  readonly project?: string;
  readonly proxy?: string | readonly string[];
  readonly allowsModel: (model: string) => boolean;
}

export interface Upstream {
  readonly id: string;
  readonly baseUrl: string;
  /** `https://api.openai.com` */
  readonly origin: string;
  /** The base URL's path without a trailing slash, such as `/v1`. */
  readonly basePath: string;
  readonly proxy?: string | readonly string[];
  readonly servesModel: (model: string) => boolean;
  readonly keys: readonly PoolKey[];
}

export interface PoolChoice {
  upstream: Upstream;
  key: PoolKey;
}

const any = () => true;

function buildKey(upstream: UpstreamConfig, key: PoolKeyConfig): PoolKey {
  return {
    id: key.id,
    upstreamId: upstream.id,
    secret: key.key,
    last4: key.key.slice(-4),
    weight: key.weight,
    organization: key.organization,
    project: key.project,
    proxy: key.proxy,
    allowsModel: compileGlobs(key.models) ?? any,
  };
}

function buildUpstream(config: UpstreamConfig): Upstream {
  const url = new URL(config.baseUrl);
  return {
    id: config.id,
    baseUrl: config.baseUrl,
    origin: url.origin,
    basePath: url.pathname.replace(/\/+$/, ''),
    proxy: config.proxy,
    servesModel: compileGlobs(config.models) ?? any,
    keys: config.keys.map((k) => buildKey(config, k)),
  };
}

export class Pool {
  readonly upstreams: readonly Upstream[];
  private readonly cursors = new Map<string, number>();

  constructor(config: Pick<Config, 'upstreams'>) {
    this.upstreams = config.upstreams.map(buildUpstream);
  }

  get size(): number {
    return this.upstreams.reduce((n, u) => n + u.keys.length, 0);
  }

  /** The upstream for a model: the first whose globs match; without a model, the first. */
  upstreamFor(model: string | undefined): Upstream | undefined {
    if (model === undefined) return this.upstreams[0];
    return this.upstreams.find((u) => u.servesModel(model));
  }

  /** The next key for this request, or undefined when no key can serve it. */
  select(model: string | undefined): PoolChoice | undefined {
    const upstream = this.upstreamFor(model);
    if (!upstream) return undefined;
    const keys = model === undefined ? upstream.keys : upstream.keys.filter((k) => k.allowsModel(model));
    if (keys.length === 0) return undefined;
    const cursor = this.cursors.get(upstream.id) ?? 0;
    this.cursors.set(upstream.id, (cursor + 1) % 1_000_000_007);
    const key = keys[cursor % keys.length];
    return key && { upstream, key };
  }
}
