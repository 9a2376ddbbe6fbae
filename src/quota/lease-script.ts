// The Lua step of a quota lease (src/store/redis-leases.ts, docs/quota.md): one atomic exchange of
// one process with one user's ledger, which takes, renews, settles into, gives back and closes the
// lease. It shares COMMON (level, save, expire) with the reserve and settle scripts, and is sent in
// batches by batchOf like them. KEYS: the seven of the reserve script, for the lease's day and month.
import { WINDOW_GRACE_MS } from './windows.js';
import { COMMON } from './scripts.js';
import { LEASE_DIVISOR, SWEEP_LIMIT } from './rules.js';

/**
 * ARGV: 1 lease id, 2 now, 3 lease ms, 4 create (0/1), 5 close (0/1),
 * 6 charged tokens, 7 charged micros, 8 requests, 9 estimated requests (all out of the lease),
 * 10 tokens given back, 11 micros given back, 12 tokens wanted, 13 micros wanted, 14 least tokens, 15 least micros,
 * 16 rpm units spent, 17 rpm units given back, 18 rpm units wanted,
 * 19 tpm tokens spent, 20 tpm tokens given back, 21 tpm tokens wanted, 22 least tpm tokens, 23 tpm tokens spent past the lease,
 * 24 slots given back, 25 slots wanted,
 * 26 rpm, 27 tpm, 28 tokensPerDay, 29 tokensPerMonth, 30 microsPerDay, 31 microsPerMonth, 32 maxConcurrent (-1: none),
 * 33 day id, 34 month id, 35 day end, 36 month end.
 * Returns {1, tokens, micros, rpm units, tpm tokens, slots granted (-1: no limit there), rpm level,
 * tpm level} or {0} when the lease is gone (expired, charged in full, or never taken).
 */
export const LEASE_LUA = `${COMMON}
local id = ARGV[1]
local leaseMs = tonumber(ARGV[3])
local create = ARGV[4] == '1'
local close = ARGV[5] == '1'
local function arg(i) return amount(ARGV[i]) or 0 end
local rpm = tonumber(ARGV[26])
local tpm = tonumber(ARGV[27])
local dayId = ARGV[33]
local monthId = ARGV[34]
local dayEnd = tonumber(ARGV[35])
local monthEnd = tonumber(ARGV[36])
local FIELD = '#lease:' .. id
local D = ${LEASE_DIVISOR}

-- A unit no window limits is not reserved by a lease (it holds none of it): what its requests
-- used is charged all the same, or the user's usage would lose it. So is it when the lease is
-- gone (its full charge holds none of that unit), with the requests this step reports.
local function unheld(ct, cm)
  local ut, um = 0, 0
  if tonumber(ARGV[28]) < 0 and tonumber(ARGV[29]) < 0 then ut = arg(6) - ct end
  if tonumber(ARGV[30]) < 0 and tonumber(ARGV[31]) < 0 then um = arg(7) - cm end
  return ut, um
end
local function gone()
  local ut, um = unheld(0, 0)
  local n, e = tonumber(ARGV[8]) or 0, arg(9)
  if ut == 0 and um == 0 and n == 0 and e == 0 then return {0} end
  local ends = {dayEnd + ${WINDOW_GRACE_MS}, monthEnd + ${WINDOW_GRACE_MS}}
  for k = 1, 2 do
    redis.call('HINCRBY', KEYS[k], 't', fmt(ut))
    redis.call('HINCRBY', KEYS[k], 'm', fmt(um))
    redis.call('HINCRBY', KEYS[k], 'n', fmt(n))
    redis.call('HINCRBY', KEYS[k], 'e', fmt(e))
    redis.call('PEXPIREAT', KEYS[k], fmt(ends[k]))
  end
  return {0}
end

local rec = redis.call('HGET', KEYS[5], id)
local deadline = redis.call('ZSCORE', KEYS[6], id)
if rec and deadline and tonumber(deadline) <= now then
  -- Past its deadline: charged in full, as a sweep would; what was admitted against it is paid.
  expire(id, dayId, monthId)
  return gone()
end
-- Other reservations past their deadline (a crashed process's), as an admission sweeps them.
for _, eid in ipairs(redis.call('ZRANGEBYSCORE', KEYS[6], '-inf', fmt(now), 'LIMIT', 0, ${SWEEP_LIMIT})) do expire(eid, dayId, monthId) end
local T, M, R, P, S = 0, 0, 0, 0, 0
if rec then
  local t, m = string.match(rec, HELD)
  T, M = tonumber(t), tonumber(m)
  local units, tokens, slots = string.match(redis.call('HGET', KEYS[5], FIELD) or '0:0:0', '^(%d+):(%d+):(%d+)$')
  R, P, S = tonumber(units), tonumber(tokens), tonumber(slots)
elseif not create or redis.call('ZSCORE', KEYS[7], id) then
  return gone()
end

-- Charges and returns, never more than the lease holds.
local ct = math.min(arg(6), T)
local cm = math.min(arg(7), M)
local bt = math.min(arg(10), T - ct)
local bm = math.min(arg(11), M - cm)
T = T - ct - bt
M = M - cm - bm
local ut, um = unheld(ct, cm)
local ends = {dayEnd + ${WINDOW_GRACE_MS}, monthEnd + ${WINDOW_GRACE_MS}}
for k = 1, 2 do
  redis.call('HINCRBY', KEYS[k], 'rt', fmt(-(ct + bt)))
  redis.call('HINCRBY', KEYS[k], 'rm', fmt(-(cm + bm)))
  redis.call('HINCRBY', KEYS[k], 't', fmt(ct + ut))
  redis.call('HINCRBY', KEYS[k], 'm', fmt(cm + um))
  redis.call('HINCRBY', KEYS[k], 'n', fmt(tonumber(ARGV[8]) or 0))
  redis.call('HINCRBY', KEYS[k], 'e', fmt(arg(9)))
  redis.call('PEXPIREAT', KEYS[k], fmt(ends[k]))
end

-- At most an eighth of what is left, and nothing when that would not hold the least asked for.
local function grant(left, want, least)
  if close or left <= 0 then return 0 end
  local g = math.min(want, math.floor(left / D))
  -- Whole requests like the last one: a remainder no request fits would be held for nothing.
  if least > 0 then g = g - g % least end
  if g <= 0 or g < least then return 0 end
  return g
end
local function window(field, reserved, dayLimit, monthLimit, want, least)
  if dayLimit < 0 and monthLimit < 0 then return -1 end
  local d = redis.call('HMGET', KEYS[1], field, reserved)
  local mo = redis.call('HMGET', KEYS[2], field, reserved)
  local left = math.huge
  if dayLimit >= 0 then left = math.min(left, dayLimit - num(d[1]) - num(d[2])) end
  if monthLimit >= 0 then left = math.min(left, monthLimit - num(mo[1]) - num(mo[2])) end
  return grant(left, want, least)
end
local gt = window('t', 'rt', tonumber(ARGV[28]), tonumber(ARGV[29]), arg(12), arg(14))
local gm = window('m', 'rm', tonumber(ARGV[30]), tonumber(ARGV[31]), arg(13), arg(15))
for k = 1, 2 do
  if gt > 0 then redis.call('HINCRBY', KEYS[k], 'rt', fmt(gt)) end
  if gm > 0 then redis.call('HINCRBY', KEYS[k], 'rm', fmt(gm)) end
end
if gt > 0 then T = T + gt end
if gm > 0 then M = M + gm end

-- A bucket: spent units leave r, returned ones go back to the level, granted ones move from the
-- level to r; level + r never grows past the limit (docs/quota.md).
local function bucket(key, limit, held, spent, back, want, least, past)
  if limit < 0 then return 0, -1, 0 end
  local lv = level(key, limit)
  spent = math.min(spent, held)
  back = math.min(back, held - spent)
  lv = lv + (back - past) * SCALE
  local g = grant(math.floor(lv / SCALE), want, least)
  lv = lv - g * SCALE
  local dr = g - spent - back
  if dr ~= 0 then
    local r = redis.call('HINCRBY', key, 'r', fmt(dr))
    if r < 0 then
      r = 0
      redis.call('HSET', key, 'r', 0)
    end
    leased[key] = r
  end
  if limit > 0 then save(key, limit, lv) end
  return held - spent - back + g, g, lv
end
local gr, gp, rpmLevel, tpmLevel
R, gr, rpmLevel = bucket(KEYS[3], rpm, R, arg(16), arg(17), arg(18), 1, 0)
P, gp, tpmLevel = bucket(KEYS[4], tpm, P, arg(19), arg(20), arg(21), arg(22), arg(23))

-- Slots: counted in flight from their grant until they are given back or the lease expires.
local gs = -1
local maxc = tonumber(ARGV[32])
local back = math.min(arg(24), S)
S = S - back
if back > 0 then redis.call('HINCRBY', KEYS[5], '#slots', fmt(-back)) end
if maxc >= 0 then
  gs = grant(maxc - inFlight(), arg(25), 1)
  if gs > 0 then
    S = S + gs
    redis.call('HINCRBY', KEYS[5], '#slots', fmt(gs))
  end
end

if close and T == 0 and M == 0 and R == 0 and P == 0 and S == 0 then
  if rec then
    redis.call('HDEL', KEYS[5], id, FIELD)
    redis.call('HINCRBY', KEYS[5], '#later', -1)
    redis.call('ZREM', KEYS[6], id)
  end
  remember(id, memoryOf(leaseMs))
  return {1, 0, 0, 0, 0, 0, rpmLevel, tpmLevel}
end
redis.call('HSET', KEYS[5], id, fmt(T) .. ':' .. fmt(M) .. ':' .. dayId .. ':' .. monthId .. ':0:0', FIELD, fmt(R) .. ':' .. fmt(P) .. ':' .. fmt(S))
if not rec then redis.call('HINCRBY', KEYS[5], '#later', 1) end
redis.call('ZADD', KEYS[6], fmt(now + leaseMs), id)
local hold = math.max(monthEnd + ${WINDOW_GRACE_MS}, now + leaseMs) - now
for k = 5, 6 do
  if redis.call('PTTL', KEYS[k]) < hold then redis.call('PEXPIRE', KEYS[k], fmt(hold)) end
end
return {1, gt, gm, gr, gp, gs, rpmLevel, tpmLevel}
`;

export const LEASE_KEYS = 7;
export const LEASE_ARGS = 36;
