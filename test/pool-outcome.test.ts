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
  // A 403 about the key's region holds for every request: disabled. Any other 403 is about the request.
  ['403 region', { status: 403, error: { code: 'unsupported_country_region_territory' } }, { kind: 'disable', reason: 'forbidden' }],
  ['403 without a code', { status: 403, error: {} }, { kind: 'refused', reason: 'forbidden' }],
  ['403 model_not_found', { status: 403, error: { code: 'model_not_found' } }, { kind: 'ignored', reason: 'model_unavailable' }],
  // "This key may not do this": the client's answer, the key stays as it was.
  ['401 with a missing-scope message', { status: 401, error: { type: 'invalid_request_error', missingScope: true } }, { kind: 'refused', reason: 'missing_scope' }],
  ['401 missing_scope', { status: 401, error: { code: 'missing_scope' } }, { kind: 'refused', reason: 'missing_scope' }],
  ['403 insufficient_permissions', { status: 403, error: { code: 'insufficient_permissions' } }, { kind: 'refused', reason: 'missing_scope' }],
  ['403 insufficient_scope (RFC 6750)', { status: 403, error: { code: 'insufficient_scope' } }, { kind: 'refused', reason: 'missing_scope' }],
  ['401 without a body on an admin route', { status: 401, privileged: true }, { kind: 'refused', reason: 'privileged_route' }],
  ['403 without a code on an admin route', { status: 403, error: { type: 'invalid_request_error' }, privileged: true }, { kind: 'refused', reason: 'privileged_route' }],
  ['401 invalid_api_key on an admin route', { status: 401, error: { code: 'invalid_api_key' }, privileged: true }, { kind: 'refused', reason: 'privileged_route' }],
  // Account-wide codes say the same on every route.
  ['401 account_deactivated on an admin route', { status: 401, error: { code: 'account_deactivated' }, privileged: true }, { kind: 'disable', reason: 'account_deactivated' }],
  ['429 insufficient_quota on an admin route', { status: 429, error: { code: 'insufficient_quota' }, privileged: true }, { kind: 'disable', reason: 'insufficient_quota' }],
  ['429 on an admin route', { status: 429, privileged: true }, { kind: 'rate_limited' }],
  ['500 on an admin route', { status: 500, privileged: true }, { kind: 'transient', reason: 'server_error' }],
  ['200 on an admin route', { status: 200, privileged: true }, { kind: 'ok' }],
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

const openaiBody = (message: string, type: string) => ({ error: { message, type, param: null, code: null } });

describe('upstream error bodies', () => {
  it('reads code and type of an OpenAI error', () => {
    const body = Buffer.from(
      JSON.stringify({ error: { message: 'You exceeded your current quota.', type: 'insufficient_quota', param: null, code: 'insufficient_quota' } }),
    );
    expect(parseUpstreamError(body)).toEqual({ code: 'insufficient_quota', type: 'insufficient_quota' });
  });

  it("recognises OpenAI's missing-scope refusal, which has no code", () => {
    const body = JSON.stringify(
      openaiBody(
        "You have insufficient permissions for this operation. Missing scopes: api.model.read. Check that you have the correct role in your organization (Reader, Writer, Owner) and project (Member, Owner), and if you're using a restricted API key, that it has the necessary scopes.",
        'invalid_request_error',
      ),
    );
    expect(parseUpstreamError(body)).toEqual({ type: 'invalid_request_error', missingScope: true });
  });

  it('recognises the refusal when `error` is the bare message', () => {
    const body = JSON.stringify({ error: 'You have insufficient permissions for this operation. Missing scopes: api.usage.read.' });
    expect(parseUpstreamError(body)).toEqual({ missingScope: true });
  });

  it('does not take an invalid key for a missing scope', () => {
    const body = JSON.stringify({ error: { message: 'Incorrect API key provided: sk-***abcd.', type: 'invalid_request_error', param: null, code: 'invalid_api_key' } });
    expect(parseUpstreamError(body)).toEqual({ code: 'invalid_api_key', type: 'invalid_request_error' });
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
