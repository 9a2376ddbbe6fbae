// The session cookie: `keyrelay_session`, 32 random bytes in base64url, HttpOnly and
// SameSite=Strict so that page scripts cannot read it and other sites' pages never send it;
// Secure when the request came over TLS.
import { createHash, createHmac, randomBytes } from 'node:crypto';
import type { FastifyRequest } from 'fastify';

export const COOKIE_NAME = 'keyrelay_session';
const VALUE = /^[A-Za-z0-9_-]{43}$/;

export function newCookieValue(): string {
  return randomBytes(32).toString('base64url');
}

/** What the store keeps the session under: the cookie's value itself is never stored. */
export function cookieDigest(value: string): string {
  return createHash('sha256').update(value).digest('hex');
}

/** The session cookie's value, when the request carries exactly one of the shape we give out. */
export function sessionCookie(request: FastifyRequest): string | undefined {
  const header = request.headers.cookie;
  if (header === undefined || header.length > 8192) return undefined;
  let found: string | undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq === -1 || part.slice(0, eq).trim() !== COOKIE_NAME) continue;
    // Two cookies of the name (one planted for a sub-path, say): trust neither.
    if (found !== undefined) return undefined;
    found = part.slice(eq + 1).trim();
  }
  return found !== undefined && VALUE.test(found) ? found : undefined;
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
  return `${COOKIE_NAME}=${value}; HttpOnly; SameSite=Strict; Path=/; Max-Age=${maxAgeSeconds}${secure ? '; Secure' : ''}`;
}

export function clearCookie(secure: boolean): string {
  return setCookie('', 0, secure);
}
