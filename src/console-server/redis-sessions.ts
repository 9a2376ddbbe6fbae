// Console sessions on Redis and Redis Cluster: one string key per session,
// `kr:console:session:<digest>`, holding its JSON, with a TTL to its expiry set by the same SET.
// Every call touches that one key, so a cluster spreads sessions over its slots freely.
import type { RedisClient } from '../store/redis-client.js';
import { type ConsoleSession, type SessionStore, parseSession } from './sessions.js';

export const sessionKey = (digest: string): string => `kr:console:session:${digest}`;

export function redisSessionStore(client: RedisClient): SessionStore {
  return {
    async put(digest, session) {
      const ttlMs = Math.max(1, Math.ceil(session.expiresAt - Date.now()));
      await client.set(sessionKey(digest), JSON.stringify(session), 'PX', ttlMs);
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
