// What one upstream attempt says about the pool key that made it. Key health (health.ts) and the
// failover policy (retry.ts) both start from this verdict, so they cannot disagree on what a 403
// or a reset means. Transport failures are read from undici's and Node's error codes, never from
// message text.
import type { HeaderBag } from './rate-headers.js';

/** The `error.code` and `error.type` of an upstream's OpenAI-shaped error body. */
export interface UpstreamErrorInfo {
  code?: string;
  type?: string;
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
}

export type DisableReason = 'invalid_api_key' | 'forbidden' | 'insufficient_quota' | 'account_deactivated';
export type TransientReason = 'server_error' | 'timeout' | 'connect_error' | 'connection_reset' | 'transport_error';

export type Verdict =
  /** 2xx/3xx. */
  | { kind: 'ok' }
  /** A 4xx the request itself caused (400, 404, 422…): costs the key nothing. */
  | { kind: 'neutral' }
  /** 429 rate limit: the key rests for a while. */
  | { kind: 'rate_limited' }
  /** The key cannot work until something outside changes: disable it and probe it later. */
  | { kind: 'disable'; reason: DisableReason }
  /** 5xx, timeouts, connection failures: counted towards the key's circuit breaker. */
  | { kind: 'transient'; reason: TransientReason }
  /** Nothing to learn about the key (the proxy failed, the client left, the model is not in the key's project). */
  | { kind: 'ignored'; reason: 'proxy' | 'client_aborted' | 'model_unavailable' };

const CONNECT_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN', 'ENETDOWN']);
const RESET_CODES = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED', 'UND_ERR_SOCKET', 'UND_ERR_CLOSED']);
const TIMEOUT_CODES = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'ETIMEDOUT']);

/** Before any byte of the request can have left: always safe to send elsewhere. */
export function failedToConnect(code: string | undefined): boolean {
  return code !== undefined && (CONNECT_CODES.has(code) || code === 'UND_ERR_CONNECT_TIMEOUT');
}

export function isReset(code: string | undefined): boolean {
  return code !== undefined && RESET_CODES.has(code);
}

function transportVerdict(code: string | undefined): Verdict {
  if (code !== undefined && TIMEOUT_CODES.has(code)) return { kind: 'transient', reason: 'timeout' };
  if (code !== undefined && CONNECT_CODES.has(code)) return { kind: 'transient', reason: 'connect_error' };
  if (isReset(code)) return { kind: 'transient', reason: 'connection_reset' };
  return { kind: 'transient', reason: 'transport_error' };
}

function statusVerdict(status: number, error: UpstreamErrorInfo | undefined): Verdict {
  if (status < 400) return { kind: 'ok' };
  const code = error?.code;
  // OpenAI answers 401 for a deactivated account and 429 for a spent quota or inactive billing;
  // the code, not the status, says the key will not recover by waiting.
  if (code === 'account_deactivated') return { kind: 'disable', reason: 'account_deactivated' };
  if (code === 'insufficient_quota' || error?.type === 'insufficient_quota' || code === 'billing_not_active') {
    return { kind: 'disable', reason: 'insufficient_quota' };
  }
  if (status === 401) return { kind: 'disable', reason: 'invalid_api_key' };
  // A project without access to one model answers 403 model_not_found: the key serves others.
  if (status === 403 && code === 'model_not_found') return { kind: 'ignored', reason: 'model_unavailable' };
  if (status === 403) return { kind: 'disable', reason: 'forbidden' };
  if (status === 429) return { kind: 'rate_limited' };
  if (status >= 500) return { kind: 'transient', reason: 'server_error' };
  return { kind: 'neutral' };
}

export function classifyAttempt(result: AttemptResult): Verdict {
  if (result.clientAborted) return { kind: 'ignored', reason: 'client_aborted' };
  if (result.proxyFailure) return { kind: 'ignored', reason: 'proxy' };
  if (result.status !== undefined && result.transportCode === undefined) return statusVerdict(result.status, result.error);
  // A transport failure after the status line (a stall or reset mid-body) blames the key as one
  // before it would, unless the status had already disabled or cooled it.
  if (result.status !== undefined) {
    const byStatus = statusVerdict(result.status, result.error);
    if (byStatus.kind === 'disable' || byStatus.kind === 'rate_limited') return byStatus;
  }
  return transportVerdict(result.transportCode);
}

const MAX_ERROR_BODY = 64 * 1024;

/** `error.code` and `error.type` of an upstream error body; empty for anything else. */
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
  if (error === null || typeof error !== 'object') return {};
  const { code, type } = error as { code?: unknown; type?: unknown };
  return {
    ...(typeof code === 'string' ? { code } : {}),
    ...(typeof type === 'string' ? { type } : {}),
  };
}
