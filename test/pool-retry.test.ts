// Failover inside one request (docs/reliability.md, cases 11-15): which failures go to another key, bounded by
// attempts and a deadline, with full-jitter backoff for upstream-wide failures.
import { describe, expect, it } from 'vitest';
import { type FailedAttempt, RetryPolicy, type RetrySettings } from '../src/pool/retry.js';

const T0 = 1_700_000_000_000;

function policy(settings: Partial<RetrySettings> = {}, random = () => 0.5) {
  const clock = { t: T0 };
  return { policy: new RetryPolicy({ budgetMinPerSecond: 1000, ...settings }, { now: () => clock.t, random }), clock };
}

const base: FailedAttempt = { method: 'POST', clientSawBytes: false, requestWritten: true, replayable: true };

const table: Array<[string, Partial<FailedAttempt>, boolean]> = [
  ['429 rate limit', { status: 429 }, true],
  ['429 insufficient_quota', { status: 429, error: { code: 'insufficient_quota' } }, true],
  ['401', { status: 401 }, true],
  ['403 refusing the key\'s region', { status: 403, error: { code: 'unsupported_country_region_territory' } }, true],
  ['403 about the request: answered, no other key', { status: 403 }, false],
  ['403 model_not_found: another project may have it', { status: 403, error: { code: 'model_not_found' } }, true],
  ['401 missing scope: the answer to this request', { status: 401, error: { missingScope: true } }, false],
  ['403 on an admin route', { status: 403, privileged: true }, false],
  ['401 on an admin route', { status: 401, error: { code: 'invalid_api_key' }, privileged: true }, false],
  ['500', { status: 500 }, true],
  ['502', { status: 502 }, true],
  ['503', { status: 503 }, true],
  ['504', { status: 504 }, true],
  ['400', { status: 400 }, false],
  ['404', { status: 404 }, false],
  ['409', { status: 409 }, false],
  ['413', { status: 413 }, false],
  ['422', { status: 422 }, false],
  ['connection refused', { transportCode: 'ECONNREFUSED', requestWritten: false }, true],
  ['DNS failure', { transportCode: 'ENOTFOUND', requestWritten: false }, true],
  ['connect timeout', { transportCode: 'UND_ERR_CONNECT_TIMEOUT', requestWritten: false }, true],
  ['reset before the request was written', { transportCode: 'ECONNRESET', requestWritten: false }, true],
  ['reset after a POST was written: it may be running upstream', { transportCode: 'ECONNRESET', requestWritten: true }, false],
  ['reset after a GET was written', { transportCode: 'ECONNRESET', requestWritten: true, method: 'GET' }, true],
  ['no headers in time for a POST', { transportCode: 'UND_ERR_HEADERS_TIMEOUT' }, false],
  ['no headers in time for a GET', { transportCode: 'UND_ERR_HEADERS_TIMEOUT', method: 'GET' }, true],
  ['a 503 whose body broke off', { status: 503, transportCode: 'ECONNRESET' }, true],
  ['an unknown transport failure of a POST', { transportCode: 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH' }, false],
  ['the outbound proxy failed: the request never left', { proxyFailure: true, transportCode: 'ECONNREFUSED', requestWritten: false }, true],
  ['the client left', { clientAborted: true, status: 500 }, false],
];

describe('which failures go to another key', () => {
  it.each(table)('%s', (_name, failure, retried) => {
    const run = policy().policy.begin();
    const decision = run.decide({ ...base, ...failure });
    expect(decision.retry).toBe(retried);
    if (!decision.retry) expect(decision.reason).toBe('not_retryable');
  });
});

describe('never once a byte reached the client', () => {
  it.each([429, 500, 503])('%d', (status) => {
    const run = policy().policy.begin();
    expect(run.decide({ ...base, status, clientSawBytes: true })).toMatchObject({ retry: false, reason: 'client_saw_bytes' });
  });

  it('nor a stream cut mid-body', () => {
    const run = policy().policy.begin();
    expect(run.decide({ ...base, status: 200, transportCode: 'UND_ERR_BODY_TIMEOUT', clientSawBytes: true })).toMatchObject({ retry: false, reason: 'client_saw_bytes' });
  });
});

describe('a body that cannot be sent again', () => {
  it('is not retried, even on a 429', () => {
    const run = policy().policy.begin();
    expect(run.decide({ ...base, status: 429, replayable: false })).toMatchObject({ retry: false, reason: 'body_not_replayable' });
  });
});

describe('bounds', () => {
  it('at most maxAttempts attempts, the first included', () => {
    const run = policy({ maxAttempts: 3 }).policy.begin();
    expect(run.decide({ ...base, status: 500 }).retry).toBe(true);
    expect(run.decide({ ...base, status: 500 }).retry).toBe(true);
    expect(run.decide({ ...base, status: 500 })).toMatchObject({ retry: false, reason: 'max_attempts' });
    expect(run.attempts).toBe(3);
  });

  it('no retry starts past the deadline', () => {
    const { policy: p, clock } = policy({ deadlineMs: 10_000 });
    const run = p.begin();
    clock.t += 9_000;
    expect(run.decide({ ...base, status: 429 }).retry).toBe(true);
    clock.t += 1_000;
    expect(run.decide({ ...base, status: 429 })).toMatchObject({ retry: false, reason: 'deadline' });
  });

  it('nor one whose backoff would end past it', () => {
    const { policy: p, clock } = policy({ deadlineMs: 10_000, baseDelayMs: 1000, maxDelayMs: 1000 }, () => 0.9);
    const run = p.begin();
    clock.t += 9_500;
    expect(run.decide({ ...base, status: 500 })).toMatchObject({ retry: false, reason: 'deadline' });
  });
});

describe('backoff', () => {
  it('none after a key-specific refusal: the next key is independent', () => {
    for (const failure of [{ status: 429 }, { status: 401 }, { status: 403, error: { code: 'unsupported_country_region_territory' } }, { status: 403, error: { code: 'model_not_found' } }]) {
      expect(policy().policy.begin().decide({ ...base, ...failure })).toMatchObject({ retry: true, delayMs: 0 });
    }
  });

  it('full jitter, doubling, capped, after upstream-wide failures', () => {
    const { policy: p } = policy({ baseDelayMs: 100, maxDelayMs: 500, maxAttempts: 10 }, () => 0.5);
    const run = p.begin();
    const delays = Array.from({ length: 5 }, () => {
      const decision = run.decide({ ...base, status: 503 });
      return decision.retry ? decision.delayMs : -1;
    });
    expect(delays).toEqual([50, 100, 200, 250, 250]);
  });

  it('spans zero up to the ceiling', () => {
    const low = policy({ baseDelayMs: 100 }, () => 0).policy;
    const high = policy({ baseDelayMs: 100 }, () => 0.999_999).policy;
    expect(low.backoff(2)).toBe(0);
    expect(high.backoff(2)).toBe(399);
  });
});

describe('the verdict comes along', () => {
  it('so the caller can tell the key health what happened', () => {
    const run = policy().policy.begin();
    expect(run.decide({ ...base, status: 401 })).toEqual({ retry: true, delayMs: 0, verdict: { kind: 'disable', reason: 'invalid_api_key' } });
    expect(run.decide({ ...base, status: 404 })).toEqual({ retry: false, reason: 'not_retryable', verdict: { kind: 'neutral' } });
  });
});
