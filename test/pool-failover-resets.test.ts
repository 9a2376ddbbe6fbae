// docs/reliability.md, case 15: a connection reset before the request was written goes to another key, even
// for a POST; a reset after it was written is sent again only when that is safe (GET); once a
// byte has reached the client the request is never sent again, and the break becomes a stream error.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { type Socket, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer as createTlsServer } from 'node:tls';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { FAKE_TEXT } from '../src/dev/fake-openai-answers.js';
import { type FakeUpstream, sseEvents, startFakeUpstream } from '../src/dev/fake-upstream.js';
import { startChildGateway } from './helpers/child-gateway.js';
import { ADMIN_TOKEN } from './helpers/gateway.js';
import { registerSecret } from './helpers/log-capture.js';
import { CHAT, type PoolFixture, startPool } from './helpers/pool-fixture.js';

describe('in one gateway', () => {
  let pool: PoolFixture;
  beforeAll(async () => {
    pool = await startPool({ keys: ['a', 'b'] });
  });
  afterAll(() => pool.close());
  beforeEach(() => pool.fake.reset());

  it('sends a GET reset after it was written to another key', async () => {
    pool.script('a', { destroyBeforeHeaders: true });
    const answer = await pool.get('/models');
    expect(answer.status).toBe(200);
    expect(pool.keysUsed()).toEqual(['a', 'b']);
  });

  it('never sends a POST reset after it was written again: the upstream may be running it', async () => {
    for (const id of ['a', 'b']) pool.script(id, { destroyBeforeHeaders: true });
    const answer = await pool.post('/chat/completions', CHAT);
    expect(answer.status).toBe(502);
    expect(answer.json).toEqual({ error: { message: 'The upstream could not be reached.', type: 'server_error', param: null, code: 'upstream_unreachable' } });
    expect(pool.fake.requests).toHaveLength(1);
  });

  it('turns a reset after the first byte into a stream error, never a retry', async () => {
    const chunk = (content: string) => ({ id: 'chatcmpl-r', object: 'chat.completion.chunk', choices: [{ index: 0, delta: { content }, finish_reason: null }] });
    const events = sseEvents([chunk('Once'), chunk(' upon'), chunk(' a time')], { done: true });
    for (const id of ['a', 'b']) pool.script(id, { headers: { 'content-type': 'text/event-stream' }, chunks: events, destroyAfterChunks: 2 });
    const answer = await pool.post('/chat/completions', { ...CHAT, stream: true });
    expect(answer.status).toBe(200);
    expect(answer.text).toBe(
      `${events[0]}${events[1]}data: {"error":{"message":"The upstream stream broke off before it was complete.","type":"server_error","param":null,"code":"upstream_stream_interrupted"}}\n\n`,
    );
    expect(pool.fake.requests).toHaveLength(1);
  });
});

// An https upstream whose first connection is reset during the TLS handshake: nothing of the
// request can have left the gateway then. The gateway runs in a process of its own, which trusts
// the test's certificate through NODE_EXTRA_CA_CERTS.
describe('a reset before the request was written', () => {
  const KEYS = ['sk-pool-reset-one-0123456789abcdef', 'sk-pool-reset-two-0123456789abcdef'];
  let fake: FakeUpstream;
  let front: { port: number; close(): Promise<void> };
  let certFile: string;

  beforeAll(async () => {
    for (const key of KEYS) registerSecret(key);
    const dir = mkdtempSync(join(tmpdir(), 'keyrelay-reset-'));
    certFile = join(dir, 'cert.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-keyout', join(dir, 'key.pem'), '-out', certFile, '-subj', '/CN=keyrelay test upstream', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
    fake = await startFakeUpstream();
    front = await startTlsFront(fake.port, { key: readFileSync(join(dir, 'key.pem'), 'utf8'), cert: readFileSync(certFile, 'utf8') });
  });
  afterAll(async () => {
    await front.close();
    await fake.close();
  });

  it('goes to another key, even for a POST', async () => {
    // Round robin, not the prompt cache's choice, so that the first key is the one reset.
    const settings = join(mkdtempSync(join(tmpdir(), 'keyrelay-resets-')), 'keyrelay.yaml');
    writeFileSync(settings, 'pool:\n  cacheAffinity: false\n');
    const child = await startChildGateway({
      KEYRELAY_CONFIG: settings,
      OPENAI_API_KEYS: KEYS.join(','),
      KEYRELAY_UPSTREAM_URL: `https://127.0.0.1:${front.port}/v1`,
      NODE_EXTRA_CA_CERTS: certFile,
    });
    try {
      const admin = (method: string, path: string, body?: unknown) =>
        fetch(`${child.url}/admin${path}`, { method, headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
      expect((await admin('POST', '/users', { id: 'resets' })).status).toBe(201);
      const userKey = (await (await admin('POST', '/users/resets/keys', {})).json()).key as string;
      registerSecret(userKey);

      const res = await fetch(`${child.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${userKey}`, 'content-type': 'application/json' },
        body: JSON.stringify(CHAT),
      });
      expect(res.status).toBe(200);
      expect((await res.json()).choices[0].message.content).toBe(FAKE_TEXT);
      expect(fake.requests.map((r) => r.headers.authorization)).toEqual([`Bearer ${KEYS[1]}`]);
      const { data } = await (await admin('GET', '/upstreams')).json();
      expect(data[0].keys.map((k: { id: string; failures: number; state: string }) => [k.id, k.state, k.failures])).toEqual([
        ['env-1', 'active', 1],
        ['env-2', 'active', 0],
      ]);
    } finally {
      await child.stop();
    }
  });
});

/** TLS in front of a plain port; the first connection is reset as soon as it is accepted. */
async function startTlsFront(target: number, tls: { key: string; cert: string }): Promise<{ port: number; close(): Promise<void> }> {
  let resets = 1;
  const sockets = new Set<Socket>();
  const server = createTlsServer(tls, (secure) => {
    const plain = connect(target, '127.0.0.1');
    sockets.add(plain);
    secure.on('error', () => plain.destroy());
    plain.on('error', () => secure.destroy());
    secure.pipe(plain).pipe(secure);
  });
  server.on('connection', (raw: Socket) => {
    sockets.add(raw);
    if (resets > 0) {
      resets--;
      raw.resetAndDestroy();
    }
  });
  server.on('tlsClientError', () => {});
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  return {
    port: typeof address === 'object' && address ? address.port : 0,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
