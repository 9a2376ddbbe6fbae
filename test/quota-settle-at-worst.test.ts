// A charge that is a worst case and not a report (a WebSocket response cut before its usage came,
// or one whose usage could not be read) is priced as admission priced it: every token at the
// model's dearest rate. Priced as text, a cut audio answer would cost the user an eighth of what it
// cost the operator.
import pino from 'pino';
import { expect, it } from 'vitest';
import { QuotaGate } from '../src/quota/gate.js';
import { PriceTable, costMicros, worstCostMicros } from '../src/quota/prices.js';
import { createMemoryStore } from '../src/store/memory.js';
import type { User } from '../src/store/types.js';

const user: User = { id: 'carol', createdAt: new Date(0).toISOString(), limits: { usdPerDay: 100 } } as User;

it('charges a worst-case usage at the dearest rates, and a reported one at its own', async () => {
  const store = createMemoryStore();
  await store.createUser(user);
  const prices = new PriceTable();
  const gate = new QuotaGate({ store, prices, leaseMs: 60_000, log: pino({ level: 'silent' }) });
  const price = prices.lookup('gpt-realtime');
  if (!price) throw new Error('gpt-realtime has a built-in price');
  const estimate = { model: 'gpt-realtime', promptTokens: 1000, maxOutputTokens: 4096, metered: true };
  const usage = { input: 1000, cachedInput: 0, output: 4096 };

  const cut = await gate.settle(await gate.admit(user, 'r1', estimate), { usage, estimated: true, atWorst: true });
  expect(cut?.micros).toBe(worstCostMicros(price, usage));
  // Audio in and out are the dearest rates of gpt-realtime: $32 and $64 a million.
  expect(cut?.micros).toBe(1000 * 32 + 4096 * 64);

  const reported = await gate.settle(await gate.admit(user, 'r2', estimate), { usage, estimated: false });
  expect(reported?.micros).toBe(costMicros(price, usage));
  expect(reported?.micros).toBeLessThan(cut?.micros ?? 0);

  const day = (await store.usage('carol', { microsPerDay: 100_000_000 }, Date.now())).day;
  expect(day.micros).toBe((cut?.micros ?? 0) + (reported?.micros ?? 0));
});
