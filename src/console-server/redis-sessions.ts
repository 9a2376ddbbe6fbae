// Console sessions on Redis and Redis Cluster: one string key per session,
// `kr:console:session:<digest>`, holding its JSON, with a TTL to its expiry set by the same SET.
// Every call touches that one key, so a cluster spreads sessions over its slots freely.
import type { RedisClient } from '../store/redis-client.js';
import { type ConsoleSession, MAX_USER_SESSIONS, type SessionStore, parseSession } from './sessions.js';

export const sessionKey = (digest: string): string => `kr:console:session:${digest}`;
// A user's sessions, scored by expiry (so oldest first), for the cap of MAX_USER_SESSIONS. A
// separate key from the sessions' (another slot on a cluster): each call below touches one key.
export const userSessionsKey = (userId: string): string => `kr:console:user-sessions:${userId}`;

export function redisSessionStore(client: RedisClient): SessionStore {
  return {
    async put(digest, session) {
      const ttlMs = Math.max(1, Math.ceil(session.expiresAt - Date.now()));
      await client.set(sessionKey(digest), JSON.stringify(session), 'PX', ttlMs);
      if (session.role !== 'user' || session.userId === undefined) return;
      const list = userSessionsKey(session.userId);
      await client.zadd(list, session.expiresAt, digest);
      await client.pexpireat(list, session.expiresAt);
      await client.zremrangebyscore(list, '-inf', Date.now());
      const over = (await client.zcard(list)) - MAX_USER_SESSIONS;
      if (over <= 0) return;
      const popped = await client.zpopmin(list, over);
      // zpopmin answers member, score, member, score …
      for (let i = 0; i < popped.length; i += 2) await client.del(sessionKey(popped[i] as string));
    },
    async get(digest, now): Promise<ConsoleSession | undefined> {
      const json = await client.get(sessionKey(digest));
      const session = json === null ? undefined : parseSession(json);
      // Redis drops it at its TTL; a process whose clock runs ahead stops honouring it sooner.
      return session && session.expiresAt > now ? session : undefined;
    },
    async delete(digest) {
      await client.del(sessionKey(digest));
    },
  };
}
