// Gateway key authentication. Every failure gives the same answer, so a caller cannot tell an
// unknown key from a revoked or expired one (RELIABILITY.md case 2).
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

function rejected(): GatewayError {
  return new GatewayError('invalid_api_key');
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
  if (token === undefined || !isGatewayKeyShape(token)) throw rejected();
  const found = await store.findCaller(digestKey(token));
  const key = found?.key;
  if (!key || key.revokedAt !== undefined || isPast(key.expiresAt, now)) throw rejected();
  const user = found.user;
  if (!user || isPast(user.expiresAt, now)) throw rejected();
  return { user, key };
}
