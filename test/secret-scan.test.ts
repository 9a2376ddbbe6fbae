// The suite-wide secret scan itself (docs/reliability.md, "Secret scan"): what it finds in a text,
// what it lets through on purpose, that the server-side copy of answers sees every kind of answer
// (streamed, gzip, WebSocket frames), and that a gateway's outputs, in this process and in a child
// process, reach it. The outputs made here hold a secret on purpose: each test takes out the
// findings it made (takeFindings), so that the file's own verdict stays clean.
import { createHash } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import { startFakeUpstream } from '../src/dev/fake-upstream.js';
import { adminTag } from '../src/console-server/cookie.js';
import { digestKey } from '../src/keys.js';
import { type TappedAnswer, tapServer } from './helpers/answer-tap.js';
import { startChildGateway } from './helpers/child-gateway.js';
import { startGateway } from './helpers/gateway.js';
import { answerHits, logLineFindings, registerPoolKey, registerSecret } from './helpers/log-capture.js';
import { findings, readings, registerSecret as registerAdminToken, scanText, takeFindings } from './helpers/secret-scan.js';

const SECRET = 'sk-scan-Qm3Tz8Lw1Kp5Vn7Rx2Yb4Hc6Jd0Fg9';
registerPoolKey(SECRET, 'the scan test pool key');

const forms = (text: string) => readings(Buffer.from(text, 'utf8')).flatMap((r) => scanText(r.text).map((h) => h.form));

describe('matching', () => {
  it('finds a secret whole and names it by its label, never by its value', () => {
    const [hit] = scanText(`before ${SECRET} after`);
    expect(hit).toMatchObject({ label: 'the scan test pool key', kind: 'pool key', form: 'raw whole', at: 7 });
  });

  it('finds any 12 characters of it, and not 11', () => {
    expect(scanText(`x${SECRET.slice(10, 22)}x`).map((h) => h.form)).toEqual(['raw fragment of 12']);
    expect(scanText(`x${SECRET.slice(10, 21)}x`)).toEqual([]);
    expect(scanText(`${SECRET.slice(0, 20)}***${SECRET.slice(-4)}`).map((h) => h.form)).toEqual(['raw fragment of 20']);
  });

  it('finds a made-up key of words whole only: its pieces are words other text holds too', () => {
    registerSecret('sk-pool-attack7-alias-1', 'a made-up key');
    expect(scanText('x-conformance-op: 1:listModels {"id":"attack7-alias-only"}')).toEqual([]);
    expect(scanText('see sk-pool-attack7-alias-1').map((h) => `${h.label}: ${h.form}`)).toEqual(['a made-up key: raw whole']);
    expect(scanText(Buffer.from('sk-pool-attack7-alias-1').toString('base64')).map((h) => `${h.label}: ${h.form}`)).toEqual(['a made-up key: base64 whole']);
    expect(scanText(digestKey('sk-pool-attack7-alias-1').slice(0, 12)).map((h) => `${h.label}: ${h.form}`)).toEqual(['a made-up key: sha256 hex fragment of 12']);
  });

  it('of a key with a random part, counts a fragment holding 8 characters of that part', () => {
    // `sk-scan-` and 4 of the random part: 12 characters, not a finding; 8 of it: a finding.
    expect(scanText(`x${SECRET.slice(0, 12)}x`)).toEqual([]);
    expect(scanText(`x${SECRET.slice(4, 16)}x`).map((h) => h.form)).toEqual(['raw fragment of 12']);
  });

  it('passes the masked form (the last 4 characters)', () => {
    expect(scanText(`key sk-***${SECRET.slice(-4)} refused`)).toEqual([]);
  });

  it('finds it base64 encoded at each of the 3 alignments, base64url too, inside longer encoded text', () => {
    for (const pad of ['', 'a', 'ab']) {
      const encoded = Buffer.from(`${pad}${SECRET}{"more":1}`).toString('base64');
      expect(forms(`token=${encoded}`), pad).toEqual([expect.stringMatching(/^base64 (whole|fragment of \d+)$/)]);
      expect(forms(encoded.replaceAll('+', '-').replaceAll('/', '_')), pad).toEqual([expect.stringMatching(/^base64 (whole|fragment of \d+)$/)]);
    }
  });

  it('finds the digests the gateway keeps a key under (SHA-256 hex, as digestKey writes it) and their base64', () => {
    expect(forms(`"digest":"${digestKey(SECRET)}"`)).toEqual(['sha256 hex whole']);
    expect(forms(createHash('sha256').update(SECRET).digest('base64'))).toEqual([expect.stringMatching(/^sha256 base64(url)? whole$/)]);
    expect(forms(`${digestKey(SECRET).slice(20, 36)}`)).toEqual(['sha256 hex fragment of 16']);
  });

  it('finds it JSON-escaped, percent-encoded and gzipped', () => {
    const escaped = JSON.stringify(SECRET).replace(/[a-z]/g, (c) => `\\u00${c.charCodeAt(0).toString(16)}`);
    expect(forms(escaped)).toContain('raw whole');
    expect(forms(encodeURIComponent(`k=${SECRET}`).replace(/s/g, '%73'))).toContain('raw whole');
    expect(readings(gzipSync(`{"x":"${SECRET}"}`)).flatMap((r) => scanText(r.text).map((h) => `${r.name}: ${h.form}`))).toContain('gunzipped body: raw whole');
  });

  it('spells a 32-byte KEYRELAY_SECRET both ways: given in hex, found in base64', () => {
    const hex = 'c4'.repeat(32);
    registerSecret(hex, 'a test KEYRELAY_SECRET');
    expect(scanText(Buffer.from(hex, 'hex').toString('base64')).map((h) => `${h.label}: ${h.form}`)).toEqual(['a test KEYRELAY_SECRET: as base64 bytes whole']);
  });
});

describe('log lines', () => {
  it('name the line and its message, unless the message is where the secret stands', () => {
    expect(logLineFindings(JSON.stringify({ msg: 'upstream refused', detail: SECRET }), 3)).toEqual([
      'log line 3 (upstream refused): the scan test pool key (pool key), raw whole, in the line at 36',
    ]);
    expect(logLineFindings(JSON.stringify({ msg: `refused ${SECRET.slice(0, 20)}` }), 4)).toEqual([
      'log line 4 (message not shown): the scan test pool key (pool key), raw fragment of 20, in the line at 16',
    ]);
  });

  it('are read JSON-unescaped too, and any sk- token in them is a finding', () => {
    const escaped = JSON.stringify({ msg: 'x', key: SECRET }).replace('Qm3T', '\\u0051m3T');
    expect(logLineFindings(escaped, 1).map((f) => f.replace(/ at \d+$/, ''))).toEqual(['log line 1 (x): the scan test pool key (pool key), raw whole, in the line, unescaped']);
    expect(logLineFindings(JSON.stringify({ msg: 'x', key: 'sk-unregistered-123' }), 2)).toEqual(['log line 2 (x): an sk- token, at 18']);
  });
});

describe('what an answer may hold by design', () => {
  const key = `sk-kr-${'Ab3'.repeat(13)}Z`;

  it('the answer that created a user key shows that key, and only in that place', () => {
    const body = JSON.stringify({ id: 'key_1', userId: 'u1', prefix: key.slice(0, 10), key });
    expect(answerHits('POST /admin/users/u1/keys', 201, 'HTTP/1.1 201 Created', body)).toEqual([]);
    // The same key anywhere else in it, or its digest, is still a finding.
    expect(answerHits('POST /admin/users/u1/keys', 201, `HTTP/1.1 201 Created\r\nx-echo: ${key}`, body).map((h) => h.form)).toEqual(['raw whole']);
    expect(answerHits('POST /admin/users/u1/keys', 201, 'HTTP/1.1 201 Created', JSON.stringify({ ...JSON.parse(body), digest: digestKey(key) })).map((h) => h.form)).toEqual(['sha256 hex whole']);
    // The same body from another route holds no key by design.
    expect(answerHits('POST /admin/users/u1/other', 201, 'HTTP/1.1 201 Created', body).map((h) => h.label)).toEqual(['user key key_1 of user u1']);
    // And any other answer that shows it is a finding.
    expect(answerHits('GET /admin/users/u1/keys', 200, 'HTTP/1.1 200 OK', JSON.stringify({ data: [{ key }] })).map((h) => h.label)).toEqual(['user key key_1 of user u1']);
  });

  it('a secret longer than the created key is found where it goes past it', () => {
    registerSecret(`${key}0`, 'a near miss of the key');
    expect(answerHits('POST /admin/users/u1/keys', 201, 'HTTP/1.1 201 Created', JSON.stringify({ id: 'key_1', userId: 'u1', key }))).toEqual([]);
    expect(answerHits('POST /admin/users/u1/keys', 201, 'HTTP/1.1 201 Created', JSON.stringify({ id: 'key_1', userId: 'u1', key, other: `${key}0` })).map((h) => h.label)).toEqual(['a near miss of the key']);
  });

  it('an answer may echo a secret its own request sent whole, in its body only', () => {
    const sent = JSON.stringify({ model: SECRET, messages: [] });
    const body = JSON.stringify({ id: 'chatcmpl-1', model: SECRET });
    expect(answerHits('POST /v1/chat/completions', 200, 'HTTP/1.1 200 OK', body, sent)).toEqual([]);
    expect(answerHits('POST /v1/chat/completions', 200, `HTTP/1.1 200 OK\r\nx-model: ${SECRET}`, body, sent).map((h) => h.form)).toEqual(['raw whole']);
    expect(answerHits('POST /v1/chat/completions', 200, 'HTTP/1.1 200 OK', body).map((h) => h.form)).toEqual(['raw whole']);
    // A piece sent is no licence for the whole, nor for a digest; an encoded form sent may come back so.
    expect(answerHits('POST /v1/chat/completions', 200, 'HTTP/1.1 200 OK', body, SECRET.slice(0, 30)).map((h) => h.form)).toEqual(['raw whole']);
    const encoded = Buffer.from(SECRET).toString('base64');
    expect(answerHits('POST /v1/files', 200, 'HTTP/1.1 200 OK', `{"name":"${encoded}"}`, `{"name":"${encoded}"}`)).toEqual([]);
    expect(answerHits('POST /v1/chat/completions', 200, 'HTTP/1.1 200 OK', digestKey(SECRET), sent).map((h) => h.form)).toEqual(['sha256 hex whole']);
  });

  it("the console's session answers show their CSRF token and set their cookie, nothing more", () => {
    const csrf = 'Zr7Lp2Qm9Xw4Kt6Vb1Nc8Hd3Jf5Gs0Ay7Ue2Io4Pa1';
    const cookie = 'Mq5Tz1Lw8Kp3Vn6Rx9Yb2Hc4Jd7Fg0Se5Ua8Wi1Oq3';
    const head = `HTTP/1.1 200 OK\r\nset-cookie: keyrelay_session=${cookie}; HttpOnly; SameSite=Strict; Path=/`;
    registerAdminToken('an admin token for the scan test', 'the scan test admin token', 'admin token');
    expect(answerHits('POST /console/api/session', 200, head, JSON.stringify({ role: 'admin', user: null, csrfToken: csrf }))).toEqual([]);
    // An admin session keeps a tag of the admin token keyed by the cookie: that is a secret too.
    expect(scanText(adminTag(cookie, 'an admin token for the scan test')).map((h) => `${h.label}: ${h.form}`)).toEqual(['admin tag of a console session: raw whole']);
    expect(answerHits('GET /console/api/me', 200, 'HTTP/1.1 200 OK', JSON.stringify({ data: [csrf, cookie] })).map((h) => h.label).sort()).toEqual(['console CSRF token (admin session)', 'console session cookie']);
  });
});

describe('the copy of answers taken at the server', () => {
  it('has the status line, the headers and the body of a streamed, a gzip and a WebSocket answer', async () => {
    const copies: TappedAnswer[] = [];
    const server = createServer((req, res) => {
      if (req.url === '/gzip') {
        res.writeHead(200, { 'content-encoding': 'gzip', 'x-note': 'zipped' }).end(gzipSync(`{"hidden":"${SECRET}"}`));
        return;
      }
      res.setHeader('x-set', 'before');
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      // Cut mid-secret across two writes, each sent as its own chunk.
      res.write(`data: ${SECRET.slice(0, 15)}`);
      setTimeout(() => res.end(`${SECRET.slice(15)}\n\n`), 20);
    });
    const wss = new WebSocketServer({ noServer: true });
    server.on('upgrade', (req, socket, head) => wss.handleUpgrade(req, socket, head, (ws) => ws.send(`frame ${SECRET}`, () => ws.close())));
    tapServer(server, 'test server', (answer) => copies.push(answer));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

    expect(await (await fetch(`${base}/stream`)).text()).toBe(`data: ${SECRET}\n\n`);
    await (await fetch(`${base}/gzip`)).text();
    const ws = new WebSocket(base.replace('http', 'ws'));
    await new Promise((resolve) => ws.once('close', resolve));
    await new Promise((resolve) => setTimeout(resolve, 50));
    await new Promise<void>((resolve) => server.close(() => resolve()));

    const stream = copies.find((c) => c.target === '/stream')!;
    expect(stream.head).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(stream.head).toContain('x-set: before');
    expect(stream.head).toContain('content-type: text/event-stream');
    expect(scanText(stream.body.toString()).map((h) => h.form)).toEqual(['raw whole']);
    const gzip = copies.find((c) => c.target === '/gzip')!;
    expect(readings(gzip.body).flatMap((r) => scanText(r.text).map((h) => `${r.name}: ${h.form}`))).toEqual(['gunzipped body: raw whole']);
    const socket = copies.find((c) => c.websocket)!;
    expect(socket.status).toBe(101);
    expect(socket.body.toString()).toContain(`frame ${SECRET}\n`);
  });
});

describe("a gateway's outputs reach the scan", () => {
  const NAME = 'Wq4Er8Ty2Ui6Op0As3Df7Gh1Jk5';
  registerSecret(NAME, 'a secret the test sends as a user name');
  const mine = (f: string) => f.includes('a secret the test sends as a user name');

  afterAll(() => {
    expect(findings().filter(mine)).toEqual([]);
  });

  it('in this process: every answer, the secrets given by admin requests, and the reads made as it closes', async () => {
    const fake = await startFakeUpstream();
    const gateway = await startGateway({ env: { KEYRELAY_UPSTREAM_URL: fake.baseUrl, OPENAI_API_KEYS: `sk-scan-gw-${'7Yh2'.repeat(6)}`, KEYRELAY_SECRET: 'e3'.repeat(32) } });
    await gateway.admin('POST', '/users', { id: 'named', name: NAME });
    const port = gateway.port;
    // The answer to the request that sent it may echo it; the next answer to show it is a finding.
    expect(takeFindings(mine)).toEqual([]);
    expect((await gateway.admin('GET', '/users/named')).status).toBe(200);
    expect(takeFindings(mine)).toEqual([expect.stringMatching(`^gateway :${port}, answer to GET /admin/users/named \\(200\\): a secret the test sends as a user name \\(secret\\), raw whole, in body at \\d+$`)]);
    // A pool key and a proxy password given at run time are registered from the admin request.
    const runtimeKey = `sk-scan-runtime-${'Pq7W'.repeat(6)}`;
    const proxyPassword = 'Hn4Jm8Kl2Zx6Cv';
    const added = await gateway.admin('POST', '/upstreams/default/keys', { id: 'late', key: runtimeKey, proxy: `http://ops:${proxyPassword}@127.0.0.1:9` });
    expect(added.status).toBe(201);
    expect(scanText(`${runtimeKey} ${proxyPassword}`).map((h) => h.label)).toEqual(['pool key late sent to POST /admin/upstreams/default/keys', 'password of a URL sent to POST /admin/upstreams/default/keys (/proxy)']);
    await gateway.close();
    // The user list read before closing showed it again.
    expect(takeFindings(mine)).toEqual([expect.stringMatching(`^gateway :${port}, answer to GET /admin/users \\(200\\): a secret the test sends as a user name \\(secret\\), raw whole, in body at \\d+$`)]);
    await fake.close();
  });

  it('in a child process: its answers, read from the file it writes', async () => {
    const fake = await startFakeUpstream();
    const child = await startChildGateway({ KEYRELAY_UPSTREAM_URL: fake.baseUrl, OPENAI_API_KEYS: `sk-scan-child-${'3Kd9'.repeat(6)}` });
    const res = await fetch(`${child.url}/admin/users`, {
      method: 'POST',
      headers: { authorization: 'Bearer test-admin-token-0123456789', 'content-type': 'application/json' },
      body: JSON.stringify({ id: 'named', name: Buffer.from(NAME).toString('base64') }),
    });
    expect(res.status).toBe(201);
    await child.stop();
    expect(takeFindings(mine).map((f) => f.replace(/\d+/, 'N').replace(/at \d+$/, 'at N'))).toEqual([
      'gateway process N, answer to GET /admin/users (200): a secret the test sends as a user name (secret), base64 whole, in body at N',
    ]);
    await fake.close();
  });
});
