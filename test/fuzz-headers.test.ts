// Fuzzing of request headers, over a raw socket: random names (valid tokens and not), odd casing
// of the ones the gateway reads, duplicates, long values, CR, LF, NUL and obs-fold in values,
// bytes past ASCII. Whatever comes, the answer keeps the properties of every answer (helpers/fuzz.ts);
// and what reaches the upstream carries the pool key only, never the user's key or the admin token,
// never a line break inside a header (a CR or LF is a line's end, or refused), and no hop-by-hop
// header or client credential.
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_TOKEN } from './helpers/gateway.js';
import { FUZZ_TIMEOUT, type FuzzGateway, POOL_KEY, Tally, checkAlive, checkLedger, checkReply, fuzz, httpRequest, rawExchange, startFuzzGateway } from './helpers/fuzz.js';

let fx: FuzzGateway;

beforeAll(async () => {
  fx = await startFuzzGateway();
});

afterAll(async () => {
  await fx?.close();
});

/** Each letter upper or lower case at random. */
const casing = (name: string): fc.Arbitrary<string> =>
  fc.array(fc.boolean(), { minLength: name.length, maxLength: name.length }).map((ups) => [...name].map((c, i) => (ups[i] ? c.toUpperCase() : c.toLowerCase())).join(''));

const known = fc.constantFrom(
  'authorization',
  'content-type',
  'accept',
  'accept-encoding',
  'openai-organization',
  'openai-project',
  'openai-beta',
  'x-api-key',
  'api-key',
  'cookie',
  'origin',
  'forwarded',
  'x-forwarded-for',
  'x-real-ip',
  'te',
  'trailer',
  'upgrade',
  'keep-alive',
  'proxy-authorization',
  'expect',
  'x-stainless-os',
  'idempotency-key',
  'x-request-id',
  'x-keyrelay-request-id',
);

const name = fc.oneof(
  { weight: 4, arbitrary: known.chain(casing) },
  { weight: 4, arbitrary: fc.stringMatching(/^[A-Za-z0-9!#$%&'*+\-.^_`|~]{1,24}$/) },
  // Not a token: spaces, separators, controls, non-ASCII; Node refuses these.
  { weight: 1, arbitrary: fc.constantFrom('bad name', 'a:b', 'x\u0000y', '(x)', 'é', 'x\ty', '') },
);

const value = fc.oneof(
  { weight: 5, arbitrary: fc.stringMatching(/^[\x20-\x7e]{0,40}$/) },
  { weight: 2, arbitrary: fc.constantFrom('Bearer ', 'bearer ', 'Basic dXNlcjpwYXNz', 'application/json', 'application/json; charset=utf-8', 'text/plain', 'gzip', '100-continue', 'close', 'h2c', 'null', '') },
  // Line breaks: one header trying to become two, a bare CR or LF, an obs-fold.
  { weight: 2, arbitrary: fc.constantFrom('a\r\nx-smuggled: 1', 'a\nx-smuggled: 1', 'a\rx-smuggled: 1', 'a\r\n x-folded', 'a\u0000b', '\r\n\r\nGET /v1/models HTTP/1.1') },
  { weight: 1, arbitrary: fc.constantFrom('é', '\u00ff\u00fe', '\u2028', '\u{1f600}') },
  // Long values, past Node's 64 KB of headers at the top.
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 70_000 }).map((n) => 'v'.repeat(n)) },
);

const header = fc.tuple(name, value);

// How the request names its key: the usual header, twice, another casing or scheme (the key put
// after a bearer-like scheme), a malformed one, or none.
type Auth = { kind: 'user' } | { kind: 'twice' } | { kind: 'headers'; headers: Array<[string, string]> };
const authorization: fc.Arbitrary<Auth> = fc.oneof(
  { weight: 3, arbitrary: fc.constant<Auth>({ kind: 'user' }) },
  { weight: 1, arbitrary: fc.constant<Auth>({ kind: 'twice' }) },
  { weight: 1, arbitrary: fc.constantFrom<Auth>({ kind: 'headers', headers: [] }, { kind: 'headers', headers: [['authorization', 'Bearer']] }, { kind: 'headers', headers: [['Authorization', 'sk-no-scheme-0000000000']] }) },
  {
    weight: 2,
    arbitrary: fc
      .tuple(casing('authorization'), fc.constantFrom('Bearer ', 'bearer ', 'BEARER ', 'Bearer  ', 'Token '))
      .map(([n, scheme]): Auth => ({ kind: 'headers', headers: [[n, scheme]] })),
  },
);

const CHAT = JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], max_tokens: 5 });

const HOP_BY_HOP = ['connection', 'keep-alive', 'te', 'trailer', 'upgrade', 'proxy-authorization', 'transfer-encoding'];
const NEVER_FORWARDED = ['cookie', 'origin', 'forwarded', 'x-real-ip', 'x-api-key', 'api-key', 'openai-organization', 'openai-project', 'expect'];

const tally = new Tally();

describe('request headers, fuzzed', () => {
  it('never crash the relay, leak a secret upstream or downstream, or pass a line break or credential upstream', async () => {
    await fuzz(
      fc.asyncProperty(fc.array(header, { maxLength: 8 }), authorization, fc.constantFrom('/v1/chat/completions', '/v1/models', '/v1/embeddings'), async (extra, auth, path) => {
        const headers: Array<[string, string]> = [['Host', 'gateway.test']];
        if (auth.kind === 'twice') headers.push(['authorization', `Bearer ${fx.userKey}`], ['Authorization', `Bearer ${fx.userKey}`]);
        else if (auth.kind === 'user') headers.push(['authorization', `Bearer ${fx.userKey}`]);
        else for (const [n, v] of auth.headers) headers.push([n, v.toLowerCase().startsWith('bearer ') ? `${v}${fx.userKey}` : v]);
        headers.push(...extra.filter(([n]) => !['content-length', 'transfer-encoding', 'connection', 'host'].includes(n.toLowerCase())));
        const post = path !== '/v1/models';
        if (post && !headers.some(([n]) => n.toLowerCase() === 'content-type')) headers.push(['content-type', 'application/json']);
        const body = post ? (path === '/v1/embeddings' ? JSON.stringify({ model: 'text-embedding-3-small', input: 'hi' }) : CHAT) : undefined;
        const label = `${path} ${JSON.stringify(headers.map(([n, v]) => `${n}: ${v.slice(0, 80)}`))}`;
        const before = fx.fake.requests.length;
        const bytes = httpRequest(post ? 'POST' : 'GET', path, headers, body);
        const reply = await rawExchange(fx.gateway.port, bytes);
        const pipelined = bytes.indexOf('\r\n\r\n') < bytes.lastIndexOf('\r\n\r\n');
        tally.add(reply, await checkReply(fx, label, reply, before, { pipelined }));
        for (const sent of fx.fake.requests.slice(before)) {
          expect(sent.headers.authorization, `${label}: the upstream's key`).toBe(`Bearer ${POOL_KEY}`);
          const upstreamHeaders = sent.rawHeaders.join('\n');
          expect(upstreamHeaders.includes(fx.userKey), `${label}: the user's key upstream`).toBe(false);
          expect(upstreamHeaders.includes(ADMIN_TOKEN), `${label}: the admin token upstream`).toBe(false);
          for (const h of [...HOP_BY_HOP.filter((h) => h !== 'connection'), ...NEVER_FORWARDED]) expect(sent.headers[h], `${label}: ${h} upstream`).toBeUndefined();
          for (const [, v] of Object.entries(sent.headers)) expect(String(v), `${label}: a line break upstream`).not.toMatch(/[\r\n\u0000]/);
        }
        await checkLedger(fx, label);
      }),
      1000,
    );
    await checkAlive(fx);
    console.log(`fuzz-headers: ${tally}`);
  }, FUZZ_TIMEOUT);
});
