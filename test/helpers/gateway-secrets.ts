// The secrets a gateway is started with, registered for the secret scan by the helpers that start
// one (gateway.ts in this process, child-gateway.ts in another): the admin token, KEYRELAY_SECRET,
// the metrics token, every pool key, every password in a proxy or Redis URL.
import type { Config } from '../../src/config.js';
import { registerPoolKey, registerSecret, urlPassword } from './log-capture.js';
import { registerSecret as register } from './secret-scan.js';

function registerProxies(setting: unknown, where: string): void {
  for (const url of Array.isArray(setting) ? setting : [setting]) {
    const password = urlPassword(url);
    if (password) registerSecret(password, `proxy password of ${where}`);
  }
}

export function registerConfigSecrets(config: Config): void {
  if (config.adminToken) register(config.adminToken, 'admin token', 'admin token');
  if (config.secret) registerSecret(config.secret, 'KEYRELAY_SECRET');
  if (config.secretPrevious) registerSecret(config.secretPrevious, 'KEYRELAY_SECRET_PREVIOUS');
  if (config.metrics?.token) registerSecret(config.metrics.token, 'metrics token');
  const redisPassword = urlPassword(config.redis?.url);
  if (redisPassword) registerSecret(redisPassword, 'Redis password');
  registerProxies(config.proxy, 'proxy');
  for (const [field, url] of Object.entries(config.proxyEnv ?? {})) registerProxies(url, `proxyEnv/${field}`);
  for (const upstream of config.upstreams ?? []) {
    registerProxies(upstream.proxy, `upstream ${upstream.id}`);
    for (const key of upstream.keys) {
      registerPoolKey(key.key, `pool key ${key.id} of upstream ${upstream.id}`);
      registerProxies(key.proxy, `pool key ${key.id} of upstream ${upstream.id}`);
    }
  }
}

/** The same, from the environment a child gateway is given (`keyrelay serve` reads it so). */
export function registerEnvSecrets(env: Record<string, string | undefined>): void {
  if (env.KEYRELAY_ADMIN_TOKEN) register(env.KEYRELAY_ADMIN_TOKEN, 'admin token', 'admin token');
  if (env.KEYRELAY_SECRET) registerSecret(env.KEYRELAY_SECRET, 'KEYRELAY_SECRET');
  if (env.KEYRELAY_SECRET_PREVIOUS) registerSecret(env.KEYRELAY_SECRET_PREVIOUS, 'KEYRELAY_SECRET_PREVIOUS');
  if (env.KEYRELAY_METRICS_TOKEN) registerSecret(env.KEYRELAY_METRICS_TOKEN, 'metrics token');
  (env.OPENAI_API_KEYS ?? '')
    .split(',')
    .map((k) => k.trim())
    .forEach((key, i) => registerPoolKey(key, `pool key ${i + 1} of OPENAI_API_KEYS`));
  for (const [name, value] of Object.entries(env)) {
    const password = urlPassword(value);
    if (password) registerSecret(password, `password in ${name}`);
  }
}
