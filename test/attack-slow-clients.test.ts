// Hostile review: over TLS, a client that opens a TCP connection and never starts (or never ends)
// its TLS handshake holds a slot of `inbound.maxConnections` for Node's default handshakeTimeout
// (120 s), not for `idleMs`: the gateway is waiting for the client, so the silence clock should cut it.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Config } from '../src/config.js';
import { type FakeUpstream, startFakeUpstream } from '../src/dev/fake-upstream.js';
import { type TestGateway, startGateway } from './helpers/gateway.js';

const INBOUND: Config['inbound'] = { maxConnections: 10_000, maxRequestsInFlight: 5000, maxEventLoopDelayMs: 0, maxEventLoopUtilization: 0, maxHeaderBytes: 64 * 1024, maxHeadersCount: 100, headersMs: 1000, idleMs: 1000, bodyMinBytesPerSecond: 1024, requestMs: 0, keepAliveMs: 2000 };
// Far past idleMs and headersMs, far short of Node's 120 s handshake timeout.
const CUT_WITHIN_MS = 8000;

let dir: string;
let fake: FakeUpstream;
let gateway: TestGateway;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'kr-attack-tls-'));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-subj', '/CN=keyrelay attack'], { stdio: 'ignore' });
  fake = await startFakeUpstream();
  gateway = await startGateway({
    env: { OPENAI_API_KEYS: 'sk-pool-attack-tls-1', KEYRELAY_UPSTREAM_URL: fake.baseUrl },
    config: { inbound: INBOUND, tls: { cert: join(dir, 'cert.pem'), key: join(dir, 'key.pem') } },
  });
});
afterAll(async () => {
  await gateway.close();
  await fake.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Opens a TCP connection to the TLS port, writes `bytes`, and resolves how long until the gateway closed it. */
function heldFor(bytes: Buffer): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const socket = connect(gateway.port, '127.0.0.1', () => {
      if (bytes.length > 0) socket.write(bytes);
    });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`the connection was still open after ${CUT_WITHIN_MS} ms`));
    }, CUT_WITHIN_MS);
    socket.on('data', () => {});
    socket.on('error', () => {});
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(Date.now() - started);
    });
  });
}

it('a TCP connection that never starts its TLS handshake is closed after idleMs', async () => {
  expect(await heldFor(Buffer.alloc(0))).toBeLessThan(CUT_WITHIN_MS);
});

it('a TLS ClientHello that stops after its first bytes is closed after idleMs', async () => {
  // A TLS record header announcing a 512-byte handshake message, then nothing.
  expect(await heldFor(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01]))).toBeLessThan(CUT_WITHIN_MS);
});
