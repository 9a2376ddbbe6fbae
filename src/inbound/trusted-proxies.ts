// inbound.trustedProxies (KEYRELAY_TRUSTED_PROXIES): the reverse proxies in front of the gateway
// whose X-Forwarded-For, X-Forwarded-Proto and X-Forwarded-Host it believes. Fastify's
// `trustProxy` (proxy-addr) does the reading: a request that came from one of them has as its
// client address the nearest X-Forwarded-For entry that is not itself a trusted proxy, and its
// scheme and host as the proxy says. From any other address those headers are ignored, so a
// client cannot name another address to get past the sign-in throttle. Empty (the default):
// nothing is believed, and the client is the connection's own address.
import { isIP } from 'node:net';

// proxy-addr's names for whole ranges.
const RANGES = new Set(['loopback', 'linklocal', 'uniquelocal']);

/** Why an entry is not an address, a CIDR block or one of RANGES; undefined when it is. */
export function trustedProxyProblem(entry: string): string | undefined {
  if (RANGES.has(entry)) return undefined;
  const [address = '', bits, ...rest] = entry.split('/');
  const family = isIP(address);
  if (family === 0 || rest.length > 0) return `"${entry}" is not an IP address, a CIDR block (10.0.0.0/8) nor loopback, linklocal or uniquelocal`;
  if (bits !== undefined && !(/^[0-9]{1,3}$/.test(bits) && Number(bits) <= (family === 4 ? 32 : 128))) return `"${entry}": the prefix length must be 0 to ${family === 4 ? 32 : 128}`;
  return undefined;
}

/** Fastify's `trustProxy` for the setting: false when it lists none. */
export function trustProxyOption(trusted: string[] | undefined): string[] | false {
  return trusted !== undefined && trusted.length > 0 ? trusted : false;
}
