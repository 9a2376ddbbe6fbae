// Proxy settings: URLs read as curl reads them, checked at start with a message that names the
// setting and never echoes a password, the most specific setting winning, and the start-up lines
// that say which egress each upstream and key uses, passwords masked.
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { type Config, ConfigError, loadConfig } from '../src/config.js';
import { createLogger } from '../src/logger.js';
import { proxyPlan } from '../src/proxy/plan.js';
import { parseProxyUrl } from '../src/proxy/url.js';
import { startServer } from '../src/server.js';
import { captureLogLine, registerSecret } from './helpers/log-capture.js';

const PASSWORD = 'Settings-Passw0rd-xyz';
registerSecret(PASSWORD);

const baseEnv = { KEYRELAY_CONFIG: undefined, OPENAI_API_KEYS: 'sk-settings-key-0123456789' };
registerSecret(baseEnv.OPENAI_API_KEYS);

function configError(env: Record<string, string | undefined>, overrides: Partial<Config> = {}): string {
  try {
    loadConfig({ ...baseEnv, ...env }, overrides);
  } catch (err) {
    if (err instanceof ConfigError) return err.message;
    throw err;
  }
  throw new Error('the settings were accepted');
}

describe('proxy URLs', () => {
  it('default the scheme to http:// and the port as curl does', () => {
    const summary = (s: string) => {
      const p = parseProxyUrl(s);
      return `${p.kind} ${p.hostname} ${p.port}`;
    };
    expect(summary('proxy.example')).toBe('http proxy.example 1080');
    expect(summary('proxy.example:3128')).toBe('http proxy.example 3128');
    expect(summary('http://proxy.example:80')).toBe('http proxy.example 80');
    expect(summary('https://proxy.example')).toBe('https proxy.example 443');
    expect(summary('HTTPS://proxy.example:443')).toBe('https proxy.example 443');
    expect(summary('socks5://proxy.example')).toBe('socks5 proxy.example 1080');
    expect(summary('socks5h://[::1]:9050')).toBe('socks5h ::1 9050');
  });

  it('mask the password everywhere they can be shown', () => {
    const p = parseProxyUrl(`http://alice:${encodeURIComponent(`${PASSWORD}@:/`)}@proxy.example:3128`);
    expect(p.username).toBe('alice');
    expect(p.password).toBe(`${PASSWORD}@:/`);
    expect(p.masked).toBe('http://alice:***@proxy.example:3128');
    expect(JSON.stringify({ proxy: p })).toBe('{"proxy":"http://alice:***@proxy.example:3128"}');
    expect(`${p}`).toBe('http://alice:***@proxy.example:3128');
    expect(parseProxyUrl('socks5h://[::1]:9050').masked).toBe('socks5h://[::1]:9050');
  });
});

describe('invalid proxy settings stop the start', () => {
  it('name the setting and never echo the URL', () => {
    const messages = [
      configError({ KEYRELAY_PROXY: `ftp://bob:${PASSWORD}@proxy.example` }),
      configError({ HTTPS_PROXY: `http://bob:${PASSWORD}@` }),
      configError({ ALL_PROXY: `socks5h://bob@proxy.example` }),
      configError({}, { proxy: ['http://proxy.example:3128', `http://bob:${PASSWORD}@proxy.example:99999`] }),
      configError({}, { proxy: ['direct', 'http://proxy.example:3128'] }),
      configError({}, { proxyOptions: { cooldownMs: 1000, caFile: '/nonexistent/proxy-ca.pem' } }),
    ];
    expect(messages).toEqual([
      'setting upstreams/0/proxy: unsupported proxy scheme "ftp://" (use http://, https://, socks5:// or socks5h://)',
      'setting proxyEnv/httpsProxy (HTTPS_PROXY): not a valid http:// proxy URL',
      'setting proxyEnv/allProxy (ALL_PROXY): socks5h://bob@proxy.example:1080: SOCKS5 needs a user name and a password of 1 to 255 bytes each',
      'setting proxy/1: not a valid http:// proxy URL',
      'setting proxy/0: "direct" cannot be listed with proxies',
      'setting proxyOptions/caFile: file not found: /nonexistent/proxy-ca.pem',
    ]);
  });

  it('reject a value that is neither a URL nor a list of URLs', () => {
    expect(configError({}, { proxy: 42 as unknown as string })).toMatch(/^setting proxy: /);
    expect(configError({}, { proxy: [] })).toMatch(/^setting proxy: /);
  });
});

describe('the most specific proxy setting', () => {
  it('wins: pool key, then upstream, then the top-level setting, then the environment', () => {
    const config = loadConfig(
      { KEYRELAY_CONFIG: undefined, HTTPS_PROXY: 'http://env-proxy:3128', NO_PROXY: 'internal.example' },
      {
        proxy: 'socks5h://top:1080',
        upstreams: [
          {
            id: 'openai',
            baseUrl: 'https://api.openai.com/v1',
            models: ['*'],
            strategy: 'round-robin',
            proxy: ['http://up-1:3128', 'http://up-2:3128'],
            keys: [
              { id: 'own', key: 'sk-own-0123456789abcdef', weight: 1, proxy: `socks5://k:${PASSWORD}@key-proxy:1080` },
              { id: 'shared', key: 'sk-shared-0123456789abcd', weight: 1 },
              { id: 'bare', key: 'sk-bare-0123456789abcdef', weight: 1, proxy: 'direct' },
            ],
          },
          { id: 'top', baseUrl: 'https://other.example/v1', models: ['x-*'], strategy: 'round-robin', keys: [] },
        ],
      },
    );
    const plan = proxyPlan(config).map((l) => `${l.upstream}${l.poolKeyId ? `/${l.poolKeyId}` : ''}: ${l.route.describe} (${l.route.source})`);
    expect(plan).toEqual([
      'openai: http://up-1:3128, http://up-2:3128 (upstream)',
      'openai/own: socks5://k:***@key-proxy:1080 (key)',
      'openai/bare: direct (key)',
      'top: socks5h://top:1080 (settings)',
    ]);

    const envOnly = loadConfig({ KEYRELAY_CONFIG: undefined, HTTPS_PROXY: 'http://env-proxy:3128', NO_PROXY: 'internal.example' }, {
      upstreams: [
        { id: 'public', baseUrl: 'https://api.openai.com/v1', models: ['*'], strategy: 'round-robin', keys: [] },
        { id: 'internal', baseUrl: 'https://llm.internal.example/v1', models: ['x-*'], strategy: 'round-robin', keys: [] },
      ],
    });
    expect(proxyPlan(envOnly).map((l) => `${l.upstream}: ${l.route.describe} (${l.route.source})`)).toEqual([
      'public: http://env-proxy:3128 (environment)',
      'internal: direct (none)',
    ]);
  });
});

describe('keyrelay serve', () => {
  it('logs at start which egress each upstream and pool key uses, passwords masked', async () => {
    const lines: Array<Record<string, unknown>> = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const line of chunk.toString('utf8').split('\n').filter(Boolean)) {
          captureLogLine(line);
          lines.push(JSON.parse(line) as Record<string, unknown>);
        }
        done();
      },
    });
    const config = loadConfig(
      { KEYRELAY_CONFIG: undefined, OPENAI_API_KEYS: 'sk-start-key-0123456789abcd', KEYRELAY_PROXY: `http://ops:${PASSWORD}@egress.example:3128` },
      { host: '127.0.0.1', port: 0 },
    );
    registerSecret('sk-start-key-0123456789abcd');
    const server = await startServer(config, createLogger('info', sink));
    await server.close();
    const egress = lines.filter((l) => l.msg === 'upstream egress' || l.msg === 'pool key egress');
    expect(egress.map(({ upstream, poolKeyId, proxy, source, msg }) => ({ msg, upstream, poolKeyId, proxy, source }))).toEqual([
      { msg: 'upstream egress', upstream: 'default', poolKeyId: undefined, proxy: 'http://ops:***@egress.example:3128', source: 'upstream' },
    ]);
    expect(lines.map((l) => JSON.stringify(l)).join('\n')).not.toContain(PASSWORD);
  });
});
