// What one upstream attempt says about its key: the verdict both key health and failover start from.
import { describe, expect, it } from 'vitest';
import { type AttemptResult, type Verdict, classifyAttempt, parseUpstreamError } from '../src/pool/outcome.js';

const cases: Array<[string, AttemptResult, Verdict]> = [
  ['200', { status: 200 }, { kind: 'ok' }],
  ['201', { status: 201 }, { kind: 'ok' }],
  ['304', { status: 304 }, { kind: 'ok' }],
  ['400', { status: 400, error: { code: 'invalid_value', type: 'invalid_request_error' } }, { kind: 'neutral' }],
  ['404', { status: 404 }, { kind: 'neutral' }],
  ['404 model_not_found', { status: 404, error: { code: 'model_not_found' } }, { kind: 'neutral' }],
  ['409', { status: 409 }, { kind: 'neutral' }],
  ['413', { status: 413 }, { kind: 'neutral' }],
  ['422', { status: 422 }, { kind: 'neutral' }],
  ['401 invalid_api_key', { status: 401, error: { code: 'invalid_api_key' } }, { kind: 'disable', reason: 'invalid_api_key' }],
  ['401 without a body', { status: 401 }, { kind: 'disable', reason: 'invalid_api_key' }],
  ['401 account_deactivated', { status: 401, error: { code: 'account_deactivated' } }, { kind: 'disable', reason: 'account_deactivated' }],
  ['403', { status: 403, error: { code: 'unsupported_country_region_territory' } }, { kind: 'disable', reason: 'forbidden' }],
  ['403 model_not_found', { status: 403, error: { code: 'model_not_found' } }, { kind: 'ignored', reason: 'model_unavailable' }],
  ['429 rate limit', { status: 429, error: { code: 'rate_limit_exceeded', type: 'requests' } }, { kind: 'rate_limited' }],
  ['429 without a body', { status: 429 }, { kind: 'rate_limited' }],
  ['429 insufficient_quota code', { status: 429, error: { code: 'insufficient_quota' } }, { kind: 'disable', reason: 'insufficient_quota' }],
  ['429 insufficient_quota type', { status: 429, error: { type: 'insufficient_quota', code: 'x' } }, { kind: 'disable', reason: 'insufficient_quota' }],
  ['429 billing_not_active', { status: 429, error: { code: 'billing_not_active' } }, { kind: 'disable', reason: 'insufficient_quota' }],
  ['500', { status: 500 }, { kind: 'transient', reason: 'server_error' }],
  ['502', { status: 502 }, { kind: 'transient', reason: 'server_error' }],
  ['503', { status: 503 }, { kind: 'transient', reason: 'server_error' }],
  ['connection refused', { transportCode: 'ECONNREFUSED' }, { kind: 'transient', reason: 'connect_error' }],
  ['DNS failure', { transportCode: 'ENOTFOUND' }, { kind: 'transient', reason: 'connect_error' }],
  ['connect timeout', { transportCode: 'UND_ERR_CONNECT_TIMEOUT' }, { kind: 'transient', reason: 'timeout' }],
  ['headers timeout', { transportCode: 'UND_ERR_HEADERS_TIMEOUT' }, { kind: 'transient', reason: 'timeout' }],
  ['reset', { transportCode: 'ECONNRESET' }, { kind: 'transient', reason: 'connection_reset' }],
  ['socket closed', { transportCode: 'UND_ERR_SOCKET' }, { kind: 'transient', reason: 'connection_reset' }],
  ['an unknown code', { transportCode: 'EWHATEVER' }, { kind: 'transient', reason: 'transport_error' }],
  ['no code at all', {}, { kind: 'transient', reason: 'transport_error' }],
  ['a stall mid-body of a 200', { status: 200, transportCode: 'UND_ERR_BODY_TIMEOUT' }, { kind: 'transient', reason: 'timeout' }],
  ['a reset while reading a 429 body', { status: 429, transportCode: 'ECONNRESET' }, { kind: 'rate_limited' }],
  ['the proxy failed', { proxyFailure: true, transportCode: 'ECONNREFUSED' }, { kind: 'ignored', reason: 'proxy' }],
  ['the client left', { clientAborted: true, status: 500 }, { kind: 'ignored', reason: 'client_aborted' }],
];

describe('verdicts', () => {
  it.each(cases)('%s', (_name, result, verdict) => {
    expect(classifyAttempt(result)).toEqual(verdict);
  });
});

describe('upstream error bodies', () => {
  it('reads code and type of an OpenAI error', () => {
    const body = Buffer.from(
      JSON.stringify({ error: { message: 'You exceeded your current quota.', type: 'insufficient_quota', param: null, code: 'insufficient_quota' } }),
    );
    expect(parseUpstreamError(body)).toEqual({ code: 'insufficient_quota', type: 'insufficient_quota' });
  });

  it('keeps only string fields', () => {
    expect(parseUpstreamError('{"error":{"message":"x","type":"server_error","code":null}}')).toEqual({ type: 'server_error' });
  });

  it.each([
    ['not JSON', '<html>502 Bad Gateway</html>'],
    ['JSON without error', '{"id":"x"}'],
    ['an error that is a string', '{"error":"boom"}'],
    ['empty', ''],
    ['null', 'null'],
  ])('is empty for %s', (_name, body) => {
    expect(parseUpstreamError(body)).toEqual({});
  });

  it('does not parse an oversized body', () => {
    const big = JSON.stringify({ error: { code: 'insufficient_quota', message: 'x'.repeat(70_000) } });
    expect(parseUpstreamError(big)).toEqual({});
  });
});
