// Hostile review: a path parameter that is another user's object id plus a suffix (`;x=1`, an
// escaped `;`, a trailing dot) is no longer shaped like a tracked id, so the gateway treats the
// request as naming no object and relays it to any key. An upstream that drops matrix parameters
// or a trailing dot (as many HTTP stacks do) then serves bob's file to alice. The plain id answers
// 404 without the upstream hearing of it; these must too (or be refused as paths).
import { request } from 'undici';
import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest';
import { type PoolFixture, startPool } from './helpers/pool-fixture.js';

let pool: PoolFixture;
let bobsFile: string;

beforeAll(async () => {
  pool = await startPool({ keys: ['a'], userId: 'alice' });
  const bob = await pool.gateway.createUserKey('bob');
  const boundary = 'kr-suffix';
  const form =
    `--${boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nassistants\r\n` +
    `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="secret.txt"\r\n\r\nbob's secret\r\n--${boundary}--\r\n`;
  const res = await request(`${pool.gateway.baseUrl}/files`, {
    method: 'POST',
    headers: { authorization: `Bearer ${bob}`, 'content-type': `multipart/form-data; boundary=${boundary}` },
    body: form,
  });
  bobsFile = (JSON.parse(await res.body.text()) as { id: string }).id;
});
afterAll(() => pool.close());
beforeEach(() => pool.fake.reset());

it.each([
  ['as it is (the control)', ''],
  ['with a matrix parameter', ';x=1'],
  ['with an escaped semicolon', '%3B'],
  ['with a trailing dot', '.'],
  ['with a trailing colon', ':'],
])("bob's file named %s is never asked of the upstream by alice", async (_name, suffix) => {
  const answer = await pool.get(`/files/${bobsFile}${suffix}/content`);
  expect(answer.status).toBeGreaterThanOrEqual(400);
  expect(answer.status).toBeLessThan(500);
  expect(pool.fake.requests).toHaveLength(0);
});
