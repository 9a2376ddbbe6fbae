// The Lua scripts of the Redis ledger, registered with ioredis `defineCommand` (EVALSHA, and EVAL
// again after a Redis restart flushed the script cache). Each script is one atomic step over
// the keys of one user, which all share the hash tag `{u:<id>}` and so one cluster slot. The
// reserve and settle scripts are sent in batches (batchOf, below): one call runs several requests'
// steps one after another, all of one user on a cluster, of any users on a single Redis.
// ledger.ts is the same algorithm in JavaScript; rules.ts names the order of the checks.
//
// KEYS, for all three: 1 day counters, 2 month counters, 3 rpm bucket, 4 tpm bucket,
// 5 held reservations (hash id -> record), 6 leases (zset id -> deadline), 7 settled ids (zset id ->
// when it may be forgotten).
//
// Numbers handed to redis.call go through fmt(): Lua would print 15 digits and more in
// exponent form, which HINCRBY and ZADD refuse or round.

import { MAX_AMOUNT } from './amounts.js';
import { BLOCKED_RETRY_MS, CONCURRENCY_RETRY_MS, LATER_PREFIX, LEASE_BUCKET_KEEP_MS, LEASE_PREFIX, MAX_SETTLE_RETRY_MS, SETTLED_MEMORY_MS, SWEEP_LIMIT, SWEPT_MEMORY_MS } from './rules.js';
import { WINDOW_GRACE_MS } from './windows.js';

export const COMMON = `
local SCALE = 60000
local now = tonumber(ARGV[2])
-- Adding 0 turns -0 into 0: HINCRBY refuses "-0".
local function fmt(x) return string.format('%.0f', x + 0) end
local function num(v) if v then return tonumber(v) end return 0 end
-- A bucket's field r counts the units leases hold (src/store/redis-leases.ts): the bucket refills
-- to limit - r at most, so that level + r never exceeds the limit (docs/quota.md).
local leased = {}
local stamps = {}
local function level(key, limit)
  if limit < 0 then return 0 end
  local v = redis.call('HMGET', key, 's', 't', 'r')
  leased[key] = num(v[3])
  stamps[key] = tonumber(v[2])
  local cap = (limit - leased[key]) * SCALE
  if not v[1] then return cap end
  local elapsed = now - tonumber(v[2])
  if elapsed < 0 then elapsed = 0 end
  local s = tonumber(v[1]) + elapsed * limit
  if s > cap then return cap end
  return s
end
local function save(key, limit, s)
  local r = leased[key]
  if r == nil then r = num(redis.call('HGET', key, 'r')) end
  local cap = (limit - r) * SCALE
  if s >= cap and r <= 0 then
    redis.call('DEL', key)
    return
  end
  if s > cap then s = cap end
  -- Never back in time: a step that carries an earlier clock reading than the last one (sent
  -- before it, run after it) must not make the next step refill that gap a second time.
  local at = now
  if stamps[key] and stamps[key] > at then at = stamps[key] end
  redis.call('HSET', key, 's', fmt(s), 't', fmt(at))
  local ttl = math.ceil((cap - s) / limit) + 1000
  -- Held by a lease: alive until that lease's deadline has passed and what it spent has refilled.
  if r > 0 and ttl < ${LEASE_BUCKET_KEEP_MS} then ttl = ${LEASE_BUCKET_KEEP_MS} end
  redis.call('PEXPIRE', key, fmt(ttl))
end
local HELD = '^(%-?%d+):(%-?%d+):([^:]+):([^:]+):(%d):(%d)$'
-- One request's amount (src/quota/amounts.ts): a whole number the counters hold, else nil.
-- Checked before any write, so a bad amount never reaches HINCRBY.
-- Reservations charged later (rules.ts LATER_PREFIX) are counted in the held hash's field
-- '#later', so that maxConcurrent counts only the requests in flight.
local LATER = '${LATER_PREFIX}'
-- A lease (LEASE_PREFIX) is not a request in flight either: its slots are counted in '#slots'.
local LEASE = '${LEASE_PREFIX}'
local function isLease(id) return string.sub(id, 1, #LEASE) == LEASE end
local function isLater(id) return string.sub(id, 1, #LATER) == LATER or isLease(id) end
local function amount(v)
  local x = tonumber(v)
  if x and x >= 0 and x <= ${MAX_AMOUNT} and x % 1 == 0 then return x end
  return nil
end
-- Requests in flight: reservations not charged later, and the slots that leases hold.
local function inFlight()
  local v = redis.call('HMGET', KEYS[5], '#later', '#slots')
  return redis.call('ZCARD', KEYS[6]) - num(v[1]) + num(v[2])
end
-- Settled request ids (KEYS[7]) are scored with the time they may be forgotten: as long as a
-- settle may be resent (rules.ts settledMemoryMs), so that no resend finds its id forgotten and
-- charges again. Never remembered for less than before; the set lives as long as its last id.
local function memoryOf(leaseMs) return math.min(leaseMs, ${MAX_SETTLE_RETRY_MS}) + ${SETTLED_MEMORY_MS} end
local function remember(id, keep)
  local at = now + keep
  local was = redis.call('ZSCORE', KEYS[7], id)
  if not (was and tonumber(was) >= at) then redis.call('ZADD', KEYS[7], fmt(at), id) end
  if redis.call('PTTL', KEYS[7]) < keep then redis.call('PEXPIRE', KEYS[7], fmt(keep)) end
end
-- Releases a reservation whose lease expired (its holder never settled it: a crashed process):
-- its amounts are charged in full, as estimated, in the windows of dayId and monthId it sits in.
-- A quota lease's bucket units and slots are spent: they leave r and '#slots', and do not go
-- back to the buckets' levels.
local function expire(eid, dayId, monthId)
  local rec = redis.call('HGET', KEYS[5], eid)
  if rec then
    local t, m, d, mo = string.match(rec, HELD)
    -- A reservation of a later window than this step's (the step of a lease taken before a
    -- rollover: a lease keeps its windows) is left to a sweep in its own windows. Released here,
    -- its amount would stay reserved in them for good. Ids sort as dates: YYYY-MM-DD, YYYY-MM.
    if d > dayId or mo > monthId then return end
    local windows = {}
    if d == dayId then windows[#windows + 1] = KEYS[1] end
    if mo == monthId then windows[#windows + 1] = KEYS[2] end
    for _, key in ipairs(windows) do
      if redis.call('EXISTS', key) == 1 then
        redis.call('HINCRBY', key, 'rt', fmt(-tonumber(t)))
        redis.call('HINCRBY', key, 'rm', fmt(-tonumber(m)))
        redis.call('HINCRBY', key, 't', t)
        redis.call('HINCRBY', key, 'm', m)
        redis.call('HINCRBY', key, 'e', 1)
      end
    end
    redis.call('HDEL', KEYS[5], eid)
    if isLater(eid) then redis.call('HINCRBY', KEYS[5], '#later', -1) end
    if isLease(eid) then
      local held = redis.call('HGET', KEYS[5], '#lease:' .. eid)
      if held then
        local units, tokens, slots = string.match(held, '^(%d+):(%d+):(%d+)$')
        for k, n in pairs({[3] = units, [4] = tokens}) do
          if tonumber(n) > 0 and redis.call('EXISTS', KEYS[k]) == 1 then
            if redis.call('HINCRBY', KEYS[k], 'r', fmt(-tonumber(n))) < 0 then redis.call('HSET', KEYS[k], 'r', 0) end
          end
        end
        if tonumber(slots) > 0 then redis.call('HINCRBY', KEYS[5], '#slots', fmt(-tonumber(slots))) end
        redis.call('HDEL', KEYS[5], '#lease:' .. eid)
      end
    end
  end
  redis.call('ZREM', KEYS[6], eid)
  remember(eid, ${SWEPT_MEMORY_MS})
end
`;

/** ARGV: 1 id, 2 now, 3 tokens, 4 micros, 5 rpm, 6 tpm, 7 tokensPerDay, 8 tokensPerMonth,
 * 9 microsPerDay, 10 microsPerMonth, 11 maxConcurrent (-1: no limit), 12 day id, 13 month id,
 * 14 day end, 15 month end, 16 lease ms. The constants of rules.ts and windows.ts are written
 * into the script's text: fewer arguments to encode on every call.
 * Returns {code, denial, retry ms, rpm level, tpm level}: code 1 admitted, 2 already held, 0 denied. */
export const RESERVE_LUA = `${COMMON}
local id = ARGV[1]
local tokens = amount(ARGV[3])
local micros = amount(ARGV[4])
local rpm = tonumber(ARGV[5])
local tpm = tonumber(ARGV[6])
local dayId = ARGV[12]
local monthId = ARGV[13]
local dayEnd = tonumber(ARGV[14])
local monthEnd = tonumber(ARGV[15])
local leaseMs = tonumber(ARGV[16])
local grace = ${WINDOW_GRACE_MS}

local rpmLevel = level(KEYS[3], rpm)
local tpmLevel = level(KEYS[4], tpm)
local function denied(reason, retry) return {0, reason, retry, rpmLevel, tpmLevel} end
local function rpmWait()
  if rpm < 0 or rpmLevel >= SCALE then return nil end
  if rpm == 0 then return ${BLOCKED_RETRY_MS} end
  return math.ceil((SCALE - rpmLevel) / rpm)
end
if redis.call('HEXISTS', KEYS[5], id) == 1 then return {2, '', 0, rpmLevel, tpmLevel} end
if redis.call('ZSCORE', KEYS[7], id) then return denied('settled', 0) end

-- Leases whose holder never settled (a crashed process) are charged in full, as estimated.
local expired = redis.call('ZRANGEBYSCORE', KEYS[6], '-inf', fmt(now), 'LIMIT', 0, ${SWEEP_LIMIT})
for _, eid in ipairs(expired) do expire(eid, dayId, monthId) end

-- Never admitted, whatever the limits; still a request the client made: it takes its unit of rpm.
if not (tokens and micros) then
  local wait = rpmWait()
  if wait then return denied('rpm', wait) end
  if rpm >= 0 then
    rpmLevel = rpmLevel - SCALE
    save(KEYS[3], rpm, rpmLevel)
  end
  return denied('too_large', 0)
end

local function denies(left, need) return left <= 0 or need > left end
local d = redis.call('HMGET', KEYS[1], 't', 'm', 'rt', 'rm')
local mo = redis.call('HMGET', KEYS[2], 't', 'm', 'rt', 'rm')
local limit = tonumber(ARGV[7])
if limit >= 0 and denies(limit - num(d[1]) - num(d[3]), tokens) then return denied('tokens_per_day', dayEnd - now) end
limit = tonumber(ARGV[8])
if limit >= 0 and denies(limit - num(mo[1]) - num(mo[3]), tokens) then return denied('tokens_per_month', monthEnd - now) end
limit = tonumber(ARGV[9])
if limit >= 0 and denies(limit - num(d[2]) - num(d[4]), micros) then return denied('usd_per_day', dayEnd - now) end
limit = tonumber(ARGV[10])
if limit >= 0 and denies(limit - num(mo[2]) - num(mo[4]), micros) then return denied('usd_per_month', monthEnd - now) end
limit = tonumber(ARGV[11])
if limit >= 0 and inFlight() >= limit then return denied('max_concurrent', ${CONCURRENCY_RETRY_MS}) end
local wait = rpmWait()
if wait then return denied('rpm', wait) end
if tpm >= 0 then
  if tokens > tpm then return denied('tpm_exceeded', ${BLOCKED_RETRY_MS}) end
  local need = tokens * SCALE - tpmLevel
  if need > 0 then
    if tpm == 0 then return denied('tpm', ${BLOCKED_RETRY_MS}) end
    return denied('tpm', math.ceil(need / tpm))
  end
end

for k, expireAt in ipairs({dayEnd + grace, monthEnd + grace}) do
  redis.call('HINCRBY', KEYS[k], 'rt', fmt(tokens))
  redis.call('HINCRBY', KEYS[k], 'rm', fmt(micros))
  redis.call('HINCRBY', KEYS[k], 'n', 1)
  redis.call('PEXPIREAT', KEYS[k], fmt(expireAt))
end
local rpmTaken = 0
local tpmTaken = 0
if rpm >= 0 then
  rpmLevel = rpmLevel - SCALE
  save(KEYS[3], rpm, rpmLevel)
  rpmTaken = 1
end
if tpm >= 0 then
  tpmLevel = tpmLevel - tokens * SCALE
  save(KEYS[4], tpm, tpmLevel)
  tpmTaken = 1
end
redis.call('HSET', KEYS[5], id, fmt(tokens) .. ':' .. fmt(micros) .. ':' .. dayId .. ':' .. monthId .. ':' .. rpmTaken .. ':' .. tpmTaken)
redis.call('ZADD', KEYS[6], fmt(now + leaseMs), id)
if isLater(id) then redis.call('HINCRBY', KEYS[5], '#later', 1) end
-- A held record must outlive the counters its amount sits in: were it to expire first, no sweep
-- would find it, and its amount would stay reserved until the month's counters go. So the held
-- records and the leases live to the end of the month's counters (or of this lease, if later),
-- and are never cut shorter, by a process with a shorter lease nor by a settle.
local hold = math.max(monthEnd + grace, now + leaseMs) - now
for k = 5, 6 do
  if redis.call('PTTL', KEYS[k]) < hold then redis.call('PEXPIRE', KEYS[k], fmt(hold)) end
end
return {1, '', 0, rpmLevel, tpmLevel}
`;

/** ARGV: 1 id, 2 now, 3 tokens, 4 micros, 5 estimated (0/1), 6 give the request back (0/1:
 * it does not count, in the windows' request counts nor in the rpm bucket),
 * 7 rpm, 8 tpm (-1: no limit), 9 day counters expire at, 10 month counters expire at,
 * 11 lease ms. Returns 1 when it settled, 0 when it had already. */
export const SETTLE_LUA = `${COMMON}
local id = ARGV[1]
local tokens = amount(ARGV[3])
local micros = amount(ARGV[4])
local rpm = tonumber(ARGV[7])
local tpm = tonumber(ARGV[8])
local keep = memoryOf(tonumber(ARGV[11]))
-- The gate never charges more than MAX_AMOUNT; anything else is refused, for this settle alone.
if not (tokens and micros) then return redis.error_reply('ERR keyrelay: settle amounts out of range') end
if redis.call('ZSCORE', KEYS[7], id) then
  -- A settle made after a sweep (a request that outran its lease) may be resent from now on too.
  remember(id, keep)
  return 0
end

local rec = redis.call('HGET', KEYS[5], id)
if rec then
  local t, m, _, _, rpmTaken, tpmTaken = string.match(rec, HELD)
  for k = 1, 2 do
    redis.call('HINCRBY', KEYS[k], 'rt', fmt(-tonumber(t)))
    redis.call('HINCRBY', KEYS[k], 'rm', fmt(-tonumber(m)))
  end
  if tpmTaken == '1' and tpm > 0 then
    local s = level(KEYS[4], tpm) + (tonumber(t) - tokens) * SCALE
    if s > tpm * SCALE then s = tpm * SCALE end
    save(KEYS[4], tpm, s)
  end
  if ARGV[6] == '1' then
    for k = 1, 2 do redis.call('HINCRBY', KEYS[k], 'n', -1) end
  end
  if ARGV[6] == '1' and rpmTaken == '1' and rpm > 0 then
    local s = level(KEYS[3], rpm) + SCALE
    if s > rpm * SCALE then s = rpm * SCALE end
    save(KEYS[3], rpm, s)
  end
  redis.call('HDEL', KEYS[5], id)
  redis.call('ZREM', KEYS[6], id)
  if isLater(id) then redis.call('HINCRBY', KEYS[5], '#later', -1) end
end
for k = 1, 2 do
  redis.call('HINCRBY', KEYS[k], 't', fmt(tokens))
  redis.call('HINCRBY', KEYS[k], 'm', fmt(micros))
  if ARGV[5] == '1' then redis.call('HINCRBY', KEYS[k], 'e', 1) end
  redis.call('PEXPIREAT', KEYS[k], ARGV[8 + k])
end
redis.call('ZREMRANGEBYSCORE', KEYS[7], '-inf', fmt(now))
remember(id, keep)
-- The held records and leases keep the lifetime their reserve gave them (see RESERVE_LUA).
return 1
`;

/** Read only. KEYS: 1 day, 2 month, 3 rpm, 4 tpm, 5 leases, 6 held. ARGV: 1 now. Returns the day and month counters (t m rt rm n e), both buckets
 * (s t, '' when full) and the number of requests in flight (leases still running, less those
 * charged later, and quota leases, whose slots count instead), then the leased units of both
 * buckets (r). */
export const USAGE_LUA = `
local now = ARGV[1]
local out = {}
for k = 1, 2 do
  local v = redis.call('HMGET', KEYS[k], 't', 'm', 'rt', 'rm', 'n', 'e')
  for i = 1, 6 do out[#out + 1] = v[i] or '0' end
end
local leased = {}
for k = 3, 4 do
  local v = redis.call('HMGET', KEYS[k], 's', 't', 'r')
  out[#out + 1] = v[1] or ''
  out[#out + 1] = v[2] or ''
  leased[#leased + 1] = v[3] or '0'
end
-- Leases still running, less those charged later (a batch is not a request in flight) and quota
-- leases, whose slots count instead.
local live = redis.call('ZRANGEBYSCORE', KEYS[5], '(' .. now, '+inf')
local running = tonumber(redis.call('HGET', KEYS[6], '#slots') or '0')
for _, id in ipairs(live) do
  if string.sub(id, 1, ${LATER_PREFIX.length}) ~= '${LATER_PREFIX}' and string.sub(id, 1, ${LEASE_PREFIX.length}) ~= '${LEASE_PREFIX}' then running = running + 1 end
end
out[#out + 1] = running
out[#out + 1] = leased[1]
out[#out + 1] = leased[2]
return out
`;

/**
 * A script above, run for several requests in one call: KEYS and ARGV hold `keys` keys and `args`
 * arguments per request, one request after another; the answer lists each request's answer in
 * order. Each request runs as it would alone, seeing the effects of those before it (the store
 * sends a batch only for keys in one cluster slot: one user's, or any on a single Redis).
 * A request whose step fails (a Redis error, a script error) gets that error as its answer, an
 * error reply inside the array, and the requests after it still run: one request's failure is
 * never its neighbours'. Its step may have written in part (Redis has no rollback): the store
 * cancels such a request as it does a reserve whose answer never came.
 */
export function batchOf(script: string, keys: number, args: number): string {
  return `
local function one(KEYS, ARGV)
${script}
end
local out = {}
for i = 0, #KEYS / ${keys} - 1 do
  local k, a = {}, {}
  for j = 1, ${keys} do k[j] = KEYS[i * ${keys} + j] end
  for j = 1, ${args} do a[j] = ARGV[i * ${args} + j] end
  local ok, answer = pcall(one, k, a)
  if ok then
    out[i + 1] = answer
  else
    -- Redis raises its errors as {err = message}; Lua's own are strings.
    if type(answer) == 'table' and answer.err then answer = answer.err end
    out[i + 1] = redis.error_reply(tostring(answer))
  end
end
return out
`;
}

export const RESERVE_KEYS = 7;
export const RESERVE_ARGS = 16;
export const SETTLE_KEYS = 7;
export const SETTLE_ARGS = 11;
