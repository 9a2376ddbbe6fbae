// Object owners in Redis (src/pool/object-owners.ts), for every gateway process to share.
//
// `kr:obj:<id>` = {userId, upstreamId, keyId}: found by the object's id alone, as requests name
// objects. It lives as long as the upstream may keep the object: 30 days for a response, until a
// deletion answer for the rest (files, vector stores, assistants, fine-tuned models, ChatKit
// claims …), which outlive any time to live one could pick. No use extends it.
//
// `kr:{u:<user>}:objects`, a sorted set in the user's slot: each object the user owns and each
// slot a request of theirs holds, scored by when it lapses (+inf: never). What counts for the user
// is its size once the lapsed are dropped; the scripts below drop them, count and add in one step,
// so requests at once, from any process, see an exact count. Its own time to live follows its
// last member's, so a user whose objects all lapse leaves nothing behind.
//
// The two keys lie in different slots of a cluster, so a record writes them as two commands: the
// object's first, then the user's count. Cut off between the two, an object is kept but not
// counted (its owner is never lost); the other order could leave a user short of a slot for good.
import type { Result } from 'ioredis';
import {
  type ObjectOwner,
  type ObjectOwners,
  SLOT_PREFIX,
  recordLifetimeMs,
} from '../pool/object-owners.js';
import { type RedisClient, userTag } from './redis-client.js';

declare module 'ioredis' {
  interface RedisCommander<Context> {
    krOwnerPut(key: string, json: string, ttlMs: string): Result<string | null, Context>;
    krOwnerTake(key: string): Result<string | null, Context>;
    krHoldingsAdd(key: string, now: number, member: string, until: string): Result<number, Context>;
    krHoldingsHold(key: string, now: number, member: string, until: string, max: number): Result<number, Context>;
    krHoldingsDrop(key: string, now: number, member: string): Result<number, Context>;
    krHoldingsCount(key: string, now: number): Result<number, Context>;
  }
}

export const objectKey = (id: string): string => `kr:obj:${id}`;
export const holdingsKey = (userId: string): string => `kr:${userTag(userId)}:objects`;

// Writes the owner and answers the one it replaces (SET … GET wants Redis 6.2).
const OWNER_PUT_LUA = `
local old = redis.call('GET', KEYS[1])
if ARGV[2] == '' then redis.call('SET', KEYS[1], ARGV[1]) else redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) end
return old
`;
const OWNER_TAKE_LUA = `
local old = redis.call('GET', KEYS[1])
redis.call('DEL', KEYS[1])
return old
`;

// Every holdings script first drops what lapsed by ARGV[1] (now, ms), and after a change sets the
// key's own expiry to its last member's.
const HOLDINGS_PRELUDE = `
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local function expire()
  local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
  if #last == 0 then return end
  if last[2] == 'inf' then redis.call('PERSIST', KEYS[1]) else redis.call('PEXPIREAT', KEYS[1], math.ceil(tonumber(last[2]))) end
end
`;
const HOLDINGS_ADD_LUA = `${HOLDINGS_PRELUDE}
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[2])
expire()
return redis.call('ZCARD', KEYS[1])
`;
const HOLDINGS_HOLD_LUA = `${HOLDINGS_PRELUDE}
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[2])
expire()
return 1
`;
const HOLDINGS_DROP_LUA = `${HOLDINGS_PRELUDE}
redis.call('ZREM', KEYS[1], ARGV[2])
expire()
return 1
`;
const HOLDINGS_COUNT_LUA = `${HOLDINGS_PRELUDE}
return redis.call('ZCARD', KEYS[1])
`;

type Guard = <T>(op: () => Promise<T>) => Promise<T>;

function parseOwner(json: string | null): ObjectOwner | undefined {
  if (json === null) return undefined;
  try {
    const v = JSON.parse(json) as Partial<ObjectOwner>;
    if (typeof v.userId === 'string' && typeof v.upstreamId === 'string' && typeof v.keyId === 'string') {
      return { userId: v.userId, upstreamId: v.upstreamId, keyId: v.keyId };
    }
  } catch {
    // not an owner record: as if there were none
  }
  return undefined;
}

const score = (at: number): string => (at === Number.POSITIVE_INFINITY ? '+inf' : String(at));

export function redisObjectOwners(client: RedisClient, guard: Guard, now: () => number = Date.now): ObjectOwners {
  client.defineCommand('krOwnerPut', { numberOfKeys: 1, lua: OWNER_PUT_LUA });
  client.defineCommand('krOwnerTake', { numberOfKeys: 1, lua: OWNER_TAKE_LUA });
  client.defineCommand('krHoldingsAdd', { numberOfKeys: 1, lua: HOLDINGS_ADD_LUA });
  client.defineCommand('krHoldingsHold', { numberOfKeys: 1, lua: HOLDINGS_HOLD_LUA });
  client.defineCommand('krHoldingsDrop', { numberOfKeys: 1, lua: HOLDINGS_DROP_LUA });
  client.defineCommand('krHoldingsCount', { numberOfKeys: 1, lua: HOLDINGS_COUNT_LUA });

  const lookup = (id: string) => guard(async () => parseOwner(await client.get(objectKey(id))));
  return {
    record: (id, owner) =>
      guard(async () => {
        const { userId, upstreamId, keyId } = owner;
        const lifetimeMs = recordLifetimeMs(id);
        const t = now();
        const forever = lifetimeMs === Number.POSITIVE_INFINITY;
        // Sent together: the second is written right behind the first.
        const put = client.krOwnerPut(objectKey(id), JSON.stringify({ userId, upstreamId, keyId }), forever ? '' : String(lifetimeMs));
        const count = client.krHoldingsAdd(holdingsKey(userId), t, id, score(t + lifetimeMs));
        const [previous] = await Promise.all([put, count]);
        const before = parseOwner(previous);
        // Moved to another user (never in practice: ids are unique): it no longer counts for the first.
        if (before && before.userId !== userId) await client.krHoldingsDrop(holdingsKey(before.userId), t, id);
      }),
    lookup,
    async lookupMany(ids) {
      // One command per id, not MGET: on a cluster the ids' keys lie in different slots.
      const owners = await Promise.all(ids.map((id) => lookup(id)));
      const found = new Map<string, ObjectOwner>();
      ids.forEach((id, i) => {
        const owner = owners[i];
        if (owner) found.set(id, owner);
      });
      return found;
    },
    forget: (id, byUser) =>
      guard(async () => {
        // Both commands leave in this tick: a request the user sends next reaches Redis after them.
        const taken = client.krOwnerTake(objectKey(id));
        const dropped = byUser === undefined ? undefined : client.krHoldingsDrop(holdingsKey(byUser), now(), id);
        const owner = parseOwner(await taken);
        await dropped;
        if (owner && owner.userId !== byUser) await client.krHoldingsDrop(holdingsKey(owner.userId), now(), id);
      }),
    hold: (userId, requestId, max, leaseMs) =>
      guard(async () => {
        const t = now();
        return (await client.krHoldingsHold(holdingsKey(userId), t, SLOT_PREFIX + requestId, score(t + leaseMs), max)) === 1;
      }),
    release: (userId, requestId) =>
      guard(async () => {
        await client.krHoldingsDrop(holdingsKey(userId), now(), SLOT_PREFIX + requestId);
      }),
    held: (userId) => guard(async () => Number(await client.krHoldingsCount(holdingsKey(userId), now()))),
  };
}
