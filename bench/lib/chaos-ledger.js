// The ledger check of bench/chaos.js: after the load, each user's day and month windows must hold
// exactly what the gateways reported charging for that user's requests (the kept request log,
// GET /admin/requests/export, each request once by its id) plus the worst cases of the
// reservations a killed gateway left behind (charged in full when their lease runs out, as the
// README says), nothing reserved, and nothing over a limit.
import { Redis } from 'ioredis';

/** The Redis key of a user's held reservations (src/store/redis.ts quotaKeys). */
const heldKey = (userId) => `kr:${/[{}]/.test(userId) ? `{x:${Buffer.from(userId).toString('hex')}}` : `{u:${userId}}`}:q:held`;

/**
 * The reservations Redis holds per user: request id -> {tokens, micros}. Read once every request
 * is over and every live gateway has settled: what is left was reserved by a process that died.
 */
export async function heldReservations(redisPort, userIds) {
  const redis = new Redis({ host: '127.0.0.1', port: redisPort, lazyConnect: true, maxRetriesPerRequest: 1 });
  await redis.connect();
  try {
    const held = new Map();
    for (const id of userIds) {
      const entries = await redis.hgetall(heldKey(id));
      const list = [];
      for (const [requestId, record] of Object.entries(entries)) {
        if (requestId.startsWith('#')) continue; // counters of the hash, not reservations
        const [tokens, micros] = record.split(':').map(Number);
        list.push({ requestId, tokens, micros });
      }
      held.set(id, list);
    }
    return held;
  } finally {
    redis.disconnect();
  }
}

/** Every kept request record, each request once (a batch written again after a Redis restart
 * or freeze may be in the stream twice). */
export async function requestLog(origin, adminToken) {
  const res = await fetch(`${origin}/admin/requests/export`, { headers: { authorization: `Bearer ${adminToken}` } });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`GET /admin/requests/export: ${res.status} ${text.slice(0, 200)}`);
  const byId = new Map();
  let lines = 0;
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    lines++;
    const record = JSON.parse(line);
    byId.set(record.requestId, record);
  }
  return { text, records: byId, duplicates: lines - byId.size };
}

/**
 * The access-log lines (`"msg":"request"`, the same record) of processes that were killed: a
 * request that ended just before the SIGKILL was settled and logged, but its record may not have
 * reached the kept request log yet (it is written in batches in the background).
 */
export function accessLogRecords(texts) {
  const byId = new Map();
  for (const text of texts) {
    for (const line of text.split('\n')) {
      if (!line.includes('"msg":"request"')) continue;
      try {
        const record = JSON.parse(line);
        if (record.msg === 'request' && typeof record.requestId === 'string') byId.set(record.requestId, record);
      } catch {
        // a line cut by the kill
      }
    }
  }
  return byId;
}

/** Sums per user of what the records say was charged. */
export function chargedByUser(records) {
  const sums = new Map();
  for (const r of records.values()) {
    if (r.userId === undefined) continue;
    const s = sums.get(r.userId) ?? { requests: 0, tokens: 0, micros: 0 };
    s.requests++;
    // What the ledger counts: input (cached input is part of it) and output tokens.
    s.tokens += (r.tokens?.input ?? 0) + (r.tokens?.output ?? 0);
    s.micros += r.costMicros ?? 0;
    sums.set(r.userId, s);
  }
  return sums;
}

/** One line per user and its verdict: failures name what differs. */
export function checkUser(user, view, charged, orphans) {
  const failures = [];
  const orphanTokens = orphans.reduce((n, o) => n + o.tokens, 0);
  const orphanMicros = orphans.reduce((n, o) => n + o.micros, 0);
  const expectTokens = charged.tokens + orphanTokens;
  const expectMicros = charged.micros + orphanMicros;
  for (const name of ['day', 'month']) {
    const w = view.usage[name];
    if (w.reservedTokens !== 0 || w.reservedUsdMicros !== 0) failures.push(`${name}: still reserved ${w.reservedTokens} tokens, ${w.reservedUsdMicros} micro-dollars`);
    if (w.tokens !== expectTokens) failures.push(`${name}: spent ${w.tokens} tokens, the log and the orphans say ${expectTokens}`);
    if (w.usdMicros !== expectMicros) failures.push(`${name}: spent ${w.usdMicros} micro-dollars, the log and the orphans say ${expectMicros}`);
    if (w.limits.tokens !== null && w.tokens > w.limits.tokens) failures.push(`${name}: ${w.tokens} tokens over the limit of ${w.limits.tokens}`);
    if (w.limits.usd !== null && w.usdMicros > Math.round(w.limits.usd * 1e6)) failures.push(`${name}: ${w.usdMicros} micro-dollars over the limit of $${w.limits.usd}`);
  }
  const day = view.usage.day;
  return {
    user: user.id,
    limits: user.limits,
    logged: charged,
    orphans: {
      count: orphans.length,
      cut: orphans.filter((o) => o.why === 'cut').length,
      lost: orphans.filter((o) => o.why !== 'cut').length,
      tokens: orphanTokens,
      micros: orphanMicros,
    },
    spent: { tokens: day.tokens, micros: day.usdMicros, estimatedRequests: day.estimatedRequests },
    reserved: { tokens: day.reservedTokens, micros: day.reservedUsdMicros },
    failures,
  };
}
