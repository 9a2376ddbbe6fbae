// What a malformed upstream answer says about the pool key that asked (src/pool/outcome.ts) and
// whether the request goes to another key (src/pool/retry.ts): unparsable HTTP, a header section
// past undici's bound, a body that does not decode are the upstream's fault, the same whatever key
// asked. They leave the key's health as it was; a status that could be read still counts as itself.
import { describe, expect, it } from 'vitest';
import { errors } from 'undici';
import { GatewayError } from '../src/errors.js';
import { type AttemptResult, classifyAttempt, isMalformedAnswer } from '../src/pool/outcome.js';
import { type FailedAttempt, RetryPolicy } from '../src/pool/retry.js';
import { errorCode, mapUpstreamError } from '../src/relay/upstream-errors.js';

describe('the verdict on the key', () => {
  it.each<[string, AttemptResult, object]>([
    ['an answer llhttp could not parse', { transportCode: 'HPE_INVALID' }, { kind: 'ignored', reason: 'malformed_answer' }],
    ['a header section past 16 KB', { transportCode: 'UND_ERR_HEADERS_OVERFLOW' }, { kind: 'ignored', reason: 'malformed_answer' }],
    ['a 200 whose gzip body did not decode', { status: 200, transportCode: 'Z_DATA_ERROR' }, { kind: 'ignored', reason: 'malformed_answer' }],
    ['a 400 whose body did not decode', { status: 400, transportCode: 'Z_DATA_ERROR' }, { kind: 'neutral' }],
    ['a 500 whose body did not decode: a 500 all the same', { status: 500, transportCode: 'Z_DATA_ERROR' }, { kind: 'transient', reason: 'server_error' }],
    ['a 401 whose body did not decode: the key is dead all the same', { status: 401, transportCode: 'Z_BUF_ERROR' }, { kind: 'disable', reason: 'invalid_api_key' }],
    ['a 429 whose body did not decode', { status: 429, transportCode: 'Z_DATA_ERROR' }, { kind: 'rate_limited' }],
    ['a reset mid-body is not malformed: transient as before', { status: 200, transportCode: 'UND_ERR_SOCKET' }, { kind: 'transient', reason: 'connection_reset' }],
    ['a stall is not malformed: a timeout as before', { status: 200, transportCode: 'UND_ERR_BODY_TIMEOUT' }, { kind: 'transient', reason: 'timeout' }],
  ])('%s', (_name, result, verdict) => {
    expect(classifyAttempt(result)).toEqual(verdict);
  });
});

describe('another key for a malformed answer', () => {
  const base: FailedAttempt = { method: 'POST', clientSawBytes: false, requestWritten: true, replayable: true, transportCode: 'HPE_INVALID' };
  it.each<[string, Partial<FailedAttempt>, boolean]>([
    ['not for a POST: the upstream had it, and may be working on it', {}, false],
    ['for a GET', { method: 'GET' }, true],
    ['for a 502 whose body did not decode, as for any 502', { status: 502, transportCode: 'Z_DATA_ERROR' }, true],
  ])('%s', (_name, failure, retried) => {
    const run = new RetryPolicy({ budgetMinPerSecond: 1000 }).begin();
    expect(run.decide({ ...base, ...failure }).retry).toBe(retried);
  });
});

describe('the error the client gets', () => {
  it('undici\'s parser error, even without its llhttp code, is a malformed answer: 502 upstream_invalid_response', () => {
    const err = new errors.HTTPParserError('Response does not match the HTTP/1.1 protocol');
    expect(errorCode(err)).toBe('HPE_INVALID');
    expect(mapUpstreamError(err)).toMatchObject({ code: 'upstream_invalid_response', status: 502 });
  });

  it.each(['UND_ERR_HEADERS_OVERFLOW', 'HPE_INVALID_CONSTANT', 'Z_DATA_ERROR', 'ERR__ERROR_FORMAT_PADDING_1'])('%s: 502 upstream_invalid_response', (code) => {
    expect(isMalformedAnswer(code)).toBe(true);
    const err = Object.assign(new Error('x'), { code });
    const mapped = mapUpstreamError(err);
    expect(mapped).toBeInstanceOf(GatewayError);
    expect(mapped.body().error).toMatchObject({ code: 'upstream_invalid_response', type: 'server_error' });
  });

  it.each(['ECONNRESET', 'UND_ERR_SOCKET', 'ECONNREFUSED'])('%s stays 502 upstream_unreachable', (code) => {
    expect(isMalformedAnswer(code)).toBe(false);
    expect(mapUpstreamError(Object.assign(new Error('x'), { code })).code).toBe('upstream_unreachable');
  });
});
