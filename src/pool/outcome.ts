// What one upstream attempt says about the pool key that made it. Key health (health.ts) and the
// failover policy (retry.ts) both start from this verdict, so they cannot disagree on what a 403
// or a reset means. Transport failures are read from undici's and Node's error codes, never from
// message text.
//
// A 401 or 403 means one of two things. "This key is dead" (a revoked key, a deactivated account)
// disables it. "This key may not do this" (a scope it lacks, a route for admin keys) is the
// client's answer and leaves the key as it was: any user can send such a request, so if it
// disabled keys, one user could empty the pool.
import type { HeaderBag } from './rate-headers.js';

/** The `error.code` and `error.type` of an upstream's OpenAI-shaped error body. */
export interface UpstreamErrorInfo {
  code?: string;
  type?: string;
  /** The message says the key lacks a scope (OpenAI sends that with `code: null`). */
  missingScope?: true;
}

export interface AttemptResult {
  /** The upstream's status, when it answered. */
  status?: number;
  headers?: HeaderBag;
  /** From the upstream's JSON error body (see parseUpstreamError), when it sent one. */
  error?: UpstreamErrorInfo;
  /** `err.code` of a transport failure: `ECONNREFUSED`, `ECONNRESET`, `UND_ERR_HEADERS_TIMEOUT`… */
  transportCode?: string;
  /** The outbound proxy failed (src/proxy/errors.ts): the request never reached the upstream. */
  proxyFailure?: boolean;
  /** The client went away: the attempt says nothing about the key. */
  clientAborted?: boolean;
  /**
   * The request's route is one for admin keys (the spec's AdminApiKey routes: /v1/organization/*,
   * /v1/projects/*), which pool keys are not: its 401 or 403 says nothing about the routes the key serves.
   */
  privileged?: boolean;
}

export type DisableReason = 'invalid_api_key' | 'forbidden' | 'insufficient_quota' | 'account_deactivated';
export type TransientReason = 'server_error' | 'timeout' | 'connect_error' | 'connection_reset' | 'transport_error';
export type RefusalReason = 'missing_scope' | 'privileged_route' | 'forbidden';

export type Verdict =
  /** 2xx/3xx. */
  | { kind: 'ok' }
  /** A 4xx the request itself caused (400, 404, 422…): costs the key nothing. */
  | { kind: 'neutral' }
  /** 429 rate limit: the key rests for a while. */
  | { kind: 'rate_limited' }
  /** The key cannot work until something outside changes: disable it and probe it later. */
  | { kind: 'disable'; reason: DisableReason }
  /** The key may not do this one thing: the client gets the answer, the key stays as it was, no other key is tried. */
  | { kind: 'refused'; reason: RefusalReason }
  /** 5xx, timeouts, connection failures: counted towards the key's circuit breaker. */
  | { kind: 'transient'; reason: TransientReason }
  /** Nothing to learn about the key (the proxy failed, the client left, the model is not in the key's project). */
  | { kind: 'ignored'; reason: 'proxy' | 'client_aborted' | 'model_unavailable' | 'rotated' | 'malformed_answer' };

const CONNECT_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN', 'ENETDOWN']);
const RESET_CODES = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED', 'UND_ERR_SOCKET', 'UND_ERR_CLOSED']);
const TIMEOUT_CODES = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'ETIMEDOUT']);

// The upstream answered, with bytes that are not a valid answer: a header section past undici's
// bound (16 KB), a status or header line llhttp cannot parse (`HPE_*`), a content-length that
// disagrees with itself, a compressed body that does not decode (`Z_*`, zlib's codes; `ERR__ERROR_*`,
// Node's for brotli's decoder errors). Whatever
// key asked, the same bytes would have come: the upstream's fault, not the key's. A cut connection
// or a stall is not one of these (they stay transient: a key's traffic may be what is cut).
const MALFORMED_CODES = new Set(['UND_ERR_HEADERS_OVERFLOW', 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH', 'UND_ERR_RES_EXCEEDED_MAX_SIZE']);

export function isMalformedAnswer(code: string | undefined): boolean {
  return code !== undefined && (MALFORMED_CODES.has(code) || code.startsWith('HPE_') || code.startsWith('Z_') || code.startsWith('ERR__ERROR_'));
}

/** Before any byte of the request can have left: always safe to send elsewhere. */
export function failedToConnect(code: string | undefined): boolean {
  return code !== undefined && (CONNECT_CODES.has(code) || code === 'UND_ERR_CONNECT_TIMEOUT');
}

export function isReset(code: string | undefined): boolean {
  return code !== undefined && RESET_CODES.has(code);
}

function transportVerdict(code: string | undefined): Verdict {
  if (isMalformedAnswer(code)) return { kind: 'ignored', reason: 'malformed_answer' };
  if (code !== undefined && TIMEOUT_CODES.has(code)) return { kind: 'transient', reason: 'timeout' };
  if (code !== undefined && CONNECT_CODES.has(code)) return { kind: 'transient', reason: 'connect_error' };
  if (isReset(code)) return { kind: 'transient', reason: 'connection_reset' };
  return { kind: 'transient', reason: 'transport_error' };
}

// Codes that refuse one operation to a key that otherwise works. OpenAI's own scope refusals come
// with `code: null` (parseUpstreamError reads their message); `insufficient_scope` is RFC 6750's
// (section 3.1), for OpenAI-compatible upstreams that follow it.
const REFUSAL_CODES = new Set(['missing_scope', 'insufficient_permissions', 'insufficient_scope']);

/** 401 and 403 once account-wide codes are ruled out: a dead key, or one that may not do this. */
// 403 codes that refuse the key whatever it asks. Only codes: a message may quote the request (a
// model name), and a client must never be able to word its way into disabling a key.
const KEY_LEVEL_CODES = new Set(['unsupported_country_region_territory']);

/** A 403 that says the key (its account, its egress) is refused whatever it asks. */
function keyLevelRefusal(error: UpstreamErrorInfo | undefined): boolean {
  return error?.code !== undefined && KEY_LEVEL_CODES.has(error.code);
}

function authVerdict(status: 401 | 403, error: UpstreamErrorInfo | undefined, privileged: boolean): Verdict {
  const code = error?.code;
  if (error?.missingScope || (code !== undefined && REFUSAL_CODES.has(code))) return { kind: 'refused', reason: 'missing_scope' };
  // Whatever the code: a project key asked for an admin key's route may be told its key is invalid.
  if (privileged) return { kind: 'refused', reason: 'privileged_route' };
  // A project without access to one model answers 403 model_not_found: the key serves others.
  if (status === 403 && code === 'model_not_found') return { kind: 'ignored', reason: 'model_unavailable' };
  if (status === 401) return { kind: 'disable', reason: 'invalid_api_key' };
  // A 403 about the key itself (its region, its address, its account) holds for every request it
  // makes: disabled. Any other 403 is about what was asked (a model the project may not use, an
  // organization not verified for it, a permission): the client hears it, the key serves the others.
  return keyLevelRefusal(error) ? { kind: 'disable', reason: 'forbidden' } : { kind: 'refused', reason: 'forbidden' };
}

function statusVerdict(status: number, error: UpstreamErrorInfo | undefined, privileged: boolean): Verdict {
  if (status < 400) return { kind: 'ok' };
  const code = error?.code;
  // OpenAI answers 401 for a deactivated account and 429 for a spent quota or inactive billing;
  // the code, not the status, says the key will not recover by waiting (on any route).
  if (code === 'account_deactivated') return { kind: 'disable', reason: 'account_deactivated' };
  if (code === 'insufficient_quota' || error?.type === 'insufficient_quota' || code === 'billing_not_active') {
    return { kind: 'disable', reason: 'insufficient_quota' };
  }
  if (status === 401 || status === 403) return authVerdict(status, error, privileged);
  if (status === 429) return { kind: 'rate_limited' };
  if (status >= 500) return { kind: 'transient', reason: 'server_error' };
  return { kind: 'neutral' };
}

export function classifyAttempt(result: AttemptResult): Verdict {
  if (result.clientAborted) return { kind: 'ignored', reason: 'client_aborted' };
  if (result.proxyFailure) return { kind: 'ignored', reason: 'proxy' };
  const privileged = result.privileged === true;
  if (result.status !== undefined && result.transportCode === undefined) return statusVerdict(result.status, result.error, privileged);
  // A transport failure after the status line (a stall or reset mid-body) blames the key as one
  // before it would, unless the status had already disabled or cooled it.
  if (result.status !== undefined) {
    const byStatus = statusVerdict(result.status, result.error, privileged);
    if (byStatus.kind === 'disable' || byStatus.kind === 'rate_limited') return byStatus;
    // A body that did not decode adds nothing to what its status said (a 500 is still one).
    if (isMalformedAnswer(result.transportCode) && byStatus.kind !== 'ok') return byStatus;
  }
  return transportVerdict(result.transportCode);
}

const MAX_ERROR_BODY = 64 * 1024;

// OpenAI's answer to a key without a scope the operation needs, 401 with `code: null`: "You have
// insufficient permissions for this operation. Missing scopes: api.model.read. Check that you have
// the correct role ...". Some of its answers carry that message as a bare string in `error`. Were a
// client's input ever quoted in such a message, the most it could do is keep one key from being
// disabled by that one answer: a match never disables anything.
const MISSING_SCOPE_MESSAGE = /insufficient permissions for this operation|missing scopes?:/i;

function missingScope(message: unknown): { missingScope?: true } {
  return typeof message === 'string' && MISSING_SCOPE_MESSAGE.test(message) ? { missingScope: true } : {};
}

/** `error.code`, `error.type` and whether the message names a missing scope; empty for anything else. */
export function parseUpstreamError(body: Buffer | string | undefined): UpstreamErrorInfo {
  if (body === undefined || body.length === 0 || body.length > MAX_ERROR_BODY) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(typeof body === 'string' ? body : body.toString('utf8'));
  } catch {
    return {};
  }
  if (parsed === null || typeof parsed !== 'object') return {};
  const error = (parsed as { error?: unknown }).error;
  if (typeof error === 'string') return missingScope(error);
  if (error === null || typeof error !== 'object') return {};
  const { code, type, message } = error as { code?: unknown; type?: unknown; message?: unknown };
  return {
    ...(typeof code === 'string' ? { code } : {}),
    ...(typeof type === 'string' ? { type } : {}),
    ...missingScope(message),
  };
}
