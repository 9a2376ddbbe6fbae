// One request as the gateway saw it: the access log line, the kept request log, the usage
// counters and the metrics are all made from this one record (README, "Logs, usage reports and metrics").

/** How a request ended. `ok` means the gateway relayed an answer, whatever its status. */
export type Outcome =
  | 'ok'
  | 'client_aborted'
  | 'upstream_error'
  | 'stream_interrupted'
  | 'shutdown_interrupted'
  | 'shutting_down'
  | 'auth_failed'
  | 'forbidden'
  | 'bad_request'
  | 'too_large'
  | 'not_found'
  | 'quota_rejected'
  | 'quota_unavailable'
  | 'no_key'
  | 'error';

export interface TokenCounts {
  input: number;
  /** Part of `input` read from the prompt cache. */
  cachedInput: number;
  output: number;
  /** Counted by the gateway: the upstream reported no usage (a stream that broke off or was aborted). */
  estimated: boolean;
}

export interface RequestRecord {
  /** The gateway's id (`x-keyrelay-request-id`). */
  requestId: string;
  /** The upstream's `x-request-id`, when an upstream answered. */
  upstreamRequestId?: string;
  /** ISO 8601: when the request reached the gateway. */
  time: string;
  userId?: string;
  keyId?: string;
  poolKeyId?: string;
  upstream?: string;
  /** What chose the pool key when the request followed its prompt cache affinity (docs/key-pool.md). */
  affinity?: 'prompt_cache_key' | 'user' | 'prefix';
  method: string;
  /** The path, without the query string (it may carry ids the operator did not ask to keep). */
  route: string;
  /** The operation the request matched (the spec's operationId, or `unknown`); absent outside /v1. */
  operation?: string;
  /** The model the client named (an alias as such: docs/models.md). */
  model?: string;
  /** The model sent upstream in its place, when `model` is an alias; prices are this model's. */
  upstreamModel?: string;
  /** The request body's `user` field (OpenAI's end-user id), as the client sent it. */
  endUser?: string;
  userAgent?: string;
  stream: boolean;
  status: number;
  outcome: Outcome;
  /** The gateway's error code (errors.ts), when the gateway itself answered with an error. */
  errorCode?: string;
  /** Why, in a few words, with key material masked. */
  errorMessage?: string;
  retries: number;
  /** The pool keys that failed before the answer the client got, and why. */
  tried?: Array<{ poolKeyId: string; status?: number; code?: string }>;
  ttfbMs?: number;
  durationMs: number;
  tokens?: TokenCounts;
  /** Integer micro-dollars, as the quota ledger charges them. */
  costMicros?: number;
  bytesIn?: number;
  bytesOut: number;
  /** A charge for work an earlier request started (a batch, a background response): its record
   * is written when the gateway sees the work end (src/quota/later.ts). */
  chargedLater?: true;
  /** The gateway's id of the request that created the work charged here. */
  createdBy?: string;
  /** The gateway's id of the request that showed the work had ended. */
  chargedBy?: string;
  /** Only with `logging.bodies`: masked and cut to `logging.bodyBytes`. */
  requestBody?: string;
  responseBody?: string;
}

/** A kept record with its place in the log (a Redis Stream id, or the same shape in memory). */
export type StoredRecord = RequestRecord & { id: string; costUsd?: number };

const BY_CODE: Record<string, Outcome> = {
  invalid_api_key: 'auth_failed',
  model_not_allowed: 'forbidden',
  request_too_large: 'too_large',
  rate_limit_exceeded: 'quota_rejected',
  insufficient_quota: 'quota_rejected',
  no_upstream_key_available: 'no_key',
  quota_backend_unavailable: 'quota_unavailable',
  upstream_proxy_error: 'upstream_error',
  upstream_unreachable: 'upstream_error',
  upstream_timeout: 'upstream_error',
  upstream_stream_interrupted: 'stream_interrupted',
  shutting_down: 'shutting_down',
  unknown_url: 'not_found',
  not_found: 'not_found',
};

/** The outcome of an answer the gateway made itself (not relayed), from its error code or status. */
export function outcomeOf(status: number, errorCode?: string): Outcome {
  const known = errorCode === undefined ? undefined : BY_CODE[errorCode];
  if (known) return known;
  if (status < 400) return 'ok';
  if (status === 401) return 'auth_failed';
  if (status === 403) return 'forbidden';
  if (status === 404) return 'not_found';
  if (status === 413) return 'too_large';
  if (status === 429) return 'quota_rejected';
  if (status < 500) return 'bad_request';
  return 'error';
}

export const microsToUsd = (micros: number): number => micros / 1_000_000;
