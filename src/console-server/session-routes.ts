// POST, GET and DELETE /console/api/session: signing in with the admin token or one's own
// `sk-kr-` key, reading the session back, signing out (docs/console.md).
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { type Static, Type } from '@sinclair/typebox';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { KeyRejected, authenticate } from '../auth.js';
import { GatewayError } from '../errors.js';
import { fromStore } from '../plugins/observability.js';
import type { Store, User } from '../store/types.js';
import { adminTag, clearCookies, clearFormerCookie, cookieDigest, formerCookies, newCookieValue, overHttps, sessionCookie, setCookie } from './cookie.js';
import { type SignedIn, fromOwnOrigin } from './session-auth.js';
import type { ConsoleSession } from './sessions.js';
import { beginSignIn, forgiveSignIn, signInBuckets } from './throttle.js';

const SignIn = Type.Object({ token: Type.String({ minLength: 1, maxLength: 512 }) }, { additionalProperties: false });

// Every wrong token gets these same words, whatever was wrong with it.
const REFUSED = 'That is neither the admin token nor a valid key of this gateway.';

export interface SessionRoutesOptions {
  store: Store;
  adminToken?: string;
  sessionHours: number;
}

const digestOf = (value: string): Buffer => createHash('sha256').update(value).digest();

/** The session as the console reads it. */
export function sessionView(session: ConsoleSession, user: User | undefined) {
  return {
    role: session.role,
    user: user ? { id: user.id, name: user.name ?? null } : null,
    csrfToken: session.csrfToken,
    expiresAt: new Date(session.expiresAt).toISOString(),
  };
}

/** The signed-in session, or 401 no_session. */
export function signedIn(request: FastifyRequest): SignedIn {
  if (!request.consoleSession) throw new GatewayError('no_session', { message: 'Not signed in: POST /console/api/session with the admin token or your key.' });
  return request.consoleSession;
}

function noStore(reply: FastifyReply): FastifyReply {
  return reply.header('cache-control', 'no-store');
}

export async function sessionRoutes(app: FastifyInstance, options: SessionRoutesOptions): Promise<void> {
  const { store } = options;
  const adminDigest = options.adminToken === undefined ? undefined : digestOf(options.adminToken);
  const ttlMs = Math.round(options.sessionHours * 3_600_000);

  /** Who the token is, or throws the one 401 every wrong token gets. */
  async function whoIs(token: string): Promise<Pick<ConsoleSession, 'role' | 'userId' | 'keyId'> & { user?: User }> {
    // Compare digests so the comparison takes the same time whatever the token's length.
    if (adminDigest !== undefined && timingSafeEqual(digestOf(token), adminDigest)) return { role: 'admin' };
    try {
      const caller = await authenticate(store, token);
      return { role: 'user', userId: caller.user.id, keyId: caller.key.id, user: caller.user };
    } catch (err) {
      const cause = err instanceof GatewayError ? err.cause : undefined;
      if (!(cause instanceof KeyRejected)) throw err;
      throw new GatewayError('invalid_api_key', { message: REFUSED, cause });
    }
  }

  app.post<{ Body: Static<typeof SignIn> }>('/session', { schema: { body: SignIn } }, async (request, reply) => {
    // Another site's page must not sign a browser in (to an account of the attacker's choosing).
    if (!fromOwnOrigin(request)) throw new GatewayError('csrf_failed', { message: 'The request comes from another origin than this gateway.' });
    const now = Date.now();
    const buckets = signInBuckets(request.ip, request.body.token);
    // Counted as a failure until the token proves right: see beginSignIn.
    const wait = await fromStore(() => beginSignIn(store.signInFailures, buckets, now));
    if (wait > 0) {
      throw new GatewayError('rate_limit_exceeded', {
        message: `Too many failed sign-ins from this address or with this key. Try again in ${wait} s.`,
        headers: { 'retry-after': String(wait) },
      });
    }
    let who: Awaited<ReturnType<typeof whoIs>>;
    try {
      who = await fromStore(() => whoIs(request.body.token));
    } catch (err) {
      if (!(err instanceof GatewayError && err.code === 'invalid_api_key')) await fromStore(() => forgiveSignIn(store.signInFailures, buckets));
      throw err;
    }
    await fromStore(() => forgiveSignIn(store.signInFailures, buckets));
    // A new session replaces the one this browser had (a user signing in as the admin, say).
    const secure = overHttps(request);
    const previous = sessionCookie(request, secure);
    const former = formerCookies(request, secure);
    for (const value of previous === undefined ? former : [previous, ...former]) await fromStore(() => store.consoleSessions.delete(cookieDigest(value)));
    const cookie = newCookieValue();
    const session: ConsoleSession = {
      role: who.role,
      userId: who.userId,
      keyId: who.keyId,
      adminTag: who.role === 'admin' && options.adminToken !== undefined ? adminTag(cookie, options.adminToken) : undefined,
      csrfToken: randomBytes(32).toString('base64url'),
      expiresAt: now + ttlMs,
    };
    await fromStore(() => store.consoleSessions.put(cookieDigest(cookie), session));
    const issued = setCookie(cookie, Math.max(1, Math.floor(ttlMs / 1000)), secure);
    // A cookie of the former name goes with its session, or the browser would send both.
    noStore(reply).header('set-cookie', former.length > 0 ? [issued, clearFormerCookie()] : issued);
    return sessionView(session, who.user);
  });

  app.get('/session', async (request, reply) => {
    const { session, user } = signedIn(request);
    noStore(reply);
    return sessionView(session, user);
  });

  // The CSRF rule was applied before (session-auth.ts); without a session there is nothing to
  // end, and the cookie is cleared all the same. A session of a cookie of the former name ends
  // too: only the browser that holds that cookie can name it, and SameSite=Strict kept it from
  // other sites' pages.
  app.delete('/session', async (request, reply) => {
    const secure = overHttps(request);
    const digests = formerCookies(request, secure).map(cookieDigest);
    if (request.consoleSession) digests.push(request.consoleSession.digest);
    for (const digest of digests) await fromStore(() => store.consoleSessions.delete(digest));
    noStore(reply).header('set-cookie', clearCookies(secure)).code(204);
    return reply.send();
  });
}
