// The access line is written without pino's key-by-key serialising (src/observability/line-writer.ts):
// for every kind of record the line must be the one pino itself writes, byte for byte but for
// the time, masking included; and levels that are off write nothing.
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../src/logger.js';
import { accessLine, sanitize } from '../src/observability/access-log.js';
import { lineWriter } from '../src/observability/line-writer.js';
import type { RequestRecord } from '../src/observability/record.js';
import { createMasker } from '../src/relay/mask.js';
import { registerSecret } from './helpers/log-capture.js';

const SECRET = 'sk-proxy-password-line-writer-0001';
registerSecret(SECRET);

function sink(): { stream: Writable; lines: string[] } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(chunk.toString('utf8'));
      done();
    },
  });
  return { stream, lines };
}

const withoutTime = (line: string): string => line.replace(/"time":"[^"]+"/, '"time":"T"');

const BASE: RequestRecord = {
  requestId: '5b0f4c1e-0000-4000-8000-000000000001',
  time: '2026-11-28T21:00:00.000Z',
  method: 'POST',
  route: '/v1/chat/completions',
  status: 200,
  outcome: 'ok',
  stream: false,
  retries: 0,
  durationMs: 12.34,
  bytesOut: 512,
};

const RECORDS: Array<[string, RequestRecord]> = [
  ['a relayed chat answer', { ...BASE, userId: 'alice', keyId: 'key_1', poolKeyId: 'env-1', upstream: 'default', model: 'gpt-4o-mini', stream: false, ttfbMs: 3.21, tokens: { input: 20, cachedInput: 0, output: 7, estimated: false }, costMicros: 7, bytesIn: 180, userAgent: 'OpenAI/JS 6.9.0', upstreamRequestId: 'req_abc' }],
  ['a refusal of its own', { ...BASE, status: 401, outcome: 'auth_failed', errorCode: 'invalid_api_key' }],
  ['a 502 with retries and a secret in its message', { ...BASE, status: 502, outcome: 'upstream_error', retries: 2, tried: [{ poolKeyId: 'env-1', status: 500 }, { poolKeyId: 'env-2', code: 'ECONNRESET' }], errorCode: 'upstream_unreachable', errorMessage: `proxy http://user:${SECRET}@proxy.test refused` }],
  ['hostile free text', { ...BASE, userAgent: 'curl/8 "quoted" \\ back\nnew line\u0000\u001b[31m red \ud800 lone é ü 漢字', endUser: '</script><b>x</b>', model: 'gpt\t4o' }],
  ['numbers that are not finite', { ...BASE, ttfbMs: Number.NaN, durationMs: Number.POSITIVE_INFINITY }],
];

describe('the access line', () => {
  it.each(RECORDS)('%s: the same line as pino writes', (_name, raw) => {
    const viaPino = sink();
    const direct = sink();
    const options = { pretty: false, secrets: [SECRET] };
    const masker = createMasker([SECRET]);
    const fields = accessLine(sanitize(raw, masker));
    const level = raw.status >= 500 ? 'warn' : 'info';
    createLogger('info', viaPino.stream, options)[level](fields, 'request');
    lineWriter(createLogger('info', direct.stream, options))(level, fields, 'request');
    expect(direct.lines).toHaveLength(1);
    expect(withoutTime(direct.lines[0] ?? '')).toBe(withoutTime(viaPino.lines[0] ?? ''));
    expect(direct.lines[0]).not.toContain(SECRET);
    expect(JSON.parse(direct.lines[0] ?? '')).toMatchObject({ msg: 'request', requestId: raw.requestId });
  });

  it('writes nothing at a level that is off', () => {
    const out = sink();
    const write = lineWriter(createLogger('warn', out.stream, { pretty: false }));
    write('info', { requestId: 'x' }, 'request');
    write('warn', { requestId: 'y' }, 'request');
    expect(out.lines.map((l) => JSON.parse(l).requestId)).toEqual(['y']);
  });
});
