// The Redis store (REDIS_URL) and the Redis Cluster store (REDIS_CLUSTER_NODES): users and keys as
// JSON values, the quota ledger as the Lua scripts of src/quota/scripts.ts. Every key of one user
// carries the hash tag `{u:<id>}`, so each script's keys sit in one cluster slot. Any Redis
// failure becomes 503 quota_backend_unavailable: the store fails closed, never open.
import { Cluster, type Result } from 'ioredis';
import type { Logger } from 'pino';
import { GatewayError } from '../errors.js';
import { isLiveKey } from '../keys.js';
import { checkCharge } from '../quota/amounts.js';
import { settleRetryMs } from '../quota/rules.js';
import { SCALE, levelAt, rateWindow } from '../quota/bucket.js';
import { WINDOW_GRACE_MS, dayWindow, monthWindow, windowEnd } from '../quota/windows.js';
import { BoundedMap } from '../bounded-map.js';
import { byCreation } from './memory.js';
import { CallerCache, type FoundCaller } from './caller-cache.js';
import { PendingSettles } from './pending-settles.js';
import { QuotaLeases } from './redis-leases.js';
import { ScriptBatch } from './script-batch.js';
import { redisKeyHealth } from './redis-pool.js';
import { redisLaterCharges } from './later-charges.js';
import { redisCatalogStore } from './redis-catalog.js';
import { redisObjectOwners } from './redis-owners.js';
import { redisAlertStore } from '../alerts/redis-store.js';
import { redisAuditLog } from '../audit/redis-log.js';
import { redisSessionStore } from '../console-server/redis-sessions.js';
import { redisFailureCounter } from '../console-server/redis-throttle.js';
import {
  type RedisClient,
  type RedisTarget,
  checkEvictionPolicy,
  createRedisClient,
  describeTarget,
  userTag,
  waitReady,
  writeTogether,
} from './redis-client.js';
import type {
  Admission,
  Denial,
  KeyRecord,
  QuotaLimits,
  RateState,
  ReserveInput,
  SettleInput,
  Store,
  User,
  UserPatch,
  WindowUsage,
} from './types.js';

export { userTag };

declare module 'ioredis' {
  interface RedisCommander<Context> {
    krCreateUser(user: string, retired: string, json: string): Result<number, Context>;
    krDeleteUser(user: string, retired: string, at: string): Result<number, Context>;
    krTakeKeySlot(liveKeys: string, now: number, max: number, expiresAt: string, keyId: string): Result<number, Context>;
  }
}

// A user id is never given out again: deletion leaves a tombstone beside the record, in the same
// slot, and creation looks at both in one step, so no creation slips in between.
const CREATE_USER_LUA = `
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
if not redis.call('SET', KEYS[1], ARGV[1], 'NX') then return 0 end
return 1
`;
const DELETE_USER_LUA = `
if redis.call('DEL', KEYS[1]) == 0 then return 0 end
redis.call('SET', KEYS[2], ARGV[1])
return 1
`;

// A user's live keys, scored by expiry (ms, or +inf), for the cap on them: expired ones are
// dropped, the rest counted and the new one added in one step, so that keys created at once
// cannot all see room for one more. Revoking takes its id out.
const TAKE_KEY_SLOT_LUA = `
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[4])
return 1
`;

export interface RedisStoreOptions extends RedisTarget {
  commandTimeoutMs: number;
  log: Logger;
  /** Quota leases (docs/quota.md, src/store/redis-leases.ts); absent: one Redis step per admission. */
  leases?: {
    ttlMs: number;
    /** The leases' clock (tests drive it: window rollovers, expiry); Date.now by default. */
    now?: () => number;
  };
}


const USERS = 'kr:users';
const userKey = (id: string): string => `kr:${userTag(id)}:user`;
const userKeysKey = (id: string): string => `kr:${userTag(id)}:keys`;
const retiredKey = (id: string): string => `kr:${userTag(id)}:retired`;
const liveKeysKey = (id: string): string => `kr:${userTag(id)}:live-keys`;
const keyKey = (keyId: string): string => `kr:key:${keyId}`;
const digestKey = (digest: string): string => `kr:digest:${digest}`;

/** The seven keys of the reserve and settle scripts, in the order scripts.ts documents. */
export function quotaKeys(userId: string, day: string, month: string): string[] {
  const q = `kr:${userTag(userId)}:q`;
  return [`${q}:d:${day}`, `${q}:m:${month}`, `${q}:rpm`, `${q}:tpm`, `${q}:held`, `${q}:leases`, `${q}:settled`];
}

const MAX_OWNERS = 100_000;

/** A key's score in its user's live keys: when it expires, in ms; never: +inf; a time that does
 * not read is past, as isPast has it. */
function expiryScore(key: KeyRecord): string {
  if (key.expiresAt === undefined) return '+inf';
  const ms = Date.parse(key.expiresAt);
  return Number.isNaN(ms) ? '0' : String(ms);
}

const limitArg = (value: number | undefined): number => (value === undefined ? -1 : value);

function unavailable(err: unknown): GatewayError {
  if (err instanceof GatewayError) return err;
  return new GatewayError('quota_backend_unavailable', { headers: { 'retry-after': '1' }, cause: err });
}

function rateOf(limits: QuotaLimits, rpmLevel: number, tpmLevel: number): RateState {
  const rate: RateState = {};
  if (limits.rpm !== undefined) rate.requests = rateWindow(rpmLevel, limits.rpm);
  if (limits.tpm !== undefined) rate.tokens = rateWindow(tpmLevel, limits.tpm);
  return rate;
}

export async function createRedisStore(options: RedisStoreOptions): Promise<Store> {
  const { log, commandTimeoutMs } = options;
  const where = describeTarget(options);
  const data = createRedisClient(options, 'data', commandTimeoutMs, log);
  // Quota calls get a connection of their own, so that admin traffic never queues ahead of them.
  const quota = createRedisClient(options, 'quota', commandTimeoutMs, log);
  data.defineCommand('krCreateUser', { numberOfKeys: 2, lua: CREATE_USER_LUA });
  data.defineCommand('krDeleteUser', { numberOfKeys: 2, lua: DELETE_USER_LUA });
  data.defineCommand('krTakeKeySlot', { numberOfKeys: 1, lua: TAKE_KEY_SLOT_LUA });

  // One script call per round of the event loop for the admissions, one for the settles (per
  // user on a cluster, whose slots differ by user): src/store/script-batch.ts.
  const cluster = quota instanceof Cluster;
  const groupOf = (userId: string): string => (cluster ? userTag(userId) : '');
  const reserves = new ScriptBatch<unknown[]>((n, keysAndArgs) => quota.krReserve(n, ...keysAndArgs), () => writeTogether(quota));
  const settles = new ScriptBatch<number>((n, keysAndArgs) => quota.krSettle(n, ...keysAndArgs), () => writeTogether(quota));

  async function runSettle(input: SettleInput): Promise<void> {
    const r = input.reservation;
    await settles.add(groupOf(r.userId), quotaKeys(r.userId, r.day, r.month), [
      r.requestId,
      input.now,
      input.tokens,
      input.micros,
      input.estimated ? 1 : 0,
      input.refundRequest ? 1 : 0,
      limitArg(input.limits.rpm),
      limitArg(input.limits.tpm),
      windowEnd(r.day) + WINDOW_GRACE_MS,
      windowEnd(r.month) + WINDOW_GRACE_MS,
      input.leaseMs,
    ]);
  }
  const pending = new PendingSettles(runSettle, log);

  async function reserveInRedis(input: ReserveInput): Promise<Admission> {
    const { limits, now } = input;
    const day = dayWindow(now);
    const month = monthWindow(now);
    const reservation = { userId: input.userId, requestId: input.requestId, tokens: input.tokens, micros: input.micros, day: day.id, month: month.id };
    let reply: unknown[];
    try {
      reply = await reserves.add(groupOf(input.userId), quotaKeys(input.userId, day.id, month.id), [
        input.requestId,
        now,
        input.tokens,
        input.micros,
        limitArg(limits.rpm),
        limitArg(limits.tpm),
        limitArg(limits.tokensPerDay),
        limitArg(limits.tokensPerMonth),
        limitArg(limits.microsPerDay),
        limitArg(limits.microsPerMonth),
        limitArg(limits.maxConcurrent),
        day.id,
        month.id,
        day.end,
        month.end,
        input.leaseMs,
      ]);
    } catch (err) {
      // The script may have run (a timeout on a frozen Redis runs it once Redis thaws), or run in
      // part (an error inside this request's step, such as a write refused for memory, which the
      // batch answers for this request alone: scripts.ts batchOf): release it then. Settling is
      // idempotent, a settle of what was never reserved only marks the id settled, and a reserve
      // that arrives after this cancel is refused.
      // The cancel is sent at once, behind the reserve on the same connection, and the 503 waits
      // for the round of the event loop that writes it: a process killed right after answering
      // has then sent it, and a frozen Redis that thaws runs the reserve and then its release
      // (never sent upstream, the request costs nothing), instead of letting the reservation lapse
      // and be charged in full.
      const cancel = { reservation, limits, tokens: 0, micros: 0, estimated: false, refundRequest: true, now, leaseMs: input.leaseMs };
      pending.add(cancel, now + settleRetryMs(input.leaseMs), true);
      await new Promise((resolve) => setImmediate(resolve));
      throw unavailable(err);
    }
    const [code, denial, retryMs, rpmLevel, tpmLevel] = reply as [number, string, number, number, number];
    const rate = rateOf(limits, rpmLevel, tpmLevel);
    if (code === 0) return { admitted: false, denial: denial as Denial, retryAfterMs: retryMs, rate };
    return { admitted: true, reservation, rate };
  }

  async function settleInRedis(input: SettleInput): Promise<void> {
    checkCharge(input);
    try {
      await runSettle(input);
    } catch (err) {
      // Kept and retried until Redis takes it: the request happened, its usage must land.
      pending.add(input, input.now + settleRetryMs(input.leaseMs));
      log.warn({ requestId: input.reservation.requestId, reason: (err as Error).message }, 'settle failed: retrying when redis answers');
    }
  }

  const leaseSteps = new ScriptBatch<unknown[]>((n, keysAndArgs) => quota.krLease(n, ...keysAndArgs), () => writeTogether(quota));
  const leases =
    options.leases &&
    new QuotaLeases({
      ttlMs: options.leases.ttlMs,
      staleMs: commandTimeoutMs + 1000,
      run: (userId, keys, args) => leaseSteps.add(groupOf(userId), keys, args),
      keys: quotaKeys,
      reserve: reserveInRedis,
      settle: settleInRedis,
      log,
      ...(options.leases.now ? { now: options.leases.now } : {}),
    });

  const catalog = redisCatalogStore(data, options, commandTimeoutMs, log);
  quota.on('ready', () => pending.flush());

  const ready = await Promise.all([waitReady(data, Math.max(1000, commandTimeoutMs * 2)), waitReady(quota, Math.max(1000, commandTimeoutMs * 2))]);
  if (ready.every(Boolean)) await checkEvictionPolicy(data, log, where);
  else log.warn({ redis: where }, 'redis is not reachable at start: quota-gated requests get 503 until it is');

  async function getJson<T>(key: string): Promise<T | undefined> {
    const raw = await data.get(key);
    return raw === null ? undefined : (JSON.parse(raw) as T);
  }

  // A digest names one key id and that key one user for as long as the key exists (ids are never
  // reused): remembering the pair saves two of the three sequential reads of authentication
  // without remembering anything that can change.
  const owners = new BoundedMap<string, { id: string; userId: string }>(MAX_OWNERS);

  // One MGET on a single Redis; a cluster keeps the two keys in different slots, so two GETs
  // (sent in one write by auto-pipelining).
  const single = !(data instanceof Cluster);
  async function getTwo<A, B>(a: string, b: string): Promise<[A | undefined, B | undefined]> {
    const [rawA, rawB] = single ? await data.mget(a, b) : await Promise.all([data.get(a), data.get(b)]);
    return [rawA == null ? undefined : (JSON.parse(rawA) as A), rawB == null ? undefined : (JSON.parse(rawB) as B)];
  }

  const callers = new CallerCache();
  async function readCaller(digest: string): Promise<FoundCaller | undefined> {
    const known = owners.get(digest);
    if (known === undefined) {
      const id = await data.get(digestKey(digest));
      if (id === null) return undefined;
      const key = await getJson<KeyRecord>(keyKey(id));
      if (!key) return undefined;
      owners.set(digest, { id, userId: key.userId });
      return { key, user: await getJson<User>(userKey(key.userId)) };
    }
    const [key, user] = await getTwo<KeyRecord, User>(keyKey(known.id), userKey(known.userId));
    if (!key) {
      owners.delete(digest);
      return undefined;
    }
    return { key, user };
  }

  /** Takes one of the user's `max` live-key places for `key` (TAKE_KEY_SLOT_LUA). A user whose
   * keys were made before the places were kept has their live keys listed in first; adding one
   * twice changes nothing, so places taken meanwhile are not counted twice. */
  async function takeKeySlot(key: KeyRecord, max: number): Promise<boolean> {
    const live = liveKeysKey(key.userId);
    const now = Date.now();
    if ((await data.exists(live)) === 0) {
      const ids = await data.smembers(userKeysKey(key.userId));
      const held = (await Promise.all(ids.map((id) => getJson<KeyRecord>(keyKey(id))))).filter((k): k is KeyRecord => k !== undefined && isLiveKey(k, now));
      if (held.length > 0) await data.zadd(live, ...held.flatMap((k) => [expiryScore(k), k.id]));
    }
    return (await data.krTakeKeySlot(live, now, max, expiryScore(key), key.id)) === 1;
  }

  async function guard<T>(op: () => Promise<T>): Promise<T> {
    try {
      return await op();
    } catch (err) {
      throw unavailable(err);
    }
  }

  return {
    kind: options.clusterNodes?.length ? 'cluster' : 'redis',

    createUser: (user: User) =>
      guard(async () => {
        if ((await data.krCreateUser(userKey(user.id), retiredKey(user.id), JSON.stringify(user))) !== 1) return false;
        await data.sadd(USERS, user.id);
        return true;
      }),
    wasDeleted: (id) => guard(async () => (await data.exists(retiredKey(id))) === 1),
    getUser: (id) => guard(() => getJson<User>(userKey(id))),
    listUsers: () =>
      guard(async () => {
        const ids = await data.smembers(USERS);
        const users = await Promise.all(ids.map((id) => getJson<User>(userKey(id))));
        return users.filter((u): u is User => u !== undefined).sort(byCreation);
      }),
    updateUser: (id, patch: UserPatch) =>
      guard(async () => {
        const user = await getJson<User>(userKey(id));
        if (!user) return undefined;
        const next: User = { ...user, ...patch, limits: patch.limits ?? user.limits };
        // XX: a user deleted meanwhile stays deleted.
        const written = await data.set(userKey(id), JSON.stringify(next), 'XX').finally(() => callers.clear());
        return written === 'OK' ? next : undefined;
      }),
    deleteUser: (id) =>
      guard(async () => {
        // The user record goes first: from then on authentication fails for every key of theirs.
        if ((await data.krDeleteUser(userKey(id), retiredKey(id), new Date().toISOString()).finally(() => callers.clear())) !== 1) return false;
        await data.srem(USERS, id);
        const keyIds = await data.smembers(userKeysKey(id));
        const records = await Promise.all(keyIds.map((keyId) => getJson<KeyRecord>(keyKey(keyId))));
        await Promise.all(
          records.flatMap((k) => (k ? [data.del(digestKey(k.digest)), data.del(keyKey(k.id))] : [])),
        );
        await data.del(userKeysKey(id), liveKeysKey(id));
        return true;
      }),

    createKey: (key: KeyRecord, maxLive?: number) =>
      guard(async () => {
        if (maxLive !== undefined && !(await takeKeySlot(key, maxLive))) return false;
        await data.set(keyKey(key.id), JSON.stringify(key));
        await data.sadd(userKeysKey(key.userId), key.id);
        // Last: the key works only once everything about it is written.
        await data.set(digestKey(key.digest), key.id);
        return true;
      }),
    findKeyByDigest: (digest) =>
      guard(async () => {
        const id = await data.get(digestKey(digest));
        return id === null ? undefined : getJson<KeyRecord>(keyKey(id));
      }),
    async findCaller(digest) {
      const now = Date.now();
      const cached = callers.get(digest, now);
      if (cached) return cached;
      const ticket = callers.ticket;
      const found = await guard(() => readCaller(digest));
      if (found) callers.set(digest, found, now, ticket);
      return found;
    },
    getKey: (id) => guard(() => getJson<KeyRecord>(keyKey(id))),
    listKeys: (userId) =>
      guard(async () => {
        const ids = await data.smembers(userKeysKey(userId));
        const keys = await Promise.all(ids.map((id) => getJson<KeyRecord>(keyKey(id))));
        return keys.filter((k): k is KeyRecord => k !== undefined).sort(byCreation);
      }),
    forgetEndedKeys: (userId, keep, now) =>
      guard(async () => {
        const ids = await data.smembers(userKeysKey(userId));
        const stored = await Promise.all(ids.map((id) => getJson<KeyRecord>(keyKey(id))));
        const ended = stored.filter((k): k is KeyRecord => k !== undefined && !isLiveKey(k, now)).sort(byCreation);
        const gone = ended.slice(0, Math.max(0, ended.length - keep));
        // The digest first: from then on the key is unknown, as a forgotten one should be.
        for (const k of gone) {
          await data.del(digestKey(k.digest));
          await data.del(keyKey(k.id));
          await data.srem(userKeysKey(userId), k.id);
        }
        if (gone.length > 0) callers.clear();
        return gone.length;
      }),
    revokeKey: (id, at) =>
      guard(async () => {
        const key = await getJson<KeyRecord>(keyKey(id));
        if (!key) return undefined;
        if (key.revokedAt === undefined) {
          key.revokedAt = at;
          await data.set(keyKey(id), JSON.stringify(key), 'XX').finally(() => callers.clear());
          await data.zrem(liveKeysKey(key.userId), id);
        }
        return key;
      }),

    reserve: (input: ReserveInput) => (leases ? leases.reserve(input) : reserveInRedis(input)),
    settle: (input: SettleInput) => (leases ? leases.settle(input) : settleInRedis(input)),

    usage: (userId, limits, now) =>
      guard(async () => {
        const day = dayWindow(now);
        const month = monthWindow(now);
        const keys = quotaKeys(userId, day.id, month.id);
        const raw = (await quota.krUsage(keys[0] as string, keys[1] as string, keys[2] as string, keys[3] as string, keys[5] as string, keys[4] as string, now)) as Array<string | number>;
        const n = (i: number): number => Number(raw[i] ?? 0);
        const window = (offset: number, id: string, end: number): WindowUsage => ({
          window: id,
          resetsAt: new Date(end).toISOString(),
          tokens: n(offset),
          micros: n(offset + 1),
          reservedTokens: n(offset + 2),
          reservedMicros: n(offset + 3),
          requests: n(offset + 4),
          estimatedRequests: n(offset + 5),
        });
        const bucket = (i: number) => (raw[i] === '' ? undefined : { s: n(i), t: n(i + 1) });
        // A bucket refills to its limit less what leases hold of it (src/quota/scripts.ts).
        const level = (i: number, limit: number, leased: number) => Math.min(levelAt(bucket(i), limit, now), (limit - leased) * SCALE);
        const rpmLevel = limits.rpm === undefined ? 0 : level(12, limits.rpm, n(17));
        const tpmLevel = limits.tpm === undefined ? 0 : level(14, limits.tpm, n(18));
        return {
          day: window(0, day.id, day.end),
          month: window(6, month.id, month.end),
          rate: rateOf(limits, rpmLevel, tpmLevel),
          inFlight: n(16),
        };
      }),

    keyHealth: redisKeyHealth(data, log),
    poolCatalog: catalog,
    objectOwners: redisObjectOwners(data, guard),
    audit: redisAuditLog(data),
    alerts: redisAlertStore(data),
    laterCharges: redisLaterCharges(data, guard),
    consoleSessions: redisSessionStore(data),
    signInFailures: redisFailureCounter(data),

    async ping() {
      try {
        await Promise.all([data.ping(), quota.ping()]);
        return true;
      } catch {
        return false;
      }
    },

    async close() {
      await leases?.close();
      await pending.close();
      await catalog.close();
      data.disconnect();
      quota.disconnect();
    },
  };
}

