// The session cookie: 32 random bytes in base64url, HttpOnly and SameSite=Strict so that page
// scripts cannot read it and other sites' pages never send it. Over https (the gateway's own TLS,
// or a trusted proxy's X-Forwarded-Proto) it is `__Host-keyrelay_session`, Secure, Path=/ and
// without Domain: a browser then takes that name only from this very host, so a page on a sibling
// subdomain cannot set or shadow it (https://www.rfc-editor.org/rfc/rfc6265bis, "__Host-").
// Over plain http it is `keyrelay_session` (a browser refuses a __Host- cookie without Secure).
import { createHash, createHmac, randomBytes } from 'node:crypto';
import type { FastifyRequest } from 'fastify';

const PLAIN_NAME = 'keyrelay_session';
const HOST_NAME = '__Host-keyrelay_session';
const VALUE = /^[A-Za-z0-9_-]{43}$/;

/** Whether the browser reached the gateway over https: its own TLS, or what a trusted proxy says
 * (Fastify's `request.protocol` under `inbound.trustedProxies`). */
export const overHttps = (request: FastifyRequest): boolean => request.protocol === 'https';

/** The cookie's name for a request reached over https (`secure`) or not. */
export const cookieName = (secure: boolean): string => (secure ? HOST_NAME : PLAIN_NAME);

export function newCookieValue(): string {
  return randomBytes(32).toString('base64url');
}

/** What the store keeps the session under: the cookie's value itself is never stored. */
export function cookieDigest(value: string): string {
  return createHash('sha256').update(value).digest('hex');
}

/**
 * The value of the session cookie named `name`, when the request carries exactly one of the shape
 * we give out. Over https only the __Host- name is read (sessionCookie): a plain-named one there
 * may have been set by a sibling subdomain.
 */
export function namedCookie(request: FastifyRequest, name: string): string | undefined {
  const header = request.headers.cookie;
  if (header === undefined || header.length > 8192) return undefined;
  let found: string | undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq === -1 || part.slice(0, eq).trim() !== name) continue;
    // Two cookies of the name (one planted for a sub-path, say): trust neither.
    if (found !== undefined) return undefined;
    found = part.slice(eq + 1).trim();
  }
  return found !== undefined && VALUE.test(found) ? found : undefined;
}

/** The session cookie of a request reached over https (`secure`) or not. */
export function sessionCookie(request: FastifyRequest, secure: boolean): string | undefined {
  return namedCookie(request, cookieName(secure));
}

/** What a browser may still hold besides today's cookie, to be ended at sign-in and sign-out:
 * over https, a plain-named cookie given out before the __Host- name was. */
export function formerCookies(request: FastifyRequest, secure: boolean): string[] {
  if (!secure) return [];
  const plain = namedCookie(request, PLAIN_NAME);
  return plain === undefined ? [] : [plain];
}

/**
 * What an admin session keeps of the admin token it was signed in with: an HMAC of the token keyed
 * by the cookie's value. A session then ends when the admin token changes (a leaked token
 * replaced), and the store, which never sees the cookie, holds nothing to guess the token from.
 */
export function adminTag(cookie: string, adminToken: string): string {
  return createHmac('sha256', cookie).update(adminToken).digest('base64url');
}

export function setCookie(value: string, maxAgeSeconds: number, secure: boolean): string {
  return `${cookieName(secure)}=${value}; HttpOnly; SameSite=Strict; Path=/; Max-Age=${maxAgeSeconds}${secure ? '; Secure' : ''}`;
}

/** The Set-Cookie value that ends a cookie of the former, plain name over https. */
export const clearFormerCookie = (): string => `${PLAIN_NAME}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0; Secure`;

/** The Set-Cookie values that end the session cookie: over https the plain name as well, so a
 * browser signed in before the __Host- name keeps no stale cookie. */
export function clearCookies(secure: boolean): string[] {
  return secure ? [setCookie('', 0, true), clearFormerCookie()] : [setCookie('', 0, false)];
}
