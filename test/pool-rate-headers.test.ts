// Reading a key's rate limits from its answers: Go durations, retry-after in its three forms,
// x-ratelimit-* snapshots, the headroom estimate and how long a 429 asks a key to rest.
import { describe, expect, it } from 'vitest';
import { exhaustedUntil, headroom, parseGoDuration, rateLimitPauseMs, rateSnapshot, retryAfterMs } from '../src/pool/rate-headers.js';

const NOW = 1_700_000_000_000;

describe('Go durations, as OpenAI writes x-ratelimit-reset-*', () => {
  it.each([
    ['20ms', 20],
    ['1s', 1000],
    ['0s', 0],
    ['0', 0],
    ['6m0s', 360_000],
    ['1h2m3.5s', 3_723_500],
    ['59.999s', 59_999],
    ['1.5ms', 1.5],
    ['250us', 0.25],
    ['100µs', 0.1],
    ['1h', 3_600_000],
    ['2m', 120_000],
    ['.5s', 500],
    ['23h59m59s', 86_399_000],
  ])('%s is %d ms', (text, ms) => {
    expect(parseGoDuration(text)).toBeCloseTo(ms, 9);
  });

  it.each(['', 's', '1', '1x', '-1s', 'abc', '1m1', 'ms', '1.2.3s'])('%j is not one', (text) => {
    expect(parseGoDuration(text)).toBeUndefined();
  });

  it('surrounding spaces do not matter', () => {
    expect(parseGoDuration(' 1s ')).toBe(1000);
  });
});

describe('retry-after', () => {
  it('prefers retry-after-ms, as the official SDKs do', () => {
    expect(retryAfterMs({ 'retry-after-ms': '1500', 'retry-after': '9' }, NOW)).toBe(1500);
    expect(retryAfterMs({ 'retry-after-ms': '12.5' }, NOW)).toBe(12.5);
  });

  it('reads seconds, whole or not', () => {
    expect(retryAfterMs({ 'retry-after': '7' }, NOW)).toBe(7000);
    expect(retryAfterMs({ 'retry-after': '0.25' }, NOW)).toBe(250);
  });

  it('reads an HTTP date, and a past date as no wait', () => {
    const in30s = new Date(NOW + 30_000).toUTCString();
    expect(retryAfterMs({ 'retry-after': in30s }, NOW)).toBe(30_000);
    expect(retryAfterMs({ 'retry-after': new Date(NOW - 5000).toUTCString() }, NOW)).toBe(0);
  });

  it('ignores garbage and negative values, and takes the first of repeated headers', () => {
    expect(retryAfterMs({ 'retry-after': 'soon' }, NOW)).toBeUndefined();
    expect(retryAfterMs({ 'retry-after-ms': '-5' }, NOW)).toBeUndefined();
    expect(retryAfterMs({ 'retry-after': ['3', '9'] }, NOW)).toBe(3000);
    expect(retryAfterMs({}, NOW)).toBeUndefined();
    expect(retryAfterMs(undefined, NOW)).toBeUndefined();
  });
});

const OPENAI_HEADERS = {
  'x-ratelimit-limit-requests': '10000',
  'x-ratelimit-limit-tokens': '2000000',
  'x-ratelimit-remaining-requests': '9999',
  'x-ratelimit-remaining-tokens': '1999990',
  'x-ratelimit-reset-requests': '6ms',
  'x-ratelimit-reset-tokens': '0s',
};

describe('rate snapshots', () => {
  it('reads the six headers of an OpenAI answer', () => {
    expect(rateSnapshot(OPENAI_HEADERS, NOW)).toEqual({
      observedAt: NOW,
      requests: { limit: 10_000, remaining: 9999, resetAt: NOW + 6 },
      tokens: { limit: 2_000_000, remaining: 1_999_990, resetAt: NOW },
    });
  });

  it('is undefined for an answer without any of them, and partial for a partial set', () => {
    expect(rateSnapshot({ 'content-type': 'application/json' }, NOW)).toBeUndefined();
    expect(rateSnapshot({ 'x-ratelimit-remaining-requests': '3' }, NOW)).toEqual({
      observedAt: NOW,
      requests: { limit: undefined, remaining: 3, resetAt: undefined },
      tokens: { limit: undefined, remaining: undefined, resetAt: undefined },
    });
  });

  it('a spent window rests the key until its reset, the later of two', () => {
    const snapshot = rateSnapshot(
      { ...OPENAI_HEADERS, 'x-ratelimit-remaining-requests': '0', 'x-ratelimit-reset-requests': '2s', 'x-ratelimit-remaining-tokens': '0', 'x-ratelimit-reset-tokens': '5s' },
      NOW,
    );
    expect(exhaustedUntil(snapshot, NOW)).toBe(NOW + 5000);
    expect(exhaustedUntil(snapshot, NOW + 5000)).toBeUndefined();
    expect(exhaustedUntil(rateSnapshot(OPENAI_HEADERS, NOW), NOW)).toBeUndefined();
  });
});

describe('headroom', () => {
  const nearlySpent = rateSnapshot(
    { 'x-ratelimit-limit-requests': '100', 'x-ratelimit-remaining-requests': '10', 'x-ratelimit-reset-requests': '10s' },
    NOW,
  );

  it('is the share left when observed', () => {
    expect(headroom(nearlySpent, NOW)).toBeCloseTo(0.1, 9);
  });

  it('refills linearly until the reset, then is full', () => {
    expect(headroom(nearlySpent, NOW + 5000)).toBeCloseTo(0.55, 9);
    expect(headroom(nearlySpent, NOW + 10_000)).toBe(1);
  });

  it('is the tighter of the two windows, and 1 when nothing is known', () => {
    const tokensTight = rateSnapshot(
      {
        'x-ratelimit-limit-requests': '100',
        'x-ratelimit-remaining-requests': '90',
        'x-ratelimit-limit-tokens': '1000',
        'x-ratelimit-remaining-tokens': '200',
      },
      NOW,
    );
    expect(headroom(tokensTight, NOW)).toBeCloseTo(0.2, 9);
    expect(headroom(undefined, NOW)).toBe(1);
  });
});

describe('how long a 429 rests the key', () => {
  it('retry-after first', () => {
    expect(rateLimitPauseMs({ 'retry-after': '3', 'x-ratelimit-reset-requests': '1m0s' }, NOW)).toBe(3000);
  });

  it('else the reset of the spent window', () => {
    const headers = {
      'x-ratelimit-remaining-requests': '40',
      'x-ratelimit-reset-requests': '100ms',
      'x-ratelimit-remaining-tokens': '0',
      'x-ratelimit-reset-tokens': '6m0s',
    };
    expect(rateLimitPauseMs(headers, NOW)).toBe(360_000);
  });

  it('else the sooner reset given, else nothing', () => {
    expect(rateLimitPauseMs({ 'x-ratelimit-reset-requests': '20s', 'x-ratelimit-reset-tokens': '1s' }, NOW)).toBe(1000);
    expect(rateLimitPauseMs({ 'content-type': 'application/json' }, NOW)).toBeUndefined();
  });
});
