// Gateway key authentication. Every failure gives the same answer, so a caller cannot tell an
// unknown key from a revoked or expired one (docs/reliability.md, case 2).
import type { IncomingMessage } from 'node:http';
import { GatewayError } from './errors.js';
import { isPast } from './iso-time.js';
import { digestKey, isGatewayKeyShape } from './keys.js';
import type { KeyRecord, Store, User } from './store/types.js';

export interface Caller {
  user: User;
  key: KeyRecord;
}

const BEARER = /^Bearer ([^\s]+)$/;
const MAX_HEADER = 512;

/** Why a key was refused: never told to the client (every refusal is the same 401), written in the
 * request's log line for the admin, with the user and key ids when they are known. */
export type KeyRejection =
  | 'no Authorization header'
  | 'Authorization is not one Bearer token'
  | 'not a key of this gateway'
  | 'unknown key'
  | 'revoked key'
  | 'expired key'
  | 'deleted user'
  | 'expired user';

export class KeyRejected extends Error {
  override name = 'KeyRejected';
  constructor(
    readonly reason: KeyRejection,
    readonly userId?: string,
    readonly keyId?: string,
  ) {
    super(reason);
  }
}

// OpenAI's own words for a request without a key, so that a client's logs read the same.
const NO_KEY =
  "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY). Keys of this gateway start with sk-kr- and are issued by its administrator.";

function rejected(reason: KeyRejection, ids: { userId?: string; keyId?: string } = {}): GatewayError {
  return new GatewayError('invalid_api_key', {
    message: reason === 'no Authorization header' ? NO_KEY : undefined,
    cause: new KeyRejected(reason, ids.userId, ids.keyId),
  });
}

/** The bearer token of the request's single Authorization header, if it has exactly one. */
export function bearerToken(req: IncomingMessage): string | undefined {
  const raw = req.rawHeaders;
  let value: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    if ((raw[i] as string).length === 13 && (raw[i] as string).toLowerCase() === 'authorization') {
      if (value !== undefined) return undefined;
      value = raw[i + 1];
    }
  }
  if (value === undefined || value.length > MAX_HEADER) return undefined;
  return BEARER.exec(value)?.[1];
}

/** Resolves the caller of a gateway key or throws the one 401 every failure shares. */
export async function authenticate(store: Store, token: string | undefined, now = Date.now()): Promise<Caller> {
  if (token === undefined) throw rejected('Authorization is not one Bearer token');
  if (!isGatewayKeyShape(token)) throw rejected('not a key of this gateway');
  const found = await store.findCaller(digestKey(token));
  const key = found?.key;
  if (!key) throw rejected('unknown key');
  const ids = { userId: key.userId, keyId: key.id };
  if (key.revokedAt !== undefined) throw rejected('revoked key', ids);
  if (isPast(key.expiresAt, now)) throw rejected('expired key', ids);
  const user = found.user;
  if (!user) throw rejected('deleted user', ids);
  if (isPast(user.expiresAt, now)) throw rejected('expired user', ids);
  return { user, key };
}

/** The caller of a request: a request with no Authorization header at all gets OpenAI's wording. */
export function authenticateRequest(store: Store, req: IncomingMessage, now = Date.now()): Promise<Caller> {
  if (req.headers.authorization === undefined) return Promise.reject(rejected('no Authorization header'));
  return authenticate(store, bearerToken(req), now);
}
