// Which console session a request carries, read once per request in an onRequest hook at the
// root (before every /admin and /console/api route's own hooks), with the CSRF rule applied:
// a request the cookie authenticates that is not a GET or HEAD must send `x-csrf-token` equal to
// its session's token and, when it sends an Origin, come from the gateway's own origin.
// A request with an Authorization header is a bearer call: the cookie is not looked at.
// /v1 never reads the cookie: the hook leaves every other path alone.
import { timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { GatewayError } from '../errors.js';
import { isPast } from '../iso-time.js';
import { fromStore } from '../plugins/observability.js';
import type { Store, User } from '../store/types.js';
import { adminTag, cookieDigest, overHttps, sessionCookie } from './cookie.js';
import type { ConsoleSession } from './sessions.js';

export interface SignedIn {
  /** The digest the session is stored under. */
  digest: string;
  session: ConsoleSession;
  /** The user of a `user` session, as stored now. */
  user?: User;
  /** Whether the session still holds now, asked again by an answer that outlives its request
   * (the live tail): false once signed out, expired, or its key or user gone. */
  holds(): Promise<boolean>;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** The console session the request's cookie names, once it passed the CSRF rule. */
    consoleSession: SignedIn | null;
  }
}

const SAFE_METHODS = new Set(['GET', 'HEAD']);
export const SIGN_IN_PATH = '/console/api/session';

/**
 * The session the cookie names, when it still holds: an admin session only while the admin token
 * is the one it was signed in with; a user session ends as soon as its key is revoked or expired,
 * or its user deleted or expired (then it is deleted from the store too).
 */
export async function liveSession(store: Store, cookie: string, adminToken: string | undefined, now: number): Promise<SignedIn | undefined> {
  const digest = cookieDigest(cookie);
  const session = await store.consoleSessions.get(digest, now);
  if (!session) return undefined;
  const holds = async () => (await liveSession(store, cookie, adminToken, Date.now())) !== undefined;
  if (session.role === 'admin') {
    // Another admin token now (or none): the session is left to expire, since a gateway on the
    // same store may still have the old one (a rolling restart).
    const expected = adminToken === undefined ? undefined : adminTag(cookie, adminToken);
    return expected !== undefined && session.adminTag !== undefined && sameToken(session.adminTag, expected) ? { digest, session, holds } : undefined;
  }
  const key = await store.getKey(session.keyId ?? '');
  const user = key && key.userId === session.userId ? await store.getUser(key.userId) : undefined;
  if (!key || key.revokedAt !== undefined || isPast(key.expiresAt, now) || !user || isPast(user.expiresAt, now)) {
    await store.consoleSessions.delete(digest);
    return undefined;
  }
  return { digest, session, user, holds };
}

function sameToken(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** The gateway's own origin as the browser names it: the scheme it was reached by and its Host. */
function ownOrigin(request: FastifyRequest): string {
  return `${request.protocol}://${request.host}`;
}

/** The origin of a Referer, or `null` for one that is not an absolute http(s) URL. */
function refererOrigin(referer: string): string {
  try {
    const url = new URL(referer);
    return url.protocol === 'http:' || url.protocol === 'https:' ? url.origin : 'null';
  } catch {
    return 'null';
  }
}

/** True when the request names the gateway's own origin, or none: its Origin, or when it sends
 * no Origin (an older browser, a client that is not a browser), its Referer. The console's own
 * pages send no Referer (Referrer-Policy: no-referrer), so one naming another origin is a page
 * elsewhere. */
export function fromOwnOrigin(request: FastifyRequest): boolean {
  const { origin, referer } = request.headers;
  const named = origin ?? (referer === undefined ? undefined : refererOrigin(referer));
  return named === undefined || named.toLowerCase() === ownOrigin(request).toLowerCase();
}

export function checkCsrf(request: FastifyRequest, session: ConsoleSession): void {
  if (SAFE_METHODS.has(request.method)) return;
  const token = request.headers['x-csrf-token'];
  const tokenOk = typeof token === 'string' && sameToken(token, session.csrfToken);
  if (!tokenOk || !fromOwnOrigin(request)) {
    throw new GatewayError('csrf_failed', {
      message: tokenOk
        ? 'The request comes from another origin than this gateway.'
        : 'This request needs the x-csrf-token header of the console session (GET /console/api/session gives it).',
    });
  }
}

function readsCookie(path: string): 'admin' | 'console' | undefined {
  if (path.startsWith('/admin/')) return 'admin';
  if (path.startsWith('/console/api/')) return 'console';
  return undefined;
}

/** Installs the hook on the root app; call before the admin and console routes are registered. */
export function installSessionHook(app: FastifyInstance, store: Store, adminToken: string | undefined): void {
  app.decorateRequest('consoleSession', null);
  app.addHook('onRequest', async (request) => {
    const where = readsCookie(request.target.path);
    if (where === undefined || request.headers.authorization !== undefined) return;
    // Signing in is not authenticated by the cookie: it replaces whatever session was there.
    if (request.method === 'POST' && request.target.path === SIGN_IN_PATH) return;
    const cookie = sessionCookie(request, overHttps(request));
    if (cookie === undefined) return;
    const signedIn = await fromStore(() => liveSession(store, cookie, adminToken, Date.now()));
    // On /admin a user session is no session at all: the admin API answers it as a missing token.
    if (!signedIn || (where === 'admin' && signedIn.session.role !== 'admin')) return;
    checkCsrf(request, signedIn.session);
    request.consoleSession = signedIn;
  });
}
