// cors.origins and KEYRELAY_CORS_ORIGINS (README, "Settings"; docs/browsers.md): origins or `*`,
// written as browsers send them; a bad one stops the start with a message naming the setting.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config.js';
import { createCors } from '../src/inbound/cors.js';
import { startChildGateway } from './helpers/child-gateway.js';

const file = (text: string): string => {
  const path = join(mkdtempSync(join(tmpdir(), 'keyrelay-cors-')), 'keyrelay.yaml');
  writeFileSync(path, text);
  return path;
};

describe('cors.origins', () => {
  it('is empty by default: no CORS at all', () => {
    const config = loadConfig({});
    expect(config.cors.origins).toEqual([]);
    expect(createCors(config.cors).active).toBe(false);
  });

  it('comes from KEYRELAY_CORS_ORIGINS, comma-separated, over the file', () => {
    const path = file('cors:\n  origins: ["https://file.example"]\n');
    const config = loadConfig({ KEYRELAY_CONFIG: path, KEYRELAY_CORS_ORIGINS: ' https://a.example , http://localhost:3000,, ' });
    expect(config.cors.origins).toEqual(['https://a.example', 'http://localhost:3000']);
    expect(loadConfig({ KEYRELAY_CONFIG: path }).cors.origins).toEqual(['https://file.example']);
  });

  it('matches origins as browsers send them, and * matches any', () => {
    const cors = createCors(loadConfig({ KEYRELAY_CORS_ORIGINS: 'HTTPS://App.Example:443,http://localhost:3000' }).cors);
    expect(cors.allows('https://app.example')).toBe(true);
    expect(cors.allows('http://localhost:3000')).toBe(true);
    expect(cors.allows('http://127.0.0.1:3000')).toBe(false);
    expect(cors.allows('https://app.example:8443')).toBe(false);
    expect(cors.allows(undefined)).toBe(false);
    const any = createCors(loadConfig({ KEYRELAY_CORS_ORIGINS: '*' }).cors);
    expect(any.allows('https://whatever.example')).toBe(true);
  });

  it.each([
    ['a path', 'https://a.example,https://b.example/app', /^setting cors\/origins\/1: "https:\/\/b.example\/app" is not an origin: an origin has no path/],
    ['no scheme', 'a.example', /^setting cors\/origins\/0: "a.example" is not an origin: expected scheme:\/\/host\[:port\] or \*/],
    ['a wildcard host', 'https://*.example', /^setting cors\/origins\/0: "https:\/\/\*.example" is not an origin: a host cannot be a pattern/],
  ])('refuses %s from the environment, naming the setting and the variable', (_what, value, message) => {
    expect(() => loadConfig({ KEYRELAY_CORS_ORIGINS: value })).toThrow(ConfigError);
    expect(() => loadConfig({ KEYRELAY_CORS_ORIGINS: value })).toThrow(message);
    expect(() => loadConfig({ KEYRELAY_CORS_ORIGINS: value })).toThrow(/\(from KEYRELAY_CORS_ORIGINS\)$/);
  });

  it('refuses a bad origin in the file, naming the setting', () => {
    expect(() => loadConfig({ KEYRELAY_CONFIG: file('cors:\n  origins: ["https://ok.example", "https://x.example?a=1"]\n') })).toThrow(
      /^setting cors\/origins\/1: "https:\/\/x.example\?a=1" is not an origin: an origin has no path, query or fragment$/,
    );
    expect(() => loadConfig({ KEYRELAY_CONFIG: file('cors:\n  origins: "https://ok.example"\n') })).toThrow(/^setting cors\/origins: /);
    expect(() => loadConfig({ KEYRELAY_CONFIG: file('cors:\n  allowed: []\n') })).toThrow(/cors/);
  });

  it('stops `keyrelay serve` before it listens, with the setting named', async () => {
    const started = startChildGateway({ KEYRELAY_CORS_ORIGINS: 'https://a.example/path' }, { entry: 'serve' });
    await expect(started).rejects.toThrow(/exited \(2\) before listening:\nkeyrelay: invalid settings: setting cors\/origins\/0: "https:\/\/a.example\/path" is not an origin/);
  }, 120_000);
});
