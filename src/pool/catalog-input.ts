// What the admin API's bodies become in the catalog (catalog.ts): base URLs and proxy URLs checked
// beyond their JSON shape, secrets sealed (src/secrets/box.ts). Every check throws a 400 naming the
// field before anything is written; a secret without KEYRELAY_SECRET is a 409 secret_not_configured.
import { GatewayError } from '../errors.js';
import { proxyList } from '../proxy/plan.js';
import { DIRECT, ProxyUrlError, parseProxyUrl } from '../proxy/url.js';
import type { SecretBox } from '../secrets/box.js';
import { type AliasTable, aliasProblem } from './aliases.js';
import type { StoredProxy } from './catalog.js';
import { type KindSettings, kindFault } from './upstream-kind.js';

const invalid = (param: string, message: string) => new GatewayError('invalid_request', { message, param });

/** An http(s) URL with a host and no user, password, query or fragment: the pool key is the only credential sent. */
export function checkBaseUrl(value: string, param = 'baseUrl'): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw invalid(param, `\`${param}\` must be an absolute http:// or https:// URL, such as https://api.openai.com/v1.`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw invalid(param, `\`${param}\` must be an http:// or https:// URL.`);
  if (url.username || url.password) throw invalid(param, `\`${param}\` must not hold a user or password: the pool key is the credential.`);
  if (url.search || url.hash) throw invalid(param, `\`${param}\` must not have a query or a fragment.`);
  return value.replace(/\/+$/, '');
}

/** The URLs of a proxy setting, each checked; the message never quotes a URL (it may hold a password). */
export function checkProxy(value: string | string[], param = 'proxy'): string[] {
  const urls = proxyList(value) ?? [];
  if (urls.length === 0) throw invalid(param, `\`${param}\` must name a proxy URL, a list of them, or "${DIRECT}".`);
  urls.forEach((url, i) => {
    if (url === DIRECT) {
      if (urls.length > 1) throw invalid(param, `\`${param}\`: "${DIRECT}" cannot be listed with proxies.`);
      return;
    }
    try {
      parseProxyUrl(url);
    } catch (err) {
      if (err instanceof ProxyUrlError) throw invalid(param, `\`${param}\`${urls.length > 1 ? ` (entry ${i + 1})` : ''}: ${err.message}.`);
      throw err;
    }
  });
  return urls;
}

/** The masked forms of a proxy setting: what answers show. */
export function maskedProxies(urls: readonly string[]): string[] {
  return urls.map((url) => (url === DIRECT ? DIRECT : parseProxyUrl(url).masked));
}

/** A proxy setting as kept: sealed when any URL holds a password, in the clear otherwise. */
export function storedProxy(urls: string[], box: SecretBox, where: string, param = 'proxy'): StoredProxy {
  const secret = urls.some((url) => url !== DIRECT && parseProxyUrl(url).password !== undefined);
  if (!secret) return { urls };
  if (!box.configured) throw new GatewayError('secret_not_configured', { param });
  return { sealed: box.seal(JSON.stringify(urls), where), masked: maskedProxies(urls) };
}

export function sealKey(key: string, box: SecretBox, where: string): { sealed: string; last4: string } {
  if (!box.configured) throw new GatewayError('secret_not_configured', { param: 'key' });
  return { sealed: box.seal(key, where), last4: key.slice(-4) };
}

/** An upstream's aliases, checked over the settings' top-level ones: no empty name, none naming itself, no cycle. */
export function checkAliases(aliases: Record<string, string>, top: AliasTable): Record<string, string> {
  const problem = aliasProblem(aliases, top);
  if (problem) throw invalid('aliases', `\`aliases\`: ${problem}.`);
  return aliases;
}

/** An upstream's kind settings (upstream-kind.ts): a fault is a 400 naming its field. */
export function checkKind(upstream: KindSettings): void {
  const fault = kindFault(upstream);
  if (fault) throw invalid(fault.field, `\`${fault.field}\`: ${fault.message}.`);
}
