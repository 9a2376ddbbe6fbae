// Settings: one TypeBox schema, validated once at start. The type is derived from the schema so
// the two cannot drift. Sources, weakest first: schema defaults, the YAML file, the environment.
import { existsSync, readFileSync } from 'node:fs';
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import type { Permission } from './operations/costs.js';
import { parse as parseYaml } from 'yaml';
import { AlertsSettings } from './alerts/settings.js';
import { AuditSettings } from './audit/settings.js';
import { ConsoleSettings } from './console-server/settings.js';
import { CorsSettings, OriginError, parseOrigins } from './inbound/origins.js';
import { trustedProxyProblem } from './inbound/trusted-proxies.js';
import { aliasProblem } from './pool/aliases.js';
import { STRATEGIES } from './pool/strategies.js';
import { API_VERSION_PATTERN, DEPLOYMENT_PATTERN, UPSTREAM_KINDS, defaultModels, kindFault } from './pool/upstream-kind.js';
import { proxyEnvFrom } from './proxy/env.js';
import { DIRECT, ProxyUrlError, parseProxyUrl } from './proxy/url.js';
import { SecretError, secretBoxFrom } from './secrets/box.js';

const MB = 1024 * 1024;

// One proxy URL, or a list tried in order (a failing one is set aside for `proxyOptions.cooldownMs`).
// `direct` names no proxy. Checked by checkProxies below, whose messages never quote a URL.
const ProxySetting = Type.Union([Type.String({ minLength: 1 }), Type.Array(Type.String({ minLength: 1 }), { minItems: 1 })]);

const PoolKeySchema = Type.Object(
  {
    id: Type.String({ minLength: 1, pattern: '^[A-Za-z0-9._-]+$' }),
    key: Type.String({ minLength: 1 }),
    weight: Type.Integer({ minimum: 1, default: 1 }),
    models: Type.Optional(Type.Array(Type.String())),
    organization: Type.Optional(Type.String()),
    project: Type.Optional(Type.String()),
    proxy: Type.Optional(ProxySetting),
  },
  { additionalProperties: false },
);

// A price in US dollars. At most a million (per million tokens, per image, minute or million
// characters): far past any real price, and every cost stays a finite number.
const Rate = Type.Number({ minimum: 0, maximum: 1_000_000 });

const PriceSchema = Type.Object(
  {
    input: Rate,
    cachedInput: Type.Optional(Rate),
    output: Type.Optional(Rate),
    // Audio and image tokens, per million; without them, the text rates above.
    audioInput: Type.Optional(Rate),
    cachedAudioInput: Type.Optional(Rate),
    audioOutput: Type.Optional(Rate),
    imageInput: Type.Optional(Rate),
    imageOutput: Type.Optional(Rate),
    // Per image, by `quality/size` or `size` (`hd/1024x1792`, `512x512`).
    perImage: Type.Optional(Type.Record(Type.RegExp(/^([a-z]+\/)?[0-9]+x[0-9]+$/), Rate, { additionalProperties: false })),
    // Per minute of audio (whisper-1), per million characters of input (tts-1).
    perMinute: Type.Optional(Rate),
    perMillionChars: Type.Optional(Rate),
  },
  { additionalProperties: false },
);

/** What one call of an operation refused unless allowed reserves and is charged, in US dollars,
 * by the permission that opens it, unless the settings say otherwise (docs/metering.md). */
export const ALLOWED_ROUTE_USD: Readonly<Record<Permission, number>> = {
  realtime_client_secrets: 5,
  realtime_calls: 5,
  chatkit_sessions: 1,
  eval_runs: 10,
  fine_tuning: 25,
  graders: 1,
  video_edits: 10,
};

// Public model name -> the name the upstream knows (docs/models.md); checked by checkAliases below.
const Aliases = Type.Record(Type.String(), Type.String());

const UpstreamSchema = Type.Object(
  {
    id: Type.String({ minLength: 1, pattern: '^[A-Za-z0-9._-]+$' }),
    baseUrl: Type.String({ pattern: '^https?://' }),
    // `azure`: Azure OpenAI, with `deployments` and, for the classic API, `apiVersion` (docs/azure.md).
    // Absent: `openai`.
    kind: Type.Optional(Type.Union(UPSTREAM_KINDS.map((k) => Type.Literal(k)))),
    deployments: Type.Optional(Type.Record(Type.String({ minLength: 1 }), Type.String({ pattern: DEPLOYMENT_PATTERN }))),
    apiVersion: Type.Optional(Type.String({ pattern: API_VERSION_PATTERN })),
    // Glob patterns of the models this upstream serves; requests are routed to the first match.
    // Absent: any model, or for kind azure the models its `deployments` name.
    models: Type.Optional(Type.Array(Type.String())),
    proxy: Type.Optional(ProxySetting),
    strategy: Type.Union(STRATEGIES.map((name) => Type.Literal(name)), { default: 'round-robin' }),
    // Laid over the top-level `aliases` for this upstream.
    aliases: Type.Optional(Aliases),
    keys: Type.Array(PoolKeySchema, { default: [] }),
  },
  { additionalProperties: false },
);

export const ConfigSchema = Type.Object(
  {
    host: Type.String({ default: '127.0.0.1' }),
    port: Type.Integer({ minimum: 0, maximum: 65535, default: 8080 }),
    adminToken: Type.Optional(Type.String({ minLength: 16 })),
    // KEYRELAY_SECRET and, during its rotation, KEYRELAY_SECRET_PREVIOUS: 32 bytes in hex or base64
    // that seal the secrets added at run time (src/secrets/box.ts).
    secret: Type.Optional(Type.String({ minLength: 1 })),
    secretPrevious: Type.Optional(Type.String({ minLength: 1 })),
    logLevel: Type.Union(
      ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)),
      { default: 'info' },
    ),
    tls: Type.Optional(
      Type.Object({ cert: Type.String(), key: Type.String() }, { additionalProperties: false }),
    ),
    redis: Type.Object(
      {
        url: Type.Optional(Type.String({ pattern: '^rediss?://' })),
        clusterNodes: Type.Optional(Type.Array(Type.String({ pattern: '^[^:]+:[0-9]+$' }))),
      },
      { additionalProperties: false, default: {} },
    ),
    // Outbound proxy for every upstream that names none (KEYRELAY_PROXY sets the default upstream's).
    proxy: Type.Optional(ProxySetting),
    proxyOptions: Type.Object(
      {
        // PEM file of the CA that signed an https:// proxy's certificate, trusted besides Node's own.
        caFile: Type.Optional(Type.String({ minLength: 1 })),
        // How long a proxy that failed is passed over while its list has another.
        cooldownMs: Type.Integer({ minimum: 0, default: 30_000 }),
      },
      { additionalProperties: false, default: {} },
    ),
    // HTTPS_PROXY, HTTP_PROXY, ALL_PROXY and NO_PROXY as curl reads them (src/proxy/env.ts).
    proxyEnv: Type.Object(
      {
        httpsProxy: Type.Optional(Type.String()),
        httpProxy: Type.Optional(Type.String()),
        allProxy: Type.Optional(Type.String()),
        noProxy: Type.Optional(Type.String()),
      },
      { additionalProperties: false, default: {} },
    ),
    limits: Type.Object(
      {
        jsonBodyBytes: Type.Integer({ minimum: 1024, default: 50 * MB }),
        multipartBodyBytes: Type.Integer({ minimum: 1024, default: 512 * MB }),
        // Any other content type (raw audio, SDP, octet streams).
        otherBodyBytes: Type.Integer({ minimum: 1024, default: 512 * MB }),
      },
      { additionalProperties: false, default: {} },
    ),
    // WebSocket sessions (docs/websockets.md): a client message past its bound closes the
    // session with 1009; an upstream one past its bound too (it could not be metered).
    websocket: Type.Object(
      {
        clientMessageBytes: Type.Integer({ minimum: 1024, default: 16 * MB }),
        upstreamMessageBytes: Type.Integer({ minimum: 1024, default: 64 * MB }),
        // Responses one session may have admitted and not yet ended.
        maxResponsesInFlight: Type.Integer({ minimum: 1, default: 8 }),
      },
      { additionalProperties: false, default: {} },
    ),
    timeouts: Type.Object(
      {
        connectMs: Type.Integer({ minimum: 1, default: 10_000 }),
        // Until the upstream's status line and headers arrive; long reasoning calls take minutes.
        headersMs: Type.Integer({ minimum: 1, default: 600_000 }),
        // Longest silence between two body chunks of an answer.
        bodyIdleMs: Type.Integer({ minimum: 1, default: 300_000 }),
      },
      { additionalProperties: false, default: {} },
    ),
    // Connections to the upstreams (docs/proxies.md, "Connections kept open").
    upstreamConnections: Type.Object(
      {
        // An idle connection to an upstream is closed after this, and a hint from the upstream
        // (`keep-alive: timeout=N`) is capped by it: under OpenAI's own idle timeout (about 60 s),
        // so that keyrelay closes first and never sends a request on a connection being closed.
        keepAliveMs: Type.Integer({ minimum: 1000, default: 50_000 }),
        // One connection per upstream and proxy list opened ahead of the next request, TLS done,
        // replaced every keepAliveMs while unused.
        warm: Type.Boolean({ default: true }),
        // ...kept while the upstream and proxy list had a request within this long.
        warmForMs: Type.Integer({ minimum: 1000, default: 900_000 }),
        // Offer HTTP/2 to https upstreams (docs/proxies.md says why it is off by default).
        http2: Type.Boolean({ default: false }),
      },
      { additionalProperties: false, default: {} },
    ),
    // What a client may hold of this process: connections, and time to send its request
    // (docs/connections.md). The `timeouts` above are the upstream's side.
    inbound: Type.Object(
      {
        // Open connections per process, WebSockets included; one more is answered 503 at once.
        maxConnections: Type.Integer({ minimum: 1, default: 10_000 }),
        // HTTP requests being handled at once per process, streams included (not WebSockets, nor
        // the health routes); one more is answered 503 before its key or body is read.
        maxRequestsInFlight: Type.Integer({ minimum: 1, default: 5_000 }),
        // Past this delay of the event loop (its last 20 ms sample), new requests are answered 503
        // as well, so that a CPU-bound process keeps its latency (0: off).
        maxEventLoopDelayMs: Type.Integer({ minimum: 0, default: 0 }),
        // Past this share of time the event loop is busy (two 100 ms windows in a row), the limit
        // on requests in flight is lowered under what is in flight, and raised again once the loop
        // has idle time (src/inbound/busy-limit.ts; 0: off).
        maxEventLoopUtilization: Type.Number({ minimum: 0, maximum: 1, default: 0 }),
        // A request's start line and headers together (Node's maxHeaderSize); past it: 431.
        maxHeaderBytes: Type.Integer({ minimum: 1024, maximum: 1024 * 1024, default: 64 * 1024 }),
        // Header fields of one request (Apache's LimitRequestFields); past it: 431.
        maxHeadersCount: Type.Integer({ minimum: 16, maximum: 10_000, default: 100 }),
        // From the connection (or the end of the previous answer) until the request's headers are whole.
        headersMs: Type.Integer({ minimum: 100, default: 20_000 }),
        // Longest silence of a client the gateway is waiting for: before its first request and
        // inside a request body. Never counted while the gateway makes its answer.
        idleMs: Type.Integer({ minimum: 100, default: 30_000 }),
        // A request body must keep up this average after its first `idleMs` (0: no minimum).
        bodyMinBytesPerSecond: Type.Integer({ minimum: 0, default: 1024 }),
        // The whole request, headers and body, must arrive within this (0: no total).
        requestMs: Type.Integer({ minimum: 0, default: 0 }),
        // An idle keep-alive connection is closed after this; longer than a load balancer's 60 s.
        keepAliveMs: Type.Integer({ minimum: 100, default: 72_000 }),
        // Reverse proxies whose X-Forwarded-For/-Proto/-Host are believed (src/inbound/trusted-proxies.ts).
        // Unset or empty: none.
        trustedProxies: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 64 }), { maxItems: 100 })),
      },
      { additionalProperties: false, default: {} },
    ),
    upstreams: Type.Array(UpstreamSchema, { default: [] }),
    // Model aliases for every upstream (docs/models.md).
    aliases: Type.Optional(Aliases),
    // GET /v1/models: `merged` lists the upstream's models the user may use and the aliases;
    // `upstream` relays the upstream's list, less the models the user may not use.
    models: Type.Object(
      { list: Type.Union([Type.Literal('merged'), Type.Literal('upstream')], { default: 'merged' }) },
      { additionalProperties: false, default: {} },
    ),
    // SIGTERM: requests in flight get this long to finish; then streams get a last error event.
    shutdownGraceMs: Type.Integer({ minimum: 0, default: 10_000 }),
    // Live keys (not revoked, not expired) one user may hold, whoever creates them (the admin API,
    // the console): each is kept in the store, so one user could otherwise fill it.
    maxKeysPerUser: Type.Integer({ minimum: 1, maximum: 10_000, default: 20 }),
    // Processes sharing the port (node:cluster). More than one needs a shared store (Redis).
    workers: Type.Integer({ minimum: 1, maximum: 64, default: 1 }),
    pool: Type.Object(
      {
        health: Type.Object(
          {
            defaultCooldownMs: Type.Integer({ minimum: 0, default: 20_000 }),
            maxCooldownMs: Type.Integer({ minimum: 0, default: 600_000 }),
            failureThreshold: Type.Integer({ minimum: 1, default: 3 }),
            circuitBaseMs: Type.Integer({ minimum: 0, default: 5_000 }),
            circuitMaxMs: Type.Integer({ minimum: 0, default: 300_000 }),
            probeBaseMs: Type.Integer({ minimum: 0, default: 60_000 }),
            probeMaxMs: Type.Integer({ minimum: 0, default: 1_800_000 }),
            probeLeaseMs: Type.Integer({ minimum: 0, default: 60_000 }),
          },
          { additionalProperties: false, default: {} },
        ),
        retry: Type.Object(
          {
            maxAttempts: Type.Integer({ minimum: 1, maximum: 10, default: 3 }),
            deadlineMs: Type.Integer({ minimum: 0, default: 30_000 }),
            baseDelayMs: Type.Integer({ minimum: 0, default: 50 }),
            maxDelayMs: Type.Integer({ minimum: 0, default: 1_000 }),
            budgetRatio: Type.Number({ minimum: 0, maximum: 1, default: 0.2 }),
            budgetMinPerSecond: Type.Number({ minimum: 0, default: 5 }),
            budgetWindowMs: Type.Integer({ minimum: 1000, default: 10_000 }),
          },
          { additionalProperties: false, default: {} },
        ),
        // Objects the gateway did not see created: false answers 404 (README, "The key pool"), true lets any user reach them.
        shareUnknownObjects: Type.Boolean({ default: false }),
        // The objects (files, vector stores, responses …) one user may hold at once: the gateway
        // keeps each one's owner as long as it may exist, so this bounds what one user can make it
        // remember. At the bound, requests that create objects answer 429 too_many_objects.
        maxObjectsPerUser: Type.Integer({ minimum: 1, default: 100_000 }),
        // Requests that share a prompt cache (a prompt_cache_key, a user, the start of the prompt)
        // go to the same pool key, where OpenAI has that cache (docs/key-pool.md); false: the
        // upstream's strategy picks every key.
        cacheAffinity: Type.Boolean({ default: true }),
      },
      { additionalProperties: false, default: {} },
    ),
    // What the relay opens to the gateway's users.
    relay: Type.Object(
      {
        // Operations that need an organization admin key (/v1/organization/*, /v1/projects/*):
        // refused with 403 route_not_allowed unless this is set. A pool key's refusals there never
        // disable it (src/pool/outcome.ts).
        allowOrganizationRoutes: Type.Boolean({ default: false }),
      },
      { additionalProperties: false, default: {} },
    ),
    // Model prices in US dollars (per million tokens, per image, minute or million characters),
    // over the built-in table (src/quota/prices.ts, docs/prices.md).
    prices: Type.Record(Type.String({ minLength: 1 }), PriceSchema, { default: {} }),
    quota: Type.Object(
      {
        // A Redis that answers slower than this counts as down: 503, not a hung request.
        redisCommandTimeoutMs: Type.Integer({ minimum: 10, default: 1000 }),
        // How long a reservation holds when its process dies before settling it.
        leaseMs: Type.Integer({ minimum: 1000, default: 3_600_000 }),
        // Quota leases with Redis (docs/quota.md): each process admits against a share of each
        // user's allowance taken from Redis, instead of one Redis call per admission and settle.
        leases: Type.Optional(Type.Union([Type.Literal('on'), Type.Literal('off'), Type.Boolean()], { default: 'off' })),
        // How long a process's quota lease outlives the process if it stops renewing it.
        leaseSeconds: Type.Optional(Type.Integer({ minimum: 2, maximum: 300, default: 10 })),
        // The output worst case of a request that sets no max_tokens, for a model of unknown cap.
        defaultMaxOutputTokens: Type.Integer({ minimum: 1, default: 16_384 }),
        // What one call of an operation refused unless allowed reserves and is charged, in US
        // dollars, by the permission that opens it (src/operations/costs.ts, docs/metering.md).
        allowedRouteUsd: Type.Optional(
          Type.Object(
            Object.fromEntries(Object.entries(ALLOWED_ROUTE_USD).map(([permission, usd]) => [permission, Type.Number({ minimum: 0, maximum: 1_000_000, default: usd })])),
            { additionalProperties: false, default: {} },
          ),
        ),
      },
      { additionalProperties: false, default: {} },
    ),
    // GET /metrics: open like the health routes unless a token is set (then a bearer token).
    metrics: Type.Object({ token: Type.Optional(Type.String({ minLength: 16 })) }, { additionalProperties: false, default: {} }),
    // The access log, the kept request log and metrics (docs/observability.md).
    logging: Type.Object(
      {
        // Requests kept for GET /admin/requests: a ring in memory, a capped Redis Stream (MAXLEN ~).
        requestLogSize: Type.Integer({ minimum: 0, maximum: 1_000_000, default: 10_000 }),
        // Request and response bodies in the kept request log: off unless an operator turns it on.
        bodies: Type.Boolean({ default: false }),
        // With `bodies`, each body is cut to this many bytes (after key material is masked).
        bodyBytes: Type.Integer({ minimum: 0, maximum: 1024 * 1024, default: 4096 }),
        // A `user` label on the token metrics: one series per user, so off by default.
        userLabelsInMetrics: Type.Boolean({ default: false }),
        // Human-readable lines instead of JSON; `auto` when stdout is a terminal.
        pretty: Type.Union([Type.Literal('auto'), Type.Boolean()], { default: 'auto' }),
      },
      { additionalProperties: false, default: {} },
    ),
    // Webhooks for alerts, and the audit log's retention (docs/alerts.md, docs/audit.md).
    alerts: AlertsSettings,
    audit: AuditSettings,
    // The web console at /console/ (docs/console.md).
    console: ConsoleSettings,
    // Browser pages that may call /v1 (docs/browsers.md).
    cors: CorsSettings,
  },
  { additionalProperties: false },
);

export type Config = Static<typeof ConfigSchema>;
export type UpstreamConfig = Static<typeof UpstreamSchema>;
export type PoolKeyConfig = Static<typeof PoolKeySchema>;
export type PriceConfig = Static<typeof PriceSchema>;

export const DEFAULT_UPSTREAM_URL = 'https://api.openai.com/v1';

export class ConfigError extends Error {
  override name = 'ConfigError';
}

type Env = Record<string, string | undefined>;
type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/** Replaces every `env:NAME` string in the file with that variable's value. */
function resolveSecrets(value: Json, env: Env, path: string): Json {
  if (typeof value === 'string' && value.startsWith('env:')) {
    const name = value.slice(4);
    const resolved = env[name];
    if (resolved === undefined || resolved === '') {
      throw new ConfigError(`setting ${path || '/'}: environment variable ${name} is not set`);
    }
    return resolved;
  }
  if (Array.isArray(value)) return value.map((v, i) => resolveSecrets(v, env, `${path}/${i}`));
  if (value !== null && typeof value === 'object') {
    const out: { [k: string]: Json } = {};
    for (const [k, v] of Object.entries(value)) out[k] = resolveSecrets(v, env, `${path}/${k}`);
    return out;
  }
  return value;
}

function readFile(env: Env): { [k: string]: Json } {
  const explicit = env.KEYRELAY_CONFIG;
  const path = explicit ?? 'config/keyrelay.yaml';
  if (!existsSync(path)) {
    if (explicit) throw new ConfigError(`KEYRELAY_CONFIG: file not found: ${explicit}`);
    return {};
  }
  let parsed: unknown;
  try {
    parsed = parseYaml(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new ConfigError(`${path}: not valid YAML: ${(err as Error).message}`);
  }
  if (parsed === null || parsed === undefined) return {};
  if (typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new ConfigError(`${path}: the top level must be a mapping of settings`);
  }
  return resolveSecrets(parsed as Json, env, '') as { [k: string]: Json };
}

function intFromEnv(env: Env, name: string): number | undefined {
  const raw = env[name];
  if (raw === undefined || raw === '') return undefined;
  if (!/^[0-9]+$/.test(raw)) throw new ConfigError(`${name}: expected a whole number, got "${raw}"`);
  return Number(raw);
}

function shareFromEnv(env: Env, name: string): number | undefined {
  const raw = env[name];
  if (raw === undefined || raw === '') return undefined;
  if (!/^(0(\.[0-9]+)?|1(\.0+)?|\.[0-9]+)$/.test(raw)) throw new ConfigError(`${name}: expected a number from 0 to 1, got "${raw}"`);
  return Number(raw);
}

function boolFromEnv(env: Env, name: string): boolean | undefined {
  const raw = env[name];
  if (raw === undefined || raw === '') return undefined;
  if (/^(true|1|yes|on)$/i.test(raw)) return true;
  if (/^(false|0|no|off)$/i.test(raw)) return false;
  throw new ConfigError(`${name}: expected true or false, got "${raw}"`);
}

/** Applies the environment variables of the README ("Settings") over the file's settings. */
function applyEnv(file: { [k: string]: Json }, env: Env): { [k: string]: Json } {
  const out: { [k: string]: Json } = { ...file };
  const set = (key: string, value: Json | undefined) => {
    if (value !== undefined && value !== '') out[key] = value;
  };
  set('host', env.HOST);
  set('port', intFromEnv(env, 'PORT'));
  set('adminToken', env.KEYRELAY_ADMIN_TOKEN);
  set('secret', env.KEYRELAY_SECRET);
  set('secretPrevious', env.KEYRELAY_SECRET_PREVIOUS);
  if (env.KEYRELAY_METRICS_TOKEN) out.metrics = { ...((out.metrics as { [k: string]: Json } | undefined) ?? {}), token: env.KEYRELAY_METRICS_TOKEN };
  set('logLevel', env.LOG_LEVEL);
  if (env.KEYRELAY_CORS_ORIGINS !== undefined && env.KEYRELAY_CORS_ORIGINS.trim() !== '') {
    const origins = env.KEYRELAY_CORS_ORIGINS.split(',').map((s) => s.trim()).filter(Boolean);
    out.cors = { ...((out.cors as { [k: string]: Json } | undefined) ?? {}), origins };
  }
  set('workers', intFromEnv(env, 'KEYRELAY_WORKERS'));
  set('shutdownGraceMs', intFromEnv(env, 'KEYRELAY_SHUTDOWN_GRACE_MS'));
  set('maxKeysPerUser', intFromEnv(env, 'KEYRELAY_MAX_KEYS_PER_USER'));
  const consoleOn = boolFromEnv(env, 'KEYRELAY_CONSOLE');
  if (consoleOn !== undefined) out.console = { ...((out.console as { [k: string]: Json } | undefined) ?? {}), enabled: consoleOn };
  const maxConnections = intFromEnv(env, 'KEYRELAY_MAX_CONNECTIONS');
  if (maxConnections !== undefined) out.inbound = { ...((out.inbound as { [k: string]: Json } | undefined) ?? {}), maxConnections };
  const maxRequestsInFlight = intFromEnv(env, 'KEYRELAY_MAX_REQUESTS_IN_FLIGHT');
  if (maxRequestsInFlight !== undefined) out.inbound = { ...((out.inbound as { [k: string]: Json } | undefined) ?? {}), maxRequestsInFlight };
  if (env.KEYRELAY_TRUSTED_PROXIES !== undefined && env.KEYRELAY_TRUSTED_PROXIES.trim() !== '') {
    const trustedProxies = env.KEYRELAY_TRUSTED_PROXIES.split(',').map((s) => s.trim()).filter(Boolean);
    out.inbound = { ...((out.inbound as { [k: string]: Json } | undefined) ?? {}), trustedProxies };
  }
  const maxEventLoopDelayMs = intFromEnv(env, 'KEYRELAY_MAX_EVENT_LOOP_DELAY_MS');
  if (maxEventLoopDelayMs !== undefined) out.inbound = { ...((out.inbound as { [k: string]: Json } | undefined) ?? {}), maxEventLoopDelayMs };
  const maxEventLoopUtilization = shareFromEnv(env, 'KEYRELAY_MAX_EVENT_LOOP_UTILIZATION');
  if (maxEventLoopUtilization !== undefined) out.inbound = { ...((out.inbound as { [k: string]: Json } | undefined) ?? {}), maxEventLoopUtilization };
  if (env.KEYRELAY_TLS_CERT || env.KEYRELAY_TLS_KEY) {
    out.tls = { cert: env.KEYRELAY_TLS_CERT ?? '', key: env.KEYRELAY_TLS_KEY ?? '' };
  }
  const redis = { ...((out.redis as { [k: string]: Json } | undefined) ?? {}) };
  if (env.REDIS_URL) redis.url = env.REDIS_URL;
  if (env.REDIS_CLUSTER_NODES) {
    redis.clusterNodes = env.REDIS_CLUSTER_NODES.split(',').map((s) => s.trim()).filter(Boolean);
  }
  out.redis = redis;
  if (env.KEYRELAY_QUOTA_LEASES) out.quota = { ...((out.quota as { [k: string]: Json } | undefined) ?? {}), leases: env.KEYRELAY_QUOTA_LEASES };
  out.proxyEnv = { ...((out.proxyEnv as { [k: string]: Json } | undefined) ?? {}), ...proxyEnvFrom(env) };

  // OPENAI_API_KEYS, KEYRELAY_UPSTREAM_URL and KEYRELAY_PROXY describe the default upstream:
  // the first one the file lists, or one called "default" when it lists none.
  const upstreams = Array.isArray(out.upstreams) ? [...out.upstreams] : [];
  const envKeys = env.OPENAI_API_KEYS?.split(',').map((s) => s.trim()).filter(Boolean);
  if (envKeys?.length || env.KEYRELAY_UPSTREAM_URL || env.KEYRELAY_PROXY || upstreams.length === 0) {
    const first = (upstreams[0] as { [k: string]: Json } | undefined) ?? {
      id: 'default',
      baseUrl: DEFAULT_UPSTREAM_URL,
    };
    const upstream: { [k: string]: Json } = { ...first };
    if (env.KEYRELAY_UPSTREAM_URL) upstream.baseUrl = env.KEYRELAY_UPSTREAM_URL;
    if (env.KEYRELAY_PROXY) upstream.proxy = env.KEYRELAY_PROXY;
    if (envKeys?.length) upstream.keys = envKeys.map((key, i) => ({ id: `env-${i + 1}`, key }));
    upstreams[0] = upstream;
  }
  out.upstreams = upstreams;
  return out;
}

function describe(error: { path: string; message: string; value: unknown }): string {
  const setting = error.path.replace(/^\//, '') || '(top level)';
  return `setting ${setting}: ${error.message}`;
}

/** Loads, merges and validates the settings; throws ConfigError naming the first bad setting. */
export function loadConfig(env: Env = process.env, overrides: Partial<Config> = {}): Config {
  const merged = { ...applyEnv(readFile(env), env), ...overrides } as unknown;
  const withDefaults = Value.Default(ConfigSchema, Value.Clone(merged));
  const firstError = Value.Errors(ConfigSchema, withDefaults).First();
  if (firstError) throw new ConfigError(describe(firstError));
  const config = withDefaults as Config;
  checkConsistency(config);
  checkCorsOrigins(config, env);
  // Written out, so that what an upstream serves reads the same in the settings and the admin API.
  for (const upstream of config.upstreams) upstream.models ??= [...(defaultModels(upstream) ?? ['*'])];
  if (config.workers > 1 && !config.redis.url && !config.redis.clusterNodes) {
    throw new ConfigError('setting workers: more than one worker needs a shared store: set REDIS_URL or REDIS_CLUSTER_NODES');
  }
  return config;
}

function checkConsistency(config: Config): void {
  const seen = new Set<string>();
  config.upstreams.forEach((upstream, i) => {
    if (seen.has(upstream.id)) throw new ConfigError(`setting upstreams/${i}/id: duplicate id "${upstream.id}"`);
    seen.add(upstream.id);
    try {
      new URL(upstream.baseUrl);
    } catch {
      throw new ConfigError(`setting upstreams/${i}/baseUrl: not a URL`);
    }
    const fault = kindFault(upstream);
    if (fault) throw new ConfigError(`setting upstreams/${i}/${fault.field}: ${fault.message}`);
    const keyIds = new Set<string>();
    upstream.keys.forEach((key, j) => {
      if (keyIds.has(key.id)) throw new ConfigError(`setting upstreams/${i}/keys/${j}/id: duplicate id "${key.id}"`);
      keyIds.add(key.id);
    });
  });
  checkProxies(config);
  checkAliases(config);
  checkWebhooks(config);
  try {
    secretBoxFrom(config.secret, config.secretPrevious);
  } catch (err) {
    if (err instanceof SecretError) throw new ConfigError(err.message);
    throw err;
  }
  for (const entry of config.inbound.trustedProxies ?? []) {
    const problem = trustedProxyProblem(entry);
    if (problem !== undefined) throw new ConfigError(`setting inbound/trustedProxies: ${problem}`);
  }
  const { requestMs, headersMs } = config.inbound;
  // Node refuses a headers timeout longer than a request timeout that is set.
  if (requestMs > 0 && requestMs < headersMs) throw new ConfigError('setting inbound/requestMs: must be 0 (none) or at least inbound/headersMs');
  if (config.tls && (!config.tls.cert || !config.tls.key)) {
    throw new ConfigError('setting tls: KEYRELAY_TLS_CERT and KEYRELAY_TLS_KEY must be set together');
  }
}

/** Each of cors.origins is an origin or `*`; the message says where the list came from. */
function checkCorsOrigins(config: Config, env: Env): void {
  try {
    parseOrigins(config.cors.origins, 'setting cors/origins');
  } catch (err) {
    if (!(err instanceof OriginError)) throw err;
    throw new ConfigError(env.KEYRELAY_CORS_ORIGINS?.trim() ? `${err.message} (from KEYRELAY_CORS_ORIGINS)` : err.message);
  }
}

/** No alias table may be empty-named, name itself or loop, alone or laid over the top-level one. */
function checkAliases(config: Config): void {
  const top = config.aliases ?? {};
  const problem = aliasProblem(top);
  if (problem) throw new ConfigError(`setting aliases: ${problem}`);
  config.upstreams.forEach((upstream, i) => {
    const own = aliasProblem(upstream.aliases ?? {}, top);
    if (own) throw new ConfigError(`setting upstreams/${i}/aliases: ${own}`);
  });
}

/** Each webhook URL parses and has a host; ids are unique. Messages never quote the URL (it may hold a token). */
function checkWebhooks(config: Config): void {
  const ids = new Set<string>();
  config.alerts.webhooks.forEach((hook, i) => {
    let url: URL | undefined;
    try {
      url = new URL(hook.url);
    } catch {
      url = undefined;
    }
    if (!url || !url.hostname) throw new ConfigError(`setting alerts/webhooks/${i}/url: not an http(s) URL`);
    const id = hook.id ?? `settings-${i + 1}`;
    if (ids.has(id)) throw new ConfigError(`setting alerts/webhooks/${i}/id: duplicate id "${id}"`);
    ids.add(id);
  });
}

const ENV_NAMES = { httpsProxy: 'HTTPS_PROXY', httpProxy: 'HTTP_PROXY', allProxy: 'ALL_PROXY' } as const;

/** Every proxy URL must parse; the message names the setting and never echoes the URL (it may hold a password). */
function checkProxies(config: Config): void {
  const check = (setting: string, value: string | string[] | undefined) => {
    if (value === undefined) return;
    const urls = typeof value === 'string' ? [value] : value;
    urls.forEach((url, i) => {
      const where = typeof value === 'string' ? setting : `${setting}/${i}`;
      if (url.trim() === DIRECT) {
        if (urls.length > 1) throw new ConfigError(`setting ${where}: "${DIRECT}" cannot be listed with proxies`);
        return;
      }
      try {
        parseProxyUrl(url);
      } catch (err) {
        if (err instanceof ProxyUrlError) throw new ConfigError(`setting ${where}: ${err.message}`);
        throw err;
      }
    });
  };
  check('proxy', config.proxy);
  config.upstreams.forEach((upstream, i) => {
    check(`upstreams/${i}/proxy`, upstream.proxy);
    upstream.keys.forEach((key, j) => check(`upstreams/${i}/keys/${j}/proxy`, key.proxy));
  });
  for (const [field, name] of Object.entries(ENV_NAMES)) {
    check(`proxyEnv/${field} (${name})`, config.proxyEnv[field as keyof typeof ENV_NAMES]);
  }
  const caFile = config.proxyOptions.caFile;
  if (caFile !== undefined && !existsSync(caFile)) {
    throw new ConfigError(`setting proxyOptions/caFile: file not found: ${caFile}`);
  }
}
