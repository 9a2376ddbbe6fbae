// Every secret the settings hold, for masking whatever the gateway logs or keeps: the admin token,
// pool keys, proxy passwords (and their percent-encoded form, as they appear inside URLs) and the
// Redis password.
import type { Config } from '../config.js';
import { DIRECT, parseProxyUrl } from '../proxy/url.js';

function proxyPasswords(setting: string | readonly string[] | undefined): string[] {
  if (setting === undefined) return [];
  const out: string[] = [];
  for (const url of typeof setting === 'string' ? [setting] : setting) {
    if (url.trim() === DIRECT) continue;
    try {
      const password = parseProxyUrl(url).password;
      if (password) out.push(password, encodeURIComponent(password));
    } catch {
      // Settings were checked at start; an unparsable value holds no password to mask here.
    }
  }
  return out;
}

function urlPassword(url: string | undefined): string[] {
  if (!url) return [];
  try {
    const password = new URL(url).password;
    return password ? [password, decodeURIComponent(password)] : [];
  } catch {
    return [];
  }
}

export function configSecrets(config: Config): string[] {
  const secrets: string[] = [];
  if (config.adminToken) secrets.push(config.adminToken);
  if (config.metrics.token) secrets.push(config.metrics.token);
  if (config.secret) secrets.push(config.secret);
  if (config.secretPrevious) secrets.push(config.secretPrevious);
  secrets.push(...proxyPasswords(config.proxy));
  for (const value of Object.values(config.proxyEnv)) secrets.push(...proxyPasswords(value));
  for (const upstream of config.upstreams) {
    secrets.push(...proxyPasswords(upstream.proxy));
    for (const key of upstream.keys) secrets.push(key.key, ...proxyPasswords(key.proxy));
  }
  secrets.push(...urlPassword(config.redis.url));
  return [...new Set(secrets)];
}
