// Settings: file plus environment, `env:NAME` secrets, and a start that names the bad setting.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, DEFAULT_UPSTREAM_URL, loadConfig } from '../src/config.js';

function file(text: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'keyrelay-config-'));
  const path = join(dir, 'keyrelay.yaml');
  writeFileSync(path, text);
  return path;
}

describe('defaults', () => {
  it('listens on 127.0.0.1:8080 with one default upstream and no keys', () => {
    const config = loadConfig({});
    expect(config.host).toBe('127.0.0.1');
    expect(config.port).toBe(8080);
    expect(config.logLevel).toBe('info');
    expect(config.adminToken).toBeUndefined();
    expect(config.upstreams).toEqual([
      expect.objectContaining({ id: 'default', baseUrl: DEFAULT_UPSTREAM_URL, keys: [], models: ['*'] }),
    ]);
    expect(config.limits).toEqual({ jsonBodyBytes: 50 * 1024 * 1024, multipartBodyBytes: 512 * 1024 * 1024, otherBodyBytes: 512 * 1024 * 1024 });
    expect(config.inbound).toEqual({ maxConnections: 10_000, maxRequestsInFlight: 5000, maxEventLoopDelayMs: 0, maxEventLoopUtilization: 0, maxHeaderBytes: 64 * 1024, maxHeadersCount: 100, headersMs: 20_000, idleMs: 30_000, bodyMinBytesPerSecond: 1024, requestMs: 0, keepAliveMs: 72_000 });
  });

  it('the annotated example loads', () => {
    const config = loadConfig({
      KEYRELAY_CONFIG: 'config/keyrelay.example.yaml',
      KEYRELAY_ADMIN_TOKEN: 'an-admin-token-of-enough-length',
      OPENAI_KEY_TEAM_A: 'sk-a',
      OPENAI_KEY_TEAM_B: 'sk-b',
    });
    expect(config.upstreams[0]?.keys.map((k) => [k.id, k.key])).toEqual([
      ['team-a', 'sk-a'],
      ['team-b', 'sk-b'],
    ]);
  });
});

describe('the environment', () => {
  it('overrides the file and fills the default upstream', () => {
    const path = file(`port: 9000
host: 0.0.0.0
upstreams:
  - id: main
    baseUrl: https://example.test/v1
    keys: [{ id: a, key: sk-file }]
  - id: second
    baseUrl: https://second.test/v1
    models: ["llama*"]
`);
    const config = loadConfig({
      KEYRELAY_CONFIG: path,
      PORT: '9100',
      OPENAI_API_KEYS: ' sk-one , sk-two ,',
      KEYRELAY_UPSTREAM_URL: 'http://127.0.0.1:1234/v1',
      REDIS_URL: 'redis://127.0.0.1:6380',
      LOG_LEVEL: 'warn',
    });
    expect(config.port).toBe(9100);
    expect(config.host).toBe('0.0.0.0');
    expect(config.logLevel).toBe('warn');
    expect(config.redis.url).toBe('redis://127.0.0.1:6380');
    expect(config.upstreams.map((u) => u.id)).toEqual(['main', 'second']);
    expect(config.upstreams[0]?.baseUrl).toBe('http://127.0.0.1:1234/v1');
    expect(config.upstreams[0]?.keys.map((k) => [k.id, k.key])).toEqual([
      ['env-1', 'sk-one'],
      ['env-2', 'sk-two'],
    ]);
  });

  it('KEYRELAY_MAX_CONNECTIONS sets inbound/maxConnections over the file', () => {
    const path = file('inbound:\n  maxConnections: 500\n  idleMs: 45000\n');
    expect(loadConfig({ KEYRELAY_CONFIG: path, KEYRELAY_MAX_CONNECTIONS: '2000' }).inbound).toMatchObject({ maxConnections: 2000, idleMs: 45_000 });
  });

  it('KEYRELAY_MAX_REQUESTS_IN_FLIGHT sets inbound/maxRequestsInFlight over the file', () => {
    const path = file('inbound:\n  maxRequestsInFlight: 500\n  maxHeadersCount: 50\n');
    expect(loadConfig({ KEYRELAY_CONFIG: path, KEYRELAY_MAX_REQUESTS_IN_FLIGHT: '700' }).inbound).toMatchObject({ maxRequestsInFlight: 700, maxHeadersCount: 50 });
    expect(loadConfig({ KEYRELAY_CONFIG: path, KEYRELAY_MAX_EVENT_LOOP_DELAY_MS: '150' }).inbound).toMatchObject({ maxRequestsInFlight: 500, maxEventLoopDelayMs: 150 });
  });

  it('KEYRELAY_MAX_EVENT_LOOP_UTILIZATION sets inbound/maxEventLoopUtilization, off by default', () => {
    expect(loadConfig({}).inbound.maxEventLoopUtilization).toBe(0);
    expect(loadConfig({ KEYRELAY_MAX_EVENT_LOOP_UTILIZATION: '0.9' }).inbound.maxEventLoopUtilization).toBe(0.9);
    expect(loadConfig({ KEYRELAY_MAX_EVENT_LOOP_UTILIZATION: '1' }).inbound.maxEventLoopUtilization).toBe(1);
    expect(loadConfig({ KEYRELAY_CONFIG: file('inbound:\n  maxEventLoopUtilization: 0.85\n') }).inbound.maxEventLoopUtilization).toBe(0.85);
  });

  it('reads env:NAME secrets from the file', () => {
    const path = file('adminToken: env:MY_TOKEN\n');
    expect(loadConfig({ KEYRELAY_CONFIG: path, MY_TOKEN: 'a-long-enough-admin-token' }).adminToken).toBe('a-long-enough-admin-token');
  });
});

describe('a bad setting stops the start with its name', () => {
  const cases: Array<[string, Record<string, string>, RegExp]> = [
    ['PORT not a number', { PORT: 'eighty' }, /^PORT: expected a whole number/],
    ['PORT out of range', { PORT: '70000' }, /^setting port: /],
    ['a short admin token', { KEYRELAY_ADMIN_TOKEN: 'short' }, /^setting adminToken: /],
    ['an unknown log level', { LOG_LEVEL: 'loud' }, /^setting logLevel: /],
    ['a bad upstream URL', { KEYRELAY_UPSTREAM_URL: 'ftp://x' }, /^setting upstreams\/0\/baseUrl: /],
    ['a bad Redis URL', { REDIS_URL: 'http://x' }, /^setting redis\/url: /],
    ['a missing settings file', { KEYRELAY_CONFIG: '/nonexistent/keyrelay.yaml' }, /^KEYRELAY_CONFIG: file not found/],
    ['no connections allowed', { KEYRELAY_MAX_CONNECTIONS: '0' }, /^setting inbound\/maxConnections: /],
    ['a utilisation past 1', { KEYRELAY_MAX_EVENT_LOOP_UTILIZATION: '1.5' }, /^KEYRELAY_MAX_EVENT_LOOP_UTILIZATION: expected a number from 0 to 1, got "1.5"/],
    ['a utilisation in percent', { KEYRELAY_MAX_EVENT_LOOP_UTILIZATION: '90%' }, /^KEYRELAY_MAX_EVENT_LOOP_UTILIZATION: expected a number from 0 to 1/],
  ];
  it.each(cases)('%s', (_name, env, message) => {
    expect(() => loadConfig(env)).toThrow(ConfigError);
    expect(() => loadConfig(env)).toThrow(message);
  });

  it.each([
    ['an unknown setting', 'colour: blue\n', /setting colour: |\(top level\)|colour/],
    ['an env: secret that is not set', 'adminToken: env:NOT_SET_ANYWHERE\n', /^setting \/adminToken: environment variable NOT_SET_ANYWHERE is not set/],
    ['duplicate upstream ids', 'upstreams:\n  - {id: a, baseUrl: "https://a.test/v1"}\n  - {id: a, baseUrl: "https://b.test/v1"}\n', /^setting upstreams\/1\/id: duplicate id/],
    ['duplicate key ids', 'upstreams:\n  - id: a\n    baseUrl: https://a.test/v1\n    keys: [{id: k, key: x}, {id: k, key: y}]\n', /^setting upstreams\/0\/keys\/1\/id: duplicate/],
    ['YAML that is not a mapping', '- a\n- b\n', /top level must be a mapping/],
    ['broken YAML', 'a: [1, 2\n', /not valid YAML/],
    ['a request total shorter than the headers timeout', 'inbound:\n  headersMs: 20000\n  requestMs: 5000\n', /^setting inbound\/requestMs: must be 0 \(none\) or at least inbound\/headersMs/],
  ])('%s', (_name, text, message) => {
    expect(() => loadConfig({ KEYRELAY_CONFIG: file(text) })).toThrow(message);
  });

  it('never quotes a secret value in its message', () => {
    const path = file('upstreams:\n  - id: a\n    baseUrl: https://a.test/v1\n    keys: [{id: "bad id!", key: sk-secret-value-123}]\n');
    expect(() => loadConfig({ KEYRELAY_CONFIG: path })).toThrow(/^setting upstreams\/0\/keys\/0\/id: /);
    try {
      loadConfig({ KEYRELAY_CONFIG: path });
    } catch (err) {
      expect((err as Error).message).not.toContain('sk-secret-value-123');
    }
  });
});
