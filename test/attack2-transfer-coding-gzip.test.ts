// An upstream that compresses its answer as a transfer coding (`Transfer-Encoding: gzip, chunked`)
// rather than a content coding: undici takes the chunks off and hands on the gzip bytes; the
// answer guard (src/relay/answer-guard.ts) decodes only `content-encoding`, so it sees no
// compression, the mask finds no key in the compressed bytes, and the client gets them as the
// body: gunzip gives the pool key back. The gateway never offered a transfer coding (no `TE`), as it
// asks for `accept-encoding: identity`; the answer should be decoded and masked, or refused (502).
import { gunzipSync, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type RelayFixture, startRelay } from './helpers/relay-fixture.js';
import { openConnection } from './helpers/raw-socket.js';

const POOL_KEY = 'sk-proj-attack2TeQpB7mZt3RwY8cN1sHd4Ua6Ej5Gi2Fo9Kq0Vz7Tb3Wx8Cy1Pn6Ml4Jr5q';

let relay: RelayFixture;
beforeAll(async () => {
  relay = await startRelay(POOL_KEY);
});
afterAll(() => relay.close());

/** The body bytes of a chunked answer. */
function dechunk(raw: Buffer): Buffer {
  const parts: Buffer[] = [];
  let at = raw.indexOf('\r\n\r\n') + 4;
  for (;;) {
    const lineEnd = raw.indexOf('\r\n', at);
    const size = Number.parseInt(raw.subarray(at, lineEnd).toString('latin1'), 16);
    if (!(size > 0)) return Buffer.concat(parts);
    parts.push(raw.subarray(lineEnd + 2, lineEnd + 2 + size));
    at = lineEnd + 2 + size + 2;
  }
}

it('a gzip transfer coding does not carry the pool key past the mask', async () => {
  relay.fake.handle(() => ({
    headers: { 'content-type': 'application/json', 'transfer-encoding': 'gzip, chunked' },
    chunks: [gzipSync(JSON.stringify({ id: 'chatcmpl-1', echo: `your key is ${POOL_KEY}` }))],
  }));
  const body = JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hi' }] });
  const conn = await openConnection(relay.gateway.port);
  const chunks: Buffer[] = [];
  conn.socket.on('data', (c: Buffer) => chunks.push(c));
  conn.socket.write(
    `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${relay.userKey}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
  );
  await conn.closed;
  const raw = Buffer.concat(chunks);
  const status = Number(raw.subarray(9, 12).toString('latin1'));
  let recovered = '';
  if (status === 200 && raw.includes('chunked')) {
    try {
      recovered = gunzipSync(dechunk(raw)).toString('utf8');
    } catch {
      recovered = dechunk(raw).toString('utf8');
    }
  }
  expect(recovered.includes(POOL_KEY)).toBe(false);
});
