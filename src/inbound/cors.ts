// Browsers as clients of /v1 (README, "The relay"; docs/browsers.md). Which page origins
// may call the API and what the gateway tells them is decided here and only here:
//
// - the server sets an allowed origin's headers on the answer of every /v1 request as it arrives,
//   before anything writes that answer (src/app.ts), so relayed, streamed and refused answers
//   alike carry them: Node merges headers set so with those of the later writeHead;
// - the lane and the Fastify hook answer a preflight themselves, before and without a key, and
//   never relay it (`preflight`);
// - the relay route refuses a key whose user's `origins` exclude the page (`userRefusal`);
// - the WebSocket upgrade, which browsers do not guard with CORS at all, checks Origin against
//   both lists before the 101 (`upgradeRefusal`, then `userRefusal`).
//
// What the upstream says about CORS never reaches the client (src/relay/headers.ts drops its
// access-control-* headers). No credentials are allowed: keys travel in Authorization, never in
// cookies, so `access-control-allow-credentials` is never sent.
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { GatewayError } from '../errors.js';
import type { User } from '../store/types.js';
import { ANY_ORIGIN, parseOrigins } from './origins.js';

// What the official SDKs send (openai-node 6: client.ts buildHeaders, internal/detect-platform.ts,
// the polling and helper methods of lib/), besides the key and the body's type. A preflight is
// answered with these, whatever it asks.
export const ALLOWED_HEADERS: readonly string[] = [
  'authorization',
  'content-type',
  'accept',
  'user-agent',
  'openai-beta',
  'openai-organization',
  'openai-project',
  'idempotency-key',
  'x-stainless-arch',
  'x-stainless-lang',
  'x-stainless-os',
  'x-stainless-package-version',
  'x-stainless-runtime',
  'x-stainless-runtime-version',
  'x-stainless-retry-count',
  'x-stainless-timeout',
  'x-stainless-helper-method',
  'x-stainless-poll-helper',
  'x-stainless-custom-poll-interval',
];
// An x-stainless-* header not in the list (a later SDK's) is allowed when a preflight asks for
// it: these name the SDK's platform and retries, nothing the gateway or the upstream acts on.
// Any other name asked for is left out, never echoed.
const MORE_SDK_HEADERS = /^x-stainless-[a-z0-9-]{1,40}$/;
// Of those, at most this many are allowed: an SDK adds a few, and a preflight needs no key, so one
// that asks for thousands (a 64 KB header) must not cost more than an ordinary one nor be echoed.
const MAX_MORE_SDK_HEADERS = 16;

// What a page may read of an answer: the ids, the user's own limits, and what the SDKs obey.
export const EXPOSED_HEADERS: readonly string[] = [
  'x-request-id',
  'x-keyrelay-request-id',
  'x-ratelimit-limit-requests',
  'x-ratelimit-remaining-requests',
  'x-ratelimit-reset-requests',
  'x-ratelimit-limit-tokens',
  'x-ratelimit-remaining-tokens',
  'x-ratelimit-reset-tokens',
  'retry-after',
  'retry-after-ms',
  'x-should-retry',
  'openai-processing-ms',
];

export const ALLOWED_METHODS = 'GET, POST, PUT, PATCH, DELETE';
// Chromium keeps a preflight's answer at most 2 hours, Firefox 24: the longest any browser uses.
export const MAX_AGE_SECONDS = 7200;

const EXPOSE = EXPOSED_HEADERS.join(', ');
const ALLOW_HEADERS = ALLOWED_HEADERS.join(', ');
const ALLOWED_HEADER_SET = new Set(ALLOWED_HEADERS);

export interface CorsSettings {
  origins: string[];
}

export interface Cors {
  /** Some origin is allowed: without one, there is no CORS at all and OPTIONS is relayed as any method. */
  readonly active: boolean;
  allows(origin: string | undefined): origin is string;
  /** Sets an allowed origin's headers on the answer to a /v1 request, before anything writes it. */
  decorate(req: IncomingMessage, res: ServerResponse): void;
  /**
   * The headers of the gateway's own 204 to a CORS preflight; undefined for any other request.
   * Throws the 403 of a preflight from an origin not allowed: it is not relayed either.
   */
  preflight(req: IncomingMessage): OutgoingHttpHeaders | undefined;
  /** A WebSocket upgrade from a page of an origin not allowed: the 403 it gets before the 101. */
  upgradeRefusal(req: IncomingMessage): GatewayError | undefined;
}

const originRefused = (message: string) => new GatewayError('origin_not_allowed', { message });

/** Origins of `settings` as parsed by src/config.ts at start (already checked there). */
export function createCors(settings: CorsSettings): Cors {
  const origins = new Set(parseOrigins(settings.origins, 'cors/origins'));
  const any = origins.has(ANY_ORIGIN);
  const active = origins.size > 0;

  const allows = (origin: string | undefined): origin is string => origin !== undefined && (any || origins.has(origin));

  /** The requested headers the gateway allows beyond its list: x-stainless-* names only. */
  function allowHeaders(requested: string | undefined): string {
    if (!requested) return ALLOW_HEADERS;
    const more = new Set<string>();
    for (const raw of requested.split(',')) {
      const name = raw.trim().toLowerCase();
      if (!ALLOWED_HEADER_SET.has(name) && MORE_SDK_HEADERS.test(name)) more.add(name);
      if (more.size === MAX_MORE_SDK_HEADERS) break;
    }
    return more.size === 0 ? ALLOW_HEADERS : `${ALLOW_HEADERS}, ${[...more].join(', ')}`;
  }

  return {
    active,
    allows,
    decorate(req, res) {
      if (!active) return;
      const origin = req.headers.origin;
      if (!allows(origin) || !req.url?.startsWith('/v1/')) return;
      res.setHeader('access-control-allow-origin', origin);
      res.setHeader('vary', 'origin');
      res.setHeader('access-control-expose-headers', EXPOSE);
    },
    preflight(req) {
      // A preflight is an OPTIONS with Origin and Access-Control-Request-Method (Fetch standard,
      // CORS-preflight request); any other OPTIONS is an API request like the rest.
      if (!active || req.method !== 'OPTIONS') return undefined;
      const origin = req.headers.origin;
      if (origin === undefined || req.headers['access-control-request-method'] === undefined) return undefined;
      if (!allows(origin)) throw originRefused(`Pages of ${origin} may not call this gateway (cors.origins).`);
      const headers: OutgoingHttpHeaders = {
        'access-control-allow-origin': origin,
        'access-control-allow-methods': ALLOWED_METHODS,
        'access-control-allow-headers': allowHeaders(req.headers['access-control-request-headers']),
        'access-control-max-age': String(MAX_AGE_SECONDS),
        vary: 'origin, access-control-request-method, access-control-request-headers',
      };
      // Chromium's Private Network Access: a public page calling a gateway on a private address.
      if (req.headers['access-control-request-private-network'] === 'true') headers['access-control-allow-private-network'] = 'true';
      return headers;
    },
    upgradeRefusal(req) {
      const origin = req.headers.origin;
      // No Origin: not a browser, whose WebSocket always sends one (RFC 6455 section 4.1).
      if (!active || origin === undefined || allows(origin)) return undefined;
      return originRefused(`Pages of ${origin} may not open WebSockets to this gateway (cors.origins).`);
    },
  };
}

/**
 * The refusal of a key whose user's `origins` exclude the request's page. A user with origins
 * (other than `*`) is one for browser pages: a request with no Origin at all is refused too, as a
 * browser key restricted to certain sites would be.
 */
export function userRefusal(user: User, origin: string | undefined): GatewayError | undefined {
  const allowed = user.origins;
  if (allowed === undefined || allowed.includes(ANY_ORIGIN)) return undefined;
  if (origin !== undefined && allowed.includes(origin)) return undefined;
  return originRefused(
    origin === undefined
      ? 'This key may be used only from the browser pages its user allows, and the request has no Origin header.'
      : `This key may not be used from pages of ${origin}.`,
  );
}

/** What the admin API says of a user's origins that the gateway's own list leaves out: they pass
 * the user's check, but browsers there get no CORS headers, so they cannot read an answer. */
export function originWarnings(user: User, cors: Cors): string[] {
  return (user.origins ?? [])
    .filter((origin) => origin !== ANY_ORIGIN && !cors.allows(origin))
    .map((origin) => `origins: ${origin} is not in the gateway's cors.origins: pages there get no CORS headers, so browsers cannot read its answers.`);
}

/** An upstream's own Vary, joined to the `origin` the gateway set on `res`: the later writeHead's
 * value would replace the gateway's, and a cache would then serve one page's answer to another. */
export function keepVary(res: ServerResponse, headers: OutgoingHttpHeaders): void {
  const theirs = headers.vary;
  if (theirs === undefined) return;
  const ours = res.getHeader('vary');
  if (ours === undefined) return;
  const names = new Set<string>();
  for (const value of [theirs, ours].flat()) {
    for (const name of String(value).split(',')) if (name.trim()) names.add(name.trim().toLowerCase());
  }
  headers.vary = [...names].join(', ');
}
