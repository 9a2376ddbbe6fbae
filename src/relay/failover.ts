// The keys one client request goes through: each attempt takes a key this request has not tried
// yet, and a failed one is judged by the retry policy (src/pool/retry.ts) and its key set aside.
// Shared by the HTTP relay (attempts.ts) and the WebSocket relay (websocket.ts).
import { GatewayError } from '../errors.js';
import type { AttemptResult } from '../pool/outcome.js';
import type { Attempt, Pool, SelectRequest, Selection } from '../pool/pool.js';
import type { RetryDecision, RetryPolicy, RetryRun } from '../pool/retry.js';
import type { AbortLike } from './client-gone.js';
import { errorCode, proxyErrorOf } from './upstream-errors.js';

/** One failed attempt, for the request's log line (never a secret: ids and codes only). */
export interface TriedKey {
  poolKeyId: string;
  status?: number;
  code?: string;
}

export interface FailoverRequest {
  model?: string;
  pinned?: SelectRequest['pinned'];
  affinity?: SelectRequest['affinity'];
  method: string;
  /** The route is one for admin keys: its 401 and 403 do not disable a key (src/pool/outcome.ts). */
  privileged?: boolean;
  /** Whether the request can be sent again, given whether the last attempt had begun writing it. */
  replayable(written: boolean): boolean;
}

export class Failover {
  readonly tried: TriedKey[] = [];
  /** Attempts started, the first included. */
  attempts = 0;
  private readonly exclude = new Set<string>();
  private readonly run: RetryRun;

  constructor(
    private readonly pool: Pool,
    retry: RetryPolicy,
    private readonly request: FailoverRequest,
  ) {
    this.run = retry.begin();
  }

  /** The next key: never one this request tried already (with an affinity, the next by rendezvous rank). */
  choose(): Selection {
    return this.pool.choose({ model: this.request.model, exclude: this.exclude, pinned: this.request.pinned, affinity: this.request.affinity });
  }

  start(selection: Extract<Selection, { ok: true }>): Attempt {
    this.attempts++;
    return this.pool.start(selection.choice);
  }

  /** Records a failed attempt against its key and decides whether the request goes to another. */
  fail(attempt: Attempt, answer: AttemptResult, written: boolean): RetryDecision {
    const result: AttemptResult = this.request.privileged ? { ...answer, privileged: true } : answer;
    attempt.finish(result);
    this.exclude.add(attempt.choice.key.ref);
    this.tried.push({ poolKeyId: attempt.choice.key.id, status: result.status, code: result.transportCode });
    return this.run.decide({
      ...result,
      method: this.request.method,
      clientSawBytes: false,
      requestWritten: written,
      replayable: this.request.replayable(written),
    });
  }
}

/** What a transport failure says about the key: its error code, or that the proxy failed (never the key's fault). */
export function transportResult(err: unknown): AttemptResult {
  if (proxyErrorOf(err)) return { proxyFailure: true };
  return { transportCode: errorCode(err) };
}

/** Waits out a retry's backoff; false when the client went away meanwhile. */
export async function backoff(ms: number, signal: AbortLike): Promise<boolean> {
  if (ms > 0 && !signal.aborted) {
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal.addEventListener('abort', done, { once: true });
    });
  }
  return !signal.aborted;
}

const DEFAULT_RETRY_AFTER_S = 60;

/** The 503 of a request no key can take now (docs/reliability.md, case 16): `retry-after` is the earliest recovery. */
export function noKeyError(selection: Extract<Selection, { ok: false }>, model: string | undefined, headers: Record<string, string> = {}, now = Date.now()): GatewayError {
  const waitMs = selection.retryAt === undefined ? DEFAULT_RETRY_AFTER_S * 1000 : Math.max(1000, selection.retryAt - now);
  const retry = { 'retry-after': String(Math.ceil(waitMs / 1000)), 'retry-after-ms': String(Math.ceil(waitMs)) };
  const about = model === undefined ? '' : ` for the model "${model}"`;
  const messages: Record<typeof selection.reason, string> = {
    no_upstream: `No upstream is configured${about}.`,
    no_key: `No pool key may serve${about}.`,
    pinned_missing: 'The pool key that holds an object this request names is no longer configured.',
    exhausted: 'Every pool key that could serve this request failed.',
    unavailable:
      selection.retryAt === undefined
        ? 'Every pool key that can serve this request is disabled.'
        : `Every pool key that can serve this request is cooling down or disabled; the first is usable again in ${Math.ceil(waitMs / 1000)} s.`,
  };
  return new GatewayError('no_upstream_key_available', { message: messages[selection.reason], headers: { ...headers, ...retry } });
}
