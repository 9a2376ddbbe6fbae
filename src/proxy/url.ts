// Proxy URLs, read the way curl reads them (https://curl.se/docs/manpage.html#-x): a missing
// scheme means http://, a missing port means 1080 (443 for an https:// proxy). Credentials live
// only inside the endpoint; everything that can reach a log or a message uses `masked`.

export type ProxyKind = 'http' | 'https' | 'socks5' | 'socks5h';

const DEFAULT_PORTS: Record<ProxyKind, number> = { http: 1080, https: 443, socks5: 1080, socks5h: 1080 };

/** A setting's value that names no proxy: the upstream is reached directly. */
export const DIRECT = 'direct';

/** Thrown for a proxy URL that cannot be used. The message never quotes the URL. */
export class ProxyUrlError extends Error {
  override name = 'ProxyUrlError';
}

export class ProxyEndpoint {
  constructor(
    readonly kind: ProxyKind,
    /** Without IPv6 brackets. */
    readonly hostname: string,
    readonly port: number,
    readonly username: string | undefined,
    readonly password: string | undefined,
  ) {}

  /** `socks5h://user:***@proxy.example:1080`: safe for logs, start-up lines and error causes. */
  get masked(): string {
    const user = this.username === undefined ? '' : `${encodeURIComponent(this.username)}${this.password ? ':***' : ''}@`;
    return `${this.kind}://${user}${hostForUrl(this.hostname)}:${this.port}`;
  }

  /** Identity for sharing dispatchers and health state; holds the password, so it is never logged. */
  get id(): string {
    return JSON.stringify([this.kind, this.hostname, this.port, this.username ?? null, this.password ?? null]);
  }

  /** Serialisers (pino included) see the masked form only. */
  toJSON(): string {
    return this.masked;
  }

  toString(): string {
    return this.masked;
  }
}

export function hostForUrl(hostname: string): string {
  return hostname.includes(':') ? `[${hostname}]` : hostname;
}

/** The port written in the URL, if any: WHATWG URL drops a port equal to the scheme's default. */
function writtenPort(raw: string): number | undefined {
  const afterScheme = raw.slice(raw.indexOf('//') + 2);
  const authority = afterScheme.split(/[/?#]/, 1)[0] ?? '';
  const hostPort = authority.slice(authority.lastIndexOf('@') + 1);
  const match = /:(\d+)$/.exec(hostPort);
  return match?.[1] === undefined ? undefined : Number(match[1]);
}

export function parseProxyUrl(value: string): ProxyEndpoint {
  const raw = value.trim();
  if (raw === '') throw new ProxyUrlError('empty proxy URL');
  const withScheme = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(raw) ? raw : `http://${raw}`;
  const scheme = withScheme.slice(0, withScheme.indexOf(':')).toLowerCase();
  if (scheme !== 'http' && scheme !== 'https' && scheme !== 'socks5' && scheme !== 'socks5h') {
    throw new ProxyUrlError(`unsupported proxy scheme "${scheme}://" (use http://, https://, socks5:// or socks5h://)`);
  }
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new ProxyUrlError(`not a valid ${scheme}:// proxy URL`);
  }
  const hostname = url.hostname.replace(/^\[|\]$/g, '');
  if (hostname === '') throw new ProxyUrlError(`${scheme}:// proxy URL without a host`);
  const port = writtenPort(withScheme) ?? DEFAULT_PORTS[scheme];
  if (port < 1 || port > 65535) throw new ProxyUrlError(`${scheme}:// proxy URL with port out of range`);

  let username: string | undefined;
  let password: string | undefined;
  try {
    username = url.username === '' ? undefined : decodeURIComponent(url.username);
    password = url.password === '' ? undefined : decodeURIComponent(url.password);
  } catch {
    throw new ProxyUrlError(`${scheme}:// proxy URL with badly encoded credentials`);
  }
  if (password !== undefined && username === undefined) username = '';
  const endpoint = new ProxyEndpoint(scheme, hostname, port, username, password);
  if (scheme.startsWith('socks') && username !== undefined) {
    // RFC 1929: both fields are 1 to 255 bytes.
    const ulen = Buffer.byteLength(username);
    const plen = Buffer.byteLength(password ?? '');
    if (ulen < 1 || ulen > 255 || plen < 1 || plen > 255) {
      throw new ProxyUrlError(`${endpoint.masked}: SOCKS5 needs a user name and a password of 1 to 255 bytes each`);
    }
  }
  return endpoint;
}
