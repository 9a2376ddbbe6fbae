// Every transition of a pool key's health, on a fake clock (docs/reliability.md, cases 11-13, 16): 429 cools,
// 401, a 403 refusing the key itself, insufficient_quota and account_deactivated disable and probe, 5xx and timeouts open a growing
// circuit, 400/404/422 cost nothing, the admin's hand overrides.
import { describe, expect, it } from 'vitest';
import { type HealthSettings, KeyHealth } from '../src/pool/health.js';
import { type AttemptResult, classifyAttempt } from '../src/pool/outcome.js';

const T0 = 1_700_000_000_000;
const KEY = 'main/a';

function setup(settings: Partial<HealthSettings> = {}, random = () => 0.5) {
  const clock = { t: T0 };
  const health = new KeyHealth({ now: () => clock.t, random, settings });
  /** One whole request on the key, answered at once. */
  const answer = (result: AttemptResult, probe = false) => {
    const ticket = health.begin(KEY, probe);
    health.end(ticket, classifyAttempt(result), result.headers);
  };
  const advance = (ms: number) => {
    clock.t += ms;
  };
  return { health, clock, answer, advance };
}

// With random() = 0.5, a jittered wait of base·2^n is three quarters of it.
const jittered = (full: number) => Math.round(full * 0.75);

describe('a new key', () => {
  it('is active and ready', () => {
    const { health } = setup();
    expect(health.availability(KEY)).toEqual({ kind: 'ready' });
    expect(health.view(KEY)).toEqual({ state: 'active', inFlight: 0, requests: 0, failures: 0, consecutiveFailures: 0 });
  });
});

describe('429 rate limit: cooling', () => {
  it('for retry-after-ms, then ready again', () => {
    const { health, answer, advance } = setup();
    answer({ status: 429, headers: { 'retry-after-ms': '1500' }, error: { code: 'rate_limit_exceeded' } });
    expect(health.availability(KEY)).toEqual({ kind: 'resting', until: T0 + 1500, reason: 'rate_limited' });
    expect(health.view(KEY)).toMatchObject({ state: 'cooling', reason: 'rate_limited', until: T0 + 1500, failures: 1 });
    advance(1499);
    expect(health.availability(KEY).kind).toBe('resting');
    advance(1);
    expect(health.availability(KEY)).toEqual({ kind: 'ready' });
    expect(health.view(KEY).state).toBe('active');
  });

  it('for retry-after in seconds', () => {
    const { health, answer } = setup();
    answer({ status: 429, headers: { 'retry-after': '7' } });
    expect(health.record(KEY)).toMatchObject({ state: 'cooling', until: T0 + 7000 });
  });

  it('for retry-after as an HTTP date', () => {
    const { health, answer } = setup();
    answer({ status: 429, headers: { 'retry-after': new Date(T0 + 42_000).toUTCString() } });
    expect(health.record(KEY)).toMatchObject({ state: 'cooling', until: T0 + 42_000 });
  });

  it('until the reset of the spent window when there is no retry-after', () => {
    const { health, answer } = setup();
    answer({ status: 429, headers: { 'x-ratelimit-remaining-tokens': '0', 'x-ratelimit-reset-tokens': '6m0s', 'x-ratelimit-remaining-requests': '12', 'x-ratelimit-reset-requests': '1s' } });
    expect(health.record(KEY)).toMatchObject({ state: 'cooling', until: T0 + 360_000 });
  });

  it('for the default when the answer says nothing', () => {
    const { health, answer } = setup({ defaultCooldownMs: 20_000 });
    answer({ status: 429 });
    expect(health.record(KEY)).toMatchObject({ state: 'cooling', reason: 'rate_limited', until: T0 + 20_000 });
  });

  it('capped: a daily limit is tried again after the cap', () => {
    const { health, answer } = setup({ maxCooldownMs: 600_000 });
    answer({ status: 429, headers: { 'retry-after': '86400' } });
    expect(health.record(KEY)).toMatchObject({ until: T0 + 600_000 });
  });

  it('a shorter 429 does not cut a longer cooling short', () => {
    const { health, answer } = setup();
    const early = health.begin(KEY);
    answer({ status: 429, headers: { 'retry-after': '30' } });
    health.end(early, classifyAttempt({ status: 429 }), { 'retry-after': '1' });
    expect(health.record(KEY)).toMatchObject({ until: T0 + 30_000 });
  });

  it('a success of a request sent before the 429 does not end the cooling', () => {
    const { health, answer, advance } = setup();
    const early = health.begin(KEY);
    advance(10);
    answer({ status: 429, headers: { 'retry-after': '30' } });
    advance(10);
    health.end(early, classifyAttempt({ status: 200 }));
    expect(health.availability(KEY)).toEqual({ kind: 'resting', until: T0 + 10 + 30_000, reason: 'rate_limited' });
  });
});

describe('a spent window seen in a successful answer', () => {
  it('rests the key until its reset without any 429', () => {
    const { health, answer, advance } = setup();
    answer({ status: 200, headers: { 'x-ratelimit-limit-requests': '60', 'x-ratelimit-remaining-requests': '0', 'x-ratelimit-reset-requests': '2s' } });
    expect(health.availability(KEY)).toEqual({ kind: 'resting', until: T0 + 2000, reason: 'rate_limited' });
    expect(health.view(KEY)).toMatchObject({ state: 'cooling', reason: 'rate_limited', until: T0 + 2000 });
    // Local knowledge only: nothing is published for it.
    expect(health.record(KEY).state).toBe('active');
    advance(2000);
    expect(health.availability(KEY)).toEqual({ kind: 'ready' });
  });
});

describe.each([
  ['401', { status: 401, error: { code: 'invalid_api_key' } }, 'invalid_api_key'],
  ['403 refusing the key\'s region', { status: 403, error: { code: 'unsupported_country_region_territory' } }, 'forbidden'],
  ['429 insufficient_quota', { status: 429, error: { code: 'insufficient_quota', type: 'insufficient_quota' } }, 'insufficient_quota'],
  ['account_deactivated', { status: 401, error: { code: 'account_deactivated' } }, 'account_deactivated'],
] as const)('%s: disabled and probed back', (_name, result, reason) => {
  const probeBaseMs = 60_000;

  it('is disabled with its reason and a first probe time', () => {
    const { health, answer } = setup({ probeBaseMs });
    answer(result);
    expect(health.record(KEY)).toEqual({ state: 'disabled', reason, until: T0 + jittered(probeBaseMs), since: T0, strikes: 0, updatedAt: T0 });
    expect(health.availability(KEY)).toEqual({ kind: 'resting', until: T0 + jittered(probeBaseMs), reason });
  });

  it('at the probe time takes one request, and a success brings it back', () => {
    const { health, answer, advance } = setup({ probeBaseMs });
    answer(result);
    advance(jittered(probeBaseMs));
    expect(health.availability(KEY)).toEqual({ kind: 'probe' });
    expect(health.view(KEY)).toMatchObject({ state: 'disabled', reason });
    health.claimProbe(KEY);
    // While the probe is out, nobody else gets the key.
    expect(health.availability(KEY)).toMatchObject({ kind: 'resting', reason });
    answer({ status: 200 }, true);
    expect(health.record(KEY)).toMatchObject({ state: 'active', strikes: 0 });
    expect(health.availability(KEY)).toEqual({ kind: 'ready' });
  });

  it('a failed probe waits twice as long for the next', () => {
    const { health, answer, advance } = setup({ probeBaseMs });
    answer(result);
    advance(jittered(probeBaseMs));
    health.claimProbe(KEY);
    answer(result, true);
    const now = T0 + jittered(probeBaseMs);
    expect(health.record(KEY)).toMatchObject({ state: 'disabled', reason, strikes: 1, until: now + jittered(2 * probeBaseMs) });
  });
});

describe('probe schedule', () => {
  it('grows to its cap', () => {
    const { health, answer, clock } = setup({ probeBaseMs: 1000, probeMaxMs: 5000 });
    answer({ status: 401 });
    const waits: number[] = [];
    for (let i = 0; i < 5; i++) {
      const { until = 0, since } = health.record(KEY);
      waits.push(until - since);
      clock.t = until;
      health.claimProbe(KEY);
      answer({ status: 401 }, true);
    }
    expect(waits).toEqual([750, 1500, 3000, 3750, 3750]);
  });

  it('a probe that meets a 5xx tries again as soon, not later', () => {
    const { health, answer, clock } = setup({ probeBaseMs: 1000 });
    answer({ status: 401 });
    clock.t = health.record(KEY).until ?? 0;
    health.claimProbe(KEY);
    answer({ status: 503 }, true);
    expect(health.record(KEY)).toMatchObject({ state: 'disabled', reason: 'invalid_api_key', strikes: 0, until: clock.t + 750 });
  });

  it('a probe that never ends frees the key after its lease', () => {
    const { health, answer, advance } = setup({ probeBaseMs: 1000, probeLeaseMs: 30_000 });
    answer({ status: 401 });
    advance(750);
    health.claimProbe(KEY);
    health.begin(KEY, true);
    expect(health.availability(KEY)).toEqual({ kind: 'resting', until: T0 + 750 + 30_000, reason: 'invalid_api_key' });
    advance(30_000);
    expect(health.availability(KEY)).toEqual({ kind: 'probe' });
  });

  it('a 400 from a probe does not bring a disabled key back', () => {
    const { health, answer, advance } = setup({ probeBaseMs: 1000 });
    answer({ status: 429, error: { code: 'insufficient_quota' } });
    advance(750);
    health.claimProbe(KEY);
    answer({ status: 400 }, true);
    expect(health.record(KEY)).toMatchObject({ state: 'disabled', reason: 'insufficient_quota' });
  });
});

describe('repeated 5xx or timeouts: the circuit', () => {
  it('opens after three in a row, for a jittered base time', () => {
    const { health, answer } = setup({ failureThreshold: 3, circuitBaseMs: 4000 });
    answer({ status: 500 });
    answer({ transportCode: 'UND_ERR_HEADERS_TIMEOUT' });
    expect(health.availability(KEY)).toEqual({ kind: 'ready' });
    expect(health.stats(KEY).consecutiveFailures).toBe(2);
    answer({ status: 502 });
    expect(health.record(KEY)).toEqual({ state: 'cooling', reason: 'circuit_open', until: T0 + 3000, since: T0, strikes: 0, updatedAt: T0 });
    expect(health.view(KEY)).toMatchObject({ state: 'cooling', reason: 'circuit_open', until: T0 + 3000, failures: 3, requests: 3 });
  });

  it('a success in between starts the count again', () => {
    const { health, answer } = setup({ failureThreshold: 3 });
    answer({ status: 500 });
    answer({ status: 500 });
    answer({ status: 200 });
    answer({ status: 500 });
    answer({ status: 500 });
    expect(health.record(KEY).state).toBe('active');
  });

  it('so does a 400: the upstream answers sanely', () => {
    const { health, answer } = setup({ failureThreshold: 3 });
    answer({ status: 500 });
    answer({ status: 500 });
    answer({ status: 400 });
    answer({ status: 500 });
    expect(health.record(KEY).state).toBe('active');
  });

  it('half-open after its time: one trial; success closes it', () => {
    const { health, answer, advance } = setup({ failureThreshold: 1, circuitBaseMs: 4000 });
    answer({ status: 503 });
    advance(3000);
    expect(health.availability(KEY)).toEqual({ kind: 'probe' });
    health.claimProbe(KEY);
    expect(health.availability(KEY).kind).toBe('resting');
    answer({ status: 200 }, true);
    expect(health.record(KEY)).toMatchObject({ state: 'active', strikes: 0 });
  });

  it('a failed trial opens it again for twice as long, up to the cap', () => {
    const { health, answer, clock } = setup({ failureThreshold: 1, circuitBaseMs: 4000, circuitMaxMs: 20_000 });
    answer({ status: 500 });
    const waits: number[] = [];
    for (let i = 0; i < 5; i++) {
      const { until = 0, since } = health.record(KEY);
      waits.push(until - since);
      clock.t = until;
      health.claimProbe(KEY);
      answer({ transportCode: 'ECONNREFUSED' }, true);
    }
    expect(waits).toEqual([3000, 6000, 12_000, 15_000, 15_000]);
  });

  it('jitter spreads the time between half and all of it', () => {
    const low = setup({ failureThreshold: 1, circuitBaseMs: 8000 }, () => 0);
    low.answer({ status: 500 });
    const high = setup({ failureThreshold: 1, circuitBaseMs: 8000 }, () => 0.999_999);
    high.answer({ status: 500 });
    expect(low.health.record(KEY).until).toBe(T0 + 4000);
    expect(high.health.record(KEY).until).toBe(T0 + 8000);
  });

  it('failures of requests sent before it opened do not open it again', () => {
    const { health, answer, advance } = setup({ failureThreshold: 1, circuitBaseMs: 4000 });
    const early = health.begin(KEY);
    advance(1);
    answer({ status: 500 });
    advance(3000);
    health.end(early, classifyAttempt({ status: 500 }));
    expect(health.record(KEY)).toMatchObject({ strikes: 0, until: T0 + 1 + 3000 });
    expect(health.availability(KEY)).toEqual({ kind: 'probe' });
  });
});

describe('400, 404, 422 cost the key nothing', () => {
  it.each([400, 404, 422])('%d', (status) => {
    const { health, answer } = setup({ failureThreshold: 1 });
    for (let i = 0; i < 5; i++) answer({ status });
    expect(health.record(KEY).state).toBe('active');
    expect(health.stats(KEY)).toEqual({ inFlight: 0, requests: 5, failures: 0, consecutiveFailures: 0 });
  });

  it('nor does a proxy failure, a client that left, or a model the project lacks', () => {
    const { health, answer } = setup({ failureThreshold: 1 });
    answer({ proxyFailure: true, transportCode: 'ECONNREFUSED' });
    answer({ clientAborted: true });
    answer({ status: 403, error: { code: 'model_not_found' } });
    expect(health.record(KEY).state).toBe('active');
    expect(health.stats(KEY).failures).toBe(0);
  });
});

describe('a 401 or 403 that refuses one operation to the key costs it nothing', () => {
  it.each([
    ['a missing scope', { status: 401, error: { type: 'invalid_request_error', missingScope: true } }],
    ['a 403 on an admin route', { status: 403, privileged: true }],
    ['a 401 invalid_api_key on an admin route', { status: 401, error: { code: 'invalid_api_key' }, privileged: true }],
  ] as Array<[string, AttemptResult]>)('%s', (_name, result) => {
    const { health, answer } = setup({ failureThreshold: 1 });
    for (let i = 0; i < 5; i++) answer(result);
    expect(health.record(KEY).state).toBe('active');
    expect(health.stats(KEY)).toEqual({ inFlight: 0, requests: 5, failures: 0, consecutiveFailures: 0 });
  });

  it('nor brings back a disabled key at its probe', () => {
    const { health, answer, advance } = setup({ probeBaseMs: 60_000 });
    answer({ status: 401, error: { code: 'invalid_api_key' } });
    advance(60_000);
    health.claimProbe(KEY);
    answer({ status: 401, error: { missingScope: true } }, true);
    expect(health.record(KEY)).toMatchObject({ state: 'disabled', reason: 'invalid_api_key', strikes: 0 });
    // The probe is over: the next request may try the key again.
    expect(health.availability(KEY)).toEqual({ kind: 'probe' });
  });
});

describe("the admin's hand", () => {
  it('disabled by hand: never probed, no recovery time, not undone by a success', () => {
    const { health, answer, advance } = setup();
    health.disable(KEY);
    expect(health.availability(KEY)).toEqual({ kind: 'resting', reason: 'manual' });
    advance(86_400_000);
    expect(health.availability(KEY)).toEqual({ kind: 'resting', reason: 'manual' });
    answer({ status: 200 });
    answer({ status: 401 });
    expect(health.record(KEY)).toMatchObject({ state: 'disabled', reason: 'manual' });
    expect(health.view(KEY)).toMatchObject({ state: 'disabled', reason: 'manual' });
  });

  it('enabled by hand: active at once, whatever it was', () => {
    const { health, answer } = setup();
    answer({ status: 401 });
    health.enable(KEY);
    expect(health.availability(KEY)).toEqual({ kind: 'ready' });
    expect(health.record(KEY)).toMatchObject({ state: 'active', strikes: 0 });
  });

  it('an enabled key that fails again is disabled again', () => {
    const { health, answer, advance } = setup();
    health.disable(KEY);
    advance(5);
    health.enable(KEY);
    advance(5);
    answer({ status: 403, error: { code: 'unsupported_country_region_territory' } });
    expect(health.record(KEY)).toMatchObject({ state: 'disabled', reason: 'forbidden' });
  });
});

describe('counts', () => {
  it('in flight, requests and failures', () => {
    const { health } = setup();
    const a = health.begin(KEY);
    const b = health.begin(KEY);
    expect(health.stats(KEY)).toEqual({ inFlight: 2, requests: 2, failures: 0, consecutiveFailures: 0 });
    health.end(a, classifyAttempt({ status: 200 }));
    health.end(b, classifyAttempt({ status: 500 }));
    expect(health.stats(KEY)).toEqual({ inFlight: 0, requests: 2, failures: 1, consecutiveFailures: 1 });
  });

  it('every change is reported with the record before it', () => {
    const clock = { t: T0 };
    const changes: string[] = [];
    const health = new KeyHealth({ now: () => clock.t, random: () => 0.5, onChange: (ref, record, previous) => changes.push(`${ref} ${previous.state}->${record.state} ${record.reason ?? ''}`) });
    health.end(health.begin(KEY), classifyAttempt({ status: 429 }), { 'retry-after': '1' });
    clock.t += 1000;
    health.end(health.begin(KEY), classifyAttempt({ status: 200 }));
    health.disable(KEY);
    expect(changes).toEqual([`${KEY} active->cooling rate_limited`, `${KEY} cooling->active `, `${KEY} active->disabled manual`]);
  });
});
