// The largest limits a user may be given: the admin API refuses larger ones, and the ledger
// (memory, and Lua on Redis, both doubles) counts below them exactly. Past 2^53 a double cannot
// hold every integer, so a count could stop moving; dollars become integer micro-dollars, so a
// dollar limit times 1e6 must stay below 2^53 too (9e9 × 1e6 = 9e15 < 2^53 ≈ 9.007e15).

/** rpm, tpm, tokensPerDay, tokensPerMonth and maxConcurrent: whole numbers up to 2^53 - 1. */
export const MAX_COUNT_LIMIT = Number.MAX_SAFE_INTEGER;

/** usdPerDay and usdPerMonth: dollars (fractions allowed) up to nine billion. */
export const MAX_USD_LIMIT = 9_000_000_000;
