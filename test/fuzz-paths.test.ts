// Fuzzing of request targets: random segments, percent-encodings (malformed, double, of `/`, `\`,
// `.` and NUL), dot segments, empty segments, backslashes, raw NUL and control bytes, overlong UTF-8,
// very long paths and random queries, sent over a raw socket as written. Whatever the target, the
// answer is the gateway's own OpenAI-shaped refusal with no upstream request, or a relay whose
// upstream request has a canonical path (src/relay/path.ts); no 500, no secret out, nothing reserved.
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FUZZ_TIMEOUT, type FuzzGateway, POOL_KEY, checkAlive, checkLedger, checkReply, fuzz, httpRequest, rawExchange, startFuzzGateway, Tally } from './helpers/fuzz.js';

let fx: FuzzGateway;

beforeAll(async () => {
  fx = await startFuzzGateway();
});

afterAll(async () => {
  await fx?.close();
});

const hex = (byte: number, upper: boolean): string => {
  const h = byte.toString(16).padStart(2, '0');
  return `%${upper ? h.toUpperCase() : h}`;
};

// Pieces a segment is made of: each a Buffer, for bytes no string form would keep.
const piece: fc.Arbitrary<Buffer> = fc.oneof(
  { weight: 4, arbitrary: fc.stringMatching(/^[A-Za-z0-9\-._~!$&'()*+,;=:@]{1,12}$/).map((s) => Buffer.from(s)) },
  { weight: 3, arbitrary: fc.constantFrom('chat', 'completions', 'files', 'models', 'responses', 'embeddings', 'file-abc123', 'gpt-4o', 'v1', 'content', 'batches').map((s) => Buffer.from(s)) },
  { weight: 2, arbitrary: fc.tuple(fc.integer({ min: 0, max: 255 }), fc.boolean()).map(([b, upper]) => Buffer.from(hex(b, upper))) },
  // Escapes of the characters that must never be decoded into a path: `/`, `\`, `.`, `%`, NUL, space.
  { weight: 2, arbitrary: fc.constantFrom('%2f', '%2F', '%5c', '%5C', '%2e', '%2E', '%25', '%2525', '%00', '%20', '%0a', '%0d', '%252e').map((s) => Buffer.from(s)) },
  // Malformed escapes.
  { weight: 1, arbitrary: fc.constantFrom('%', '%2', '%G1', '%zz', '%%', '%-1').map((s) => Buffer.from(s)) },
  // Overlong UTF-8 for `.` and `/`, escaped and raw.
  { weight: 1, arbitrary: fc.constantFrom('%c0%ae', '%C0%AF', '%e0%80%ae', '%f0%80%80%af', '%c1%9c').map((s) => Buffer.from(s)) },
  { weight: 1, arbitrary: fc.constantFrom([0xc0, 0xae], [0xc0, 0xaf], [0xe0, 0x80, 0xae], [0xff], [0x80]).map((b) => Buffer.from(b)) },
  // Raw bytes an HTTP client would refuse: NUL, controls, backslash, space, non-ASCII text.
  { weight: 1, arbitrary: fc.constantFrom('\\', '\u0000', '\t', ' ', '\u007f', '"', '<', '#', 'é', '\u2028').map((s) => Buffer.from(s, 'utf8')) },
);

const segment: fc.Arbitrary<Buffer> = fc.oneof(
  { weight: 6, arbitrary: fc.array(piece, { minLength: 1, maxLength: 4 }).map((p) => Buffer.concat(p)) },
  { weight: 2, arbitrary: fc.constantFrom('.', '..', '', '%2e%2e', '.%2e', '%2e.').map((s) => Buffer.from(s)) },
  // A very long segment, near and past the lane's 2000 and the router's 2048 characters.
  { weight: 1, arbitrary: fc.integer({ min: 1_900, max: 3_000 }).map((n) => Buffer.alloc(n, 'a')) },
);

const query: fc.Arbitrary<Buffer> = fc.oneof(
  fc.constant(Buffer.alloc(0)),
  fc
    .array(fc.tuple(fc.array(piece, { maxLength: 3 }), fc.array(piece, { maxLength: 3 }), fc.constantFrom('=', '', '==')), { maxLength: 4 })
    .map((pairs) => Buffer.concat([Buffer.from('?'), ...pairs.flatMap(([k, v, eq], i) => [Buffer.from(i ? '&' : ''), ...k, Buffer.from(eq), ...v])])),
);

const target = fc.record({
  start: fc.constantFrom('/v1/', '/v1//', '/', '//v1/', '/V1/', '/v1\\', '/%76%31/', ''),
  segments: fc.array(segment, { maxLength: 6 }),
  trailing: fc.constantFrom('', '/', '\\', '/.', '/..'),
  query,
  // Past the 64 KB of headers Node reads: 431 or 400, never a relay.
  huge: fc.nat({ max: 19 }).map((n) => (n === 0 ? 70_000 : 0)),
});

// Targets most of which pass the check, so that the relay and the upstream see them too: known
// route words, pchar runs, escapes of pchars (decoded once), and a query of any escapes.
const word = fc.oneof(
  fc.constantFrom('chat', 'completions', 'files', 'models', 'responses', 'embeddings', 'file-abc123', 'gpt-4o', 'content', 'batches', 'audio', 'speech', 'moderations', 'vector_stores'),
  fc.stringMatching(/^[A-Za-z0-9\-._~!$&'()*+,;=:@]{1,16}$/).filter((s) => s !== '.' && s !== '..'),
  fc.constantFrom('%66iles', 'c%68at', '%63ompletions', 'file-%41%42', 'gpt%2D4o', '%7e%40'),
);
const plausible = fc.record({
  start: fc.constant('/v1/'),
  segments: fc.array(word.map((w) => Buffer.from(w)), { minLength: 1, maxLength: 4 }),
  trailing: fc.constantFrom('', '', '', '/'),
  query: fc.oneof(fc.constant(Buffer.alloc(0)), fc.array(fc.oneof(fc.stringMatching(/^[A-Za-z0-9=&%?/:@]{1,10}$/), fc.integer({ min: 0, max: 255 }).map((b) => hex(b, false))), { minLength: 1, maxLength: 8 }).map((q) => Buffer.from(`?${q.join('')}`))),
  huge: fc.constant(0),
});

const method = fc.constantFrom('GET', 'POST', 'DELETE', 'HEAD', 'PUT', 'OPTIONS', 'PATCH');
const auth = fc.constantFrom<'user' | 'none' | 'wrong'>('user', 'user', 'user', 'none', 'wrong');

const CHAT = JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], max_tokens: 5 });

function buildTarget(t: { start: string; segments: Buffer[]; trailing: string; query: Buffer; huge: number }): Buffer {
  const joined: Buffer[] = [];
  t.segments.forEach((s, i) => joined.push(...(i ? [Buffer.from('/'), s] : [s])));
  return Buffer.concat([Buffer.from(t.start, 'latin1'), ...joined, Buffer.from(t.trailing, 'latin1'), Buffer.alloc(t.huge, 'b'), t.query]);
}

// The canonical form of path.ts: every segment a pchar run, none `.`, `..` or empty.
const CANONICAL_SEGMENT = /^[A-Za-z0-9\-._~!$&'()*+,;=:@]+$/;

const tally = new Tally();

describe('request targets, fuzzed', () => {
  it('get the gateway\'s refusal or a relay of their canonical path, never a 500, a secret or a leak of the ledger', async () => {
    await fuzz(
      fc.asyncProperty(method, fc.oneof(target, plausible), auth, async (verb, t, who) => {
        const raw = buildTarget(t);
        const label = `${verb} ${JSON.stringify(raw.toString('latin1').slice(0, 300))}`;
        const headers: Array<[string, string]> = [['host', 'gateway.test']];
        if (who === 'user') headers.push(['authorization', `Bearer ${fx.userKey}`]);
        if (who === 'wrong') headers.push(['authorization', 'Bearer sk-not-a-key-of-this-gateway-000000']);
        const withBody = verb === 'POST' || verb === 'PUT' || verb === 'PATCH';
        if (withBody) headers.push(['content-type', 'application/json']);
        const before = fx.fake.requests.length;
        const reply = await rawExchange(fx.gateway.port, httpRequest(verb, raw, headers, withBody ? CHAT : undefined), { head: verb === 'HEAD' });
        tally.add(reply, await checkReply(fx, label, reply, before, { head: verb === 'HEAD' }));
        for (const sent of fx.fake.requests.slice(before)) {
          const path = sent.path.slice(1).split('/');
          expect(path[0], `${label}: upstream path ${sent.path}`).toBe('v1');
          for (const s of path) expect(CANONICAL_SEGMENT.test(s) && s !== '.' && s !== '..', `${label}: upstream path ${sent.path}`).toBe(true);
          expect(sent.headers.authorization, `${label}: the upstream's key`).toBe(`Bearer ${POOL_KEY}`);
        }
        if (who !== 'user' && reply.status !== 0) expect(fx.fake.requests.length - before, `${label}: relayed without a key`).toBe(0);
        await checkLedger(fx, label);
      }),
      1000,
    );
    await checkAlive(fx);
    console.log(`fuzz-paths: ${tally}`);
  }, FUZZ_TIMEOUT);
});
