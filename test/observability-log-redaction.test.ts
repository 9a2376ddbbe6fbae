// Serialised errors never carry secrets: an undici error keeps no request or response headers nor
// body, an ioredis error no command arguments; URLs lose their passwords, digests are hidden, and
// every line is masked for OpenAI-shaped keys and the settings' secrets before it is written.
import { Writable } from 'node:stream';
import { Redis } from 'ioredis';
import { Agent, interceptors, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeUpstream, type FakeUpstream } from '../src/dev/fake-upstream.js';
import { loadConfig } from '../src/config.js';
import { createLogger, loggerOptions } from '../src/logger.js';
import { digestKey } from '../src/keys.js';
import { registerSecret } from './helpers/log-capture.js';
import { captureLogLine } from './helpers/log-capture.js';
import { type RedisServer, startRedis } from './helpers/redis-server.js';

const POOL_KEY = 'sk-proj-redaction0123456789abcdefXYZ';
const USER_KEY = 'sk-kr-Redaction0123456789abcdefghijKLMN';
const COOKIE = 'session-cookie-value-0123456789';
const PROXY_PASSWORD = 'hunter2-proxy-password';
const ADMIN_TOKEN = 'admin-token-for-redaction-0123';
for (const secret of [POOL_KEY, USER_KEY, COOKIE, PROXY_PASSWORD, ADMIN_TOKEN, digestKey(USER_KEY)]) registerSecret(secret);

function capture(options: Parameters<typeof createLogger>[2] = {}) {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (!line) continue;
        captureLogLine(line);
        lines.push(line);
      }
      done();
    },
  });
  return { log: createLogger('info', sink, options), lines };
}

let fake: FakeUpstream;
let redis: RedisServer;

beforeAll(async () => {
  fake = await startFakeUpstream();
  redis = await startRedis();
});
afterAll(async () => {
  await fake.close();
  await redis.stop();
});

describe('error serialisation', () => {
  it('keeps type, message, code and status of an undici ResponseError, not its headers or body', async () => {
    fake.handle(() => ({
      status: 401,
      headers: { 'set-cookie': `s=${COOKIE}`, 'x-echo-authorization': `Bearer ${POOL_KEY}` },
      body: { error: { message: `Incorrect API key provided: ${POOL_KEY}`, code: 'invalid_api_key' } },
    }));
    const dispatcher = new Agent().compose(interceptors.responseError());
    const failure = await request(`${fake.url}/v1/models`, { dispatcher, headers: { authorization: `Bearer ${POOL_KEY}`, cookie: COOKIE } }).catch(
      (err: unknown) => err,
    );
    await dispatcher.close();
    expect(failure).toBeInstanceOf(Error);
    expect(JSON.stringify(Object.keys(failure as object))).toContain('headers');

    const { log, lines } = capture();
    log.error({ err: failure }, 'upstream failed');
    const line = JSON.parse(lines[0] ?? '{}');
    expect(Object.keys(line.err).sort()).toEqual(['code', 'message', 'stack', 'statusCode', 'type']);
    expect(line.err).toMatchObject({ type: 'ResponseError', code: 'UND_ERR_RESPONSE', statusCode: 401 });
    expect(lines[0]).not.toContain(COOKIE);
    expect(lines[0]).not.toContain(POOL_KEY);
  });

  it('keeps no command arguments of an ioredis ReplyError, and hides digests in its message', async () => {
    const client = new Redis(redis.url);
    const digest = digestKey(USER_KEY);
    const failure = await client.call('SET', `kr:key:${digest}`, USER_KEY, 'NOT-AN-OPTION').catch((err: unknown) => err);
    const wrongType = await client
      .set(`kr:h:${digest}`, 'x')
      .then(() => client.hget(`kr:h:${digest}`, 'f'))
      .catch((err: unknown) => err);
    await client.quit();
    expect((failure as { command?: unknown }).command).toBeDefined();

    const { log, lines } = capture();
    log.error({ err: failure }, 'redis failed');
    log.error({ err: new Error(`no such key kr:key:${digest}`, { cause: wrongType }) }, 'redis failed');
    // ioredis 6 names its reply errors SimpleError (from @ioredis/commands' parser).
    expect(JSON.parse(lines[0] ?? '{}').err).toMatchObject({ type: 'SimpleError', message: 'ERR syntax error' });
    expect(JSON.parse(lines[0] ?? '{}').err.command).toBeUndefined();
    expect(JSON.parse(lines[1] ?? '{}').err).toMatchObject({ message: 'no such key kr:key:[sha256]', cause: { type: 'SimpleError', message: expect.stringContaining('WRONGTYPE') } });
    for (const line of lines) {
      expect(line).not.toContain(USER_KEY);
      expect(line).not.toContain(digest);
    }
  });

  it('drops the password of a URL in a message, follows causes and aggregated errors', () => {
    const { log, lines } = capture();
    const proxy = new Error(`CONNECT via http://user:${PROXY_PASSWORD}@proxy.example:8080 refused`);
    const both = new AggregateError([proxy, new Error(`socks5h://u:${encodeURIComponent(PROXY_PASSWORD)}@10.0.0.1:1080 timed out`)], 'all failed');
    log.warn({ err: new Error('attempt failed', { cause: both }) }, 'proxy');
    const err = JSON.parse(lines[0] ?? '{}').err;
    expect(err.cause.type).toBe('AggregateError');
    expect(err.cause.errors.map((e: { message: string }) => e.message)).toEqual([
      'CONNECT via http://***@proxy.example:8080 refused',
      'socks5h://***@10.0.0.1:1080 timed out',
    ]);
    expect(lines[0]).not.toContain(PROXY_PASSWORD);
  });
});

describe('the last net', () => {
  it('masks OpenAI-shaped keys anywhere in a line, and the settings secrets when given them', () => {
    const config = loadConfig(
      { KEYRELAY_CONFIG: undefined, KEYRELAY_ADMIN_TOKEN: ADMIN_TOKEN, OPENAI_API_KEYS: POOL_KEY, KEYRELAY_PROXY: `http://u:${PROXY_PASSWORD}@proxy.example:3128` },
      {},
    );
    const { log, lines } = capture({ ...loggerOptions(config), pretty: false });
    log.info({ note: `the key ${POOL_KEY} and ${USER_KEY}` }, `token ${ADMIN_TOKEN}`);
    log.info({ nested: { deep: [PROXY_PASSWORD] } }, 'nested');
    expect(JSON.parse(lines[0] ?? '{}')).toMatchObject({ note: 'the key sk-***fXYZ and sk-***KLMN', msg: 'token ***0123' });
    expect(JSON.parse(lines[1] ?? '{}').nested.deep[0]).toMatch(/^\*\*\*/);
  });
});
