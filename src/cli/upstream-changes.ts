// keyrelay upstreams add|update|remove|test-key, keyrelay upstreams keys add|update|remove|rotate|test,
// keyrelay secrets rotate: the run-time pool through the admin API (docs/key-pool.md, Run-time
// changes). A pool key's secret is read from standard input (secret-input.ts), never an argument.
import { type Command, type Context, type OptionSpec, type OptionValues, UsageError } from './command.js';
import { answer, fields, orDash } from './format.js';
import { list, refusePassword, text, wholeNumber } from './options.js';
import { readSecret } from './secret-input.js';

interface ApiKey {
  id: string;
  source: string;
  last4: string;
  weight: number;
  models: string[] | null;
  organization: string | null;
  project: string | null;
  proxy: string[] | null;
  state: string;
}

interface ApiUpstream {
  id: string;
  source: string;
  kind?: string;
  deployments?: Record<string, string>;
  apiVersion?: string | null;
  baseUrl: string;
  models: string[] | null;
  strategy: string;
  proxy: string[] | null;
  keys: ApiKey[];
}

interface KeyTest {
  ok: boolean;
  status: number | null;
  latencyMs: number;
  models: string[];
  error: { code: string; message: string } | null;
}

const seg = (value: string): string => encodeURIComponent(value);
const listed = (values: string[] | null): string => (values?.length ? values.join(', ') : 'any');

const upstreamFields = (u: ApiUpstream): string =>
  fields([
    ['id', u.id],
    ['source', u.source],
    ['kind', u.kind ?? 'openai'],
    ['baseUrl', u.baseUrl],
    ...(u.deployments ? ([['deployments', Object.entries(u.deployments).map(([m, d]) => `${m}=${d}`).join(', ') || '-']] as Array<[string, string]>) : []),
    ...(u.apiVersion ? ([['apiVersion', u.apiVersion]] as Array<[string, string]>) : []),
    ['models', listed(u.models)],
    ['strategy', u.strategy],
    ['proxy', u.proxy?.join(', ') ?? '-'],
    ['keys', String(u.keys.length)],
  ]);

const keyFields = (k: ApiKey): string =>
  fields([
    ['id', k.id],
    ['source', k.source],
    ['key', `…${k.last4}`],
    ['weight', String(k.weight)],
    ['models', listed(k.models)],
    ['organization', orDash(k.organization)],
    ['project', orDash(k.project)],
    ['proxy', k.proxy?.join(', ') ?? '-'],
    ['state', k.state],
  ]);

function testFields(t: KeyTest): string {
  const head = t.ok ? `The key works: ${t.models.length} models, ${t.latencyMs} ms.\n` : `The key failed: ${t.error?.message ?? 'no answer'}\n`;
  return head + fields([['status', t.status === null ? '-' : String(t.status)], ['latencyMs', String(t.latencyMs)], ['error', t.error ? t.error.code : '-']]);
}

function either(options: OptionValues, a: string, b: string): void {
  if (options[a] !== undefined && options[b] !== undefined) throw new UsageError(`--${a} and --${b} contradict each other`);
}

/** `--x V` sets, `--no-x` clears (null), neither leaves it. */
function setOrClear(patch: Record<string, unknown>, options: OptionValues, name: string, field: string, value: unknown): void {
  either(options, name, `no-${name}`);
  if (options[`no-${name}`] === true) patch[field] = null;
  else if (value !== undefined) patch[field] = value;
}

// A proxy password is a secret: never taken as an argument (options.ts, refusePassword).
function proxyOf(options: OptionValues): string[] | undefined {
  const proxies = list(options, 'proxy');
  refusePassword('--proxy', proxies, 'proxy');
  return proxies;
}

const UPSTREAM_OPTIONS: Record<string, OptionSpec> = {
  'base-url': { type: 'string', value: 'URL', help: 'the OpenAI-compatible API, such as https://api.openai.com/v1' },
  models: { type: 'string', value: 'a,b', help: 'models it serves, glob patterns (default: any)' },
  strategy: { type: 'string', value: 'NAME', help: 'round-robin, weighted, least-in-flight or rate-aware' },
  proxy: { type: 'string', value: 'URL,URL', help: 'outbound proxies tried in order, or "direct"' },
  deployments: { type: 'string', value: 'model=name,…', help: 'Azure: the deployment of each model (docs/azure.md)' },
  'api-version': { type: 'string', value: 'VERSION', help: 'Azure classic API: its api-version, such as 2024-10-21' },
};
const KIND_OPTION: Record<string, OptionSpec> = { kind: { type: 'string', value: 'KIND', help: 'openai (default) or azure' } };
const KEY_OPTIONS: Record<string, OptionSpec> = {
  weight: { type: 'string', value: 'N', help: 'its share of the traffic (1 to 1000)' },
  models: { type: 'string', value: 'a,b', help: 'models it may serve, glob patterns (default: any)' },
  organization: { type: 'string', value: 'ID', help: 'its OpenAI-Organization' },
  project: { type: 'string', value: 'ID', help: 'its OpenAI-Project' },
  proxy: { type: 'string', value: 'URL,URL', help: 'its own outbound proxies, or "direct"' },
};
const clearing = (names: string[], what: string): Record<string, OptionSpec> =>
  Object.fromEntries(names.map((n) => [`no-${n}`, { type: 'boolean', help: `remove its ${n === 'models' ? 'model list (any model)' : n}${what}` } as OptionSpec]));

/** `--deployments gpt-4o=prod,gpt-4o-mini=mini` as a map. */
function deploymentsOf(options: OptionValues): Record<string, string> | undefined {
  const pairs = list(options, 'deployments');
  if (pairs === undefined) return undefined;
  const map: Record<string, string> = {};
  for (const pair of pairs) {
    const at = pair.indexOf('=');
    if (at <= 0 || at === pair.length - 1) throw new UsageError(`--deployments: "${pair}" is not model=deployment`);
    map[pair.slice(0, at)] = pair.slice(at + 1);
  }
  return map;
}

function upstreamBody(options: OptionValues, patch: boolean): Record<string, unknown> {
  const body: Record<string, unknown> = {};
  const baseUrl = text(options, 'base-url');
  if (baseUrl !== undefined) body.baseUrl = baseUrl;
  setOrClear(body, options, 'models', 'models', list(options, 'models'));
  const strategy = text(options, 'strategy');
  if (strategy !== undefined) body.strategy = strategy;
  setOrClear(body, options, 'proxy', 'proxy', proxyOf(options));
  const kind = text(options, 'kind');
  if (kind !== undefined) body.kind = kind;
  setOrClear(body, options, 'deployments', 'deployments', deploymentsOf(options));
  setOrClear(body, options, 'api-version', 'apiVersion', text(options, 'api-version'));
  if (patch && Object.keys(body).length === 0) throw new UsageError('nothing to change; "keyrelay upstreams update --help" lists the options');
  return body;
}

function keyBody(options: OptionValues, patch: boolean): Record<string, unknown> {
  const body: Record<string, unknown> = {};
  const weight = wholeNumber(options, 'weight');
  if (weight !== undefined) body.weight = weight;
  setOrClear(body, options, 'models', 'models', list(options, 'models'));
  setOrClear(body, options, 'organization', 'organization', text(options, 'organization'));
  setOrClear(body, options, 'project', 'project', text(options, 'project'));
  setOrClear(body, options, 'proxy', 'proxy', proxyOf(options));
  if (patch) {
    either(options, 'enable', 'disable');
    if (options.enable === true) body.enabled = true;
    if (options.disable === true) body.enabled = false;
    if (Object.keys(body).length === 0) throw new UsageError('nothing to change; "keyrelay upstreams keys update --help" lists the options');
  }
  return body;
}

const keyPath = (upstream: string, keyId: string, action = ''): string => `/upstreams/${seg(upstream)}/keys/${seg(keyId)}${action ? `/${action}` : ''}`;
const printKey = (ctx: Context, key: ApiKey) => answer(ctx, key, keyFields);

export const upstreamChangeCommands: readonly Command[] = [
  {
    path: ['upstreams', 'add'],
    args: ['<id>'],
    options: { ...UPSTREAM_OPTIONS, ...KIND_OPTION },
    summary: 'add an upstream at run time; every gateway process serves it within a second',
    async run(ctx, [id = ''], options) {
      if (text(options, 'base-url') === undefined) throw new UsageError('missing --base-url');
      const created = await ctx.admin().post<ApiUpstream>('/upstreams', { id, ...upstreamBody(options, false) });
      return answer(ctx, created, upstreamFields);
    },
  },
  {
    path: ['upstreams', 'update'],
    args: ['<id>'],
    options: { ...UPSTREAM_OPTIONS, ...clearing(['models', 'proxy', 'deployments', 'api-version'], '') },
    summary: 'change an upstream added at run time',
    async run(ctx, [id = ''], options) {
      return answer(ctx, await ctx.admin().patch<ApiUpstream>(`/upstreams/${seg(id)}`, upstreamBody(options, true)), upstreamFields);
    },
  },
  {
    path: ['upstreams', 'remove'],
    args: ['<id>'],
    summary: 'remove an upstream added at run time and its keys; requests running on them finish',
    async run(ctx, [id = '']) {
      return answer(ctx, await ctx.admin().delete<{ id: string }>(`/upstreams/${seg(id)}`), (r) => `Removed upstream ${r.id} and its keys.\n`);
    },
  },
  {
    path: ['upstreams', 'test-key'],
    args: ['<upstream>'],
    options: { organization: KEY_OPTIONS.organization as OptionSpec, project: KEY_OPTIONS.project as OptionSpec, proxy: KEY_OPTIONS.proxy as OptionSpec },
    summary: 'try a key not yet added (read from standard input) with GET /models through the upstream',
    async run(ctx, [upstream = ''], options) {
      const proxy = proxyOf(options);
      const key = await readSecret(ctx.io, 'the key to test');
      const body: Record<string, unknown> = { key };
      for (const name of ['organization', 'project'] as const) if (text(options, name) !== undefined) body[name] = text(options, name);
      if (proxy) body.proxy = proxy;
      const result = await ctx.admin().post<KeyTest>(`/upstreams/${seg(upstream)}/test-key`, body);
      answer(ctx, result, testFields);
      return result.ok ? 0 : 1;
    },
  },
  {
    path: ['upstreams', 'keys', 'add'],
    args: ['<upstream>'],
    options: { id: { type: 'string', value: 'ID', help: 'the key id (default: rt-1, rt-2 …)' }, ...KEY_OPTIONS },
    summary: 'add a pool key, its secret read from standard input; sealed under KEYRELAY_SECRET',
    async run(ctx, [upstream = ''], options) {
      const body = keyBody(options, false);
      const key = await readSecret(ctx.io, 'the pool key');
      const id = text(options, 'id');
      return printKey(ctx, await ctx.admin().post<ApiKey>(`/upstreams/${seg(upstream)}/keys`, { ...(id ? { id } : {}), key, ...body }));
    },
  },
  {
    path: ['upstreams', 'keys', 'update'],
    args: ['<upstream>', '<keyId>'],
    options: {
      ...KEY_OPTIONS,
      ...clearing(['models', 'organization', 'project', 'proxy'], ''),
      enable: { type: 'boolean', help: 'put it back into service' },
      disable: { type: 'boolean', help: 'take it out of service until enabled' },
    },
    summary: 'change a pool key added at run time (weight, models, proxy, enabled …)',
    async run(ctx, [upstream = '', keyId = ''], options) {
      return printKey(ctx, await ctx.admin().patch<ApiKey>(keyPath(upstream, keyId), keyBody(options, true)));
    },
  },
  {
    path: ['upstreams', 'keys', 'remove'],
    args: ['<upstream>', '<keyId>'],
    summary: 'remove a pool key added at run time; requests running on it finish',
    async run(ctx, [upstream = '', keyId = '']) {
      const removed = await ctx.admin().delete<{ id: string; last4: string }>(keyPath(upstream, keyId));
      return answer(ctx, removed, (r) => `Removed pool key ${r.id} (…${r.last4}) of upstream ${upstream}.\n`);
    },
  },
  {
    path: ['upstreams', 'keys', 'rotate'],
    args: ['<upstream>', '<keyId>'],
    summary: 'give a pool key a new secret (from standard input); the old one serves what runs on it',
    async run(ctx, [upstream = '', keyId = '']) {
      const key = await readSecret(ctx.io, 'the new secret');
      return printKey(ctx, await ctx.admin().post<ApiKey>(keyPath(upstream, keyId, 'rotate'), { key }));
    },
  },
  {
    path: ['upstreams', 'keys', 'test'],
    args: ['<upstream>', '<keyId>'],
    summary: 'GET /models with the pool key, through its own proxy: does it work from here?',
    async run(ctx, [upstream = '', keyId = '']) {
      const result = await ctx.admin().post<KeyTest>(keyPath(upstream, keyId, 'test'), undefined);
      answer(ctx, result, testFields);
      return result.ok ? 0 : 1;
    },
  },
  {
    path: ['secrets', 'rotate'],
    args: [],
    summary: 're-seal every stored secret under KEYRELAY_SECRET (the old one set as KEYRELAY_SECRET_PREVIOUS)',
    async run(ctx) {
      const result = await ctx.admin().post<{ keyId: string; resealed: number; total: number }>('/secrets/rotate', undefined);
      return answer(ctx, result, (r) => `Re-sealed ${r.resealed} of ${r.total} secrets under key id ${r.keyId}.\n`);
    },
  },
];
