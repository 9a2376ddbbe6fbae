// A WebSocket session holds its place under maxConcurrent for as long as it is open, however long
// that is: its reservation is moved to a fresh one before its lease (quota.leaseMs) runs out, so a
// session that outlives the lease is not swept as a crashed request's would be (docs/websockets.md).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, type Metered, WS_BACKENDS, eventually, startMetered } from './helpers/ws-metering.js';

const LEASE_MS = 1000;
const PATH = '/v1/realtime?model=gpt-realtime';

describe.each(WS_BACKENDS)('the %s store', (_name, make) => {
  let m: Metered;
  beforeAll(async () => {
    m = await startMetered(make, { quota: { leaseMs: LEASE_MS, redisCommandTimeoutMs: 1000, defaultMaxOutputTokens: 16_384 } });
  }, 60_000);
  afterAll(() => m.close());

  it('keeps the slot of a session open three leases long, counts it as one request, and frees it at the close', async () => {
    const { id, key } = await m.user('slot', { limits: { maxConcurrent: 1, rpm: 100 } });
    const first = await Client.open(m.gateway, PATH, key);
    await new Promise((resolve) => setTimeout(resolve, 3 * LEASE_MS));
    expect(await Client.refusal(m.gateway, PATH, key)).toBe(429);
    const during = await m.usage(id);
    expect(during.concurrent.inFlight).toBe(1);
    expect(during.day.estimatedRequests).toBe(0);
    first.close();
    await first.closed;
    const second = await eventually(() => Client.open(m.gateway, PATH, key));
    second.close();
    await second.closed;
    const after = await eventually(async () => {
      const u = await m.usage(id);
      expect(u.concurrent.inFlight).toBe(0);
      return u;
    });
    // Two sessions, each one request, whatever their renewals; the refused upgrade is not counted.
    expect(after.day.requests).toBe(2);
    expect(after.day.tokens).toBe(0);
  }, 30_000);
});
