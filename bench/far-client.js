// A client far from the upstream, behind an HTTP CONNECT proxy, that opens a new connection for
// every request (a curl command): time to the first streamed byte through keyrelay against going
// direct through the same proxy, after idle gaps of 0, 15 and 60 s (docs/performance.md).
//
//   npm run build && node bench/far-client.js [--gaps 0,15,60] [--samples 3] [--delay 50] [--json PATH]
//
// Everything runs on 127.0.0.1: an https upstream (a certificate made by openssl, trusted by
// keyrelay through NODE_EXTRA_CA_CERTS) that streams SSE events and keeps an idle connection 60 s
// as OpenAI does, and a CONNECT proxy between the client side and the upstream whose far leg
// delays every chunk `--delay` ms each way (and its TCP connect to the upstream one round trip).
// keyrelay and the client are on the near side, as on a LAN. The direct client does what curl
// does: CONNECT, TLS with no session kept, the request. keyrelay runs twice, with its defaults
// and with `upstreamConnections.warm: false`, each a `keyrelay serve` on its in-memory store.
// It is bound by latency, not CPU: a busy machine moves it little.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { createServer as createHttpsServer, request as httpsRequest } from 'node:https';
import { connect as netConnect, createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { connect as tlsConnect } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { killAllNow, stopAll } from './lib/children.js';
import { machine } from './lib/machine.js';
import { startKeyrelay } from './lib/targets.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const progress = (line) => process.stderr.write(`far-client: ${line}\n`);

/** A certificate for 127.0.0.1, made by openssl (Node cannot make one). */
function makeCertificate(dir) {
  const key = join(dir, 'key.pem');
  const cert = join(dir, 'cert.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-keyout', key, '-out', cert, '-subj', '/CN=keyrelay far-client bench', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
  return { key: readFileSync(key, 'utf8'), cert: readFileSync(cert, 'utf8'), certFile: cert };
}

const CREATED = 1_750_000_000;
function sseEvent(delta, extra = {}) {
  const chunk = { id: 'chatcmpl-far', object: 'chat.completion.chunk', created: CREATED, model: 'gpt-4o-mini', choices: [{ index: 0, delta, finish_reason: null }], ...extra };
  return `data: ${JSON.stringify(chunk)}\n\n`;
}

/** The upstream: every chat call gets 8 SSE events 20 ms apart, the first at once; idle connections kept 60 s. */
async function startUpstream(tls) {
  const server = createHttpsServer({ key: tls.key, cert: tls.cert }, (req, res) => {
    req.resume();
    req.on('end', async () => {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      res.write(sseEvent({ role: 'assistant', content: '' }));
      for (let i = 0; i < 5; i++) {
        await delay(20);
        res.write(sseEvent({ content: ` word${i}` }));
      }
      res.write(`data: ${JSON.stringify({ id: 'chatcmpl-far', object: 'chat.completion.chunk', created: CREATED, model: 'gpt-4o-mini', choices: [], usage: { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 } })}\n\n`);
      res.end('data: [DONE]\n\n');
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: server.address().port };
}

/** Calls `write(chunk)` `ms` after each chunk arrived, in order. */
function delayed(ms, write) {
  return (chunk) => setTimeout(() => write(chunk), ms);
}

/**
 * An HTTP CONNECT proxy whose leg to the upstream is far: its TCP connect takes a round trip
 * (2 × delayMs) and every chunk takes delayMs each way. Counts the CONNECTs it served.
 */
async function startFarProxy(delayMs) {
  const state = { connects: 0 };
  const server = createNetServer((client) => {
    let head = Buffer.alloc(0);
    client.on('error', () => client.destroy());
    const onHead = (chunk) => {
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      client.removeListener('data', onHead);
      client.pause();
      const [method, target] = head.subarray(0, end).toString('latin1').split(' ');
      const rest = head.subarray(end + 4);
      if (method !== 'CONNECT') return client.end('HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 0\r\n\r\n');
      state.connects++;
      const colon = target.lastIndexOf(':');
      setTimeout(() => {
        const upstream = netConnect(Number(target.slice(colon + 1)), target.slice(0, colon));
        upstream.on('error', () => client.destroy());
        client.on('close', () => upstream.destroy());
        upstream.on('close', () => setTimeout(() => client.destroy(), delayMs));
        upstream.once('connect', () =>
          setTimeout(() => {
            client.write('HTTP/1.1 200 Connection established\r\n\r\n');
            if (rest.length) delayed(delayMs, (c) => upstream.write(c))(rest);
            client.on('data', delayed(delayMs, (c) => upstream.destroyed || upstream.write(c)));
            upstream.on('data', delayed(delayMs, (c) => client.destroyed || client.write(c)));
            client.resume();
          }, delayMs),
        );
      }, delayMs);
    };
    client.on('data', onHead);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: server.address().port, state };
}

const BODY = JSON.stringify({ model: 'gpt-4o-mini', stream: true, messages: [{ role: 'user', content: 'Say hello.' }] });

/** Resolves with the ms from the start to the first body byte, after reading the answer to its end. */
function firstByte(req, startedAt) {
  return new Promise((resolve, reject) => {
    req.on('error', reject);
    req.on('response', (res) => {
      let first;
      if (res.statusCode !== 200) reject(new Error(`status ${res.statusCode}`));
      res.on('data', () => (first ??= performance.now() - startedAt));
      res.on('end', () => resolve(first));
      res.on('error', reject);
    });
    req.end(BODY);
  });
}

/** Through keyrelay, on a new connection. */
function viaKeyrelay(target) {
  const url = new URL('/v1/chat/completions', target.origin);
  const startedAt = performance.now();
  const req = httpRequest(url, { method: 'POST', agent: false, headers: { authorization: target.authorization, 'content-type': 'application/json', connection: 'close' } });
  return firstByte(req, startedAt);
}

/** Direct through the proxy, as curl does it: CONNECT, a full TLS handshake, the request. */
function direct(proxyPort, upstreamPort, ca, poolKey) {
  const startedAt = performance.now();
  return new Promise((resolve, reject) => {
    const connect = httpRequest({ host: '127.0.0.1', port: proxyPort, method: 'CONNECT', path: `127.0.0.1:${upstreamPort}`, agent: false });
    connect.on('error', reject);
    connect.on('connect', (res, socket) => {
      if (res.statusCode !== 200) return reject(new Error(`CONNECT answered ${res.statusCode}`));
      const req = httpsRequest({
        host: '127.0.0.1',
        port: upstreamPort,
        method: 'POST',
        path: '/v1/chat/completions',
        headers: { authorization: `Bearer ${poolKey}`, 'content-type': 'application/json', connection: 'close' },
        createConnection: () => tlsConnect({ socket, ca, host: '127.0.0.1' }),
      });
      firstByte(req, startedAt).then(resolve, reject);
    });
    connect.end();
  });
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
};

async function main() {
  const { values } = parseArgs({ options: { gaps: { type: 'string' }, samples: { type: 'string' }, delay: { type: 'string' }, json: { type: 'string' } } });
  const gaps = (values.gaps ?? '0,15,60').split(',').map(Number);
  const samples = Number(values.samples ?? 3);
  const delayMs = Number(values.delay ?? 50);
  if (gaps.some((g) => !Number.isFinite(g) || g < 0) || !(samples >= 1) || !(delayMs >= 0)) throw new Error('--gaps: seconds, comma-separated; --samples: 1 or more; --delay: ms');
  const startedAt = new Date();
  const jsonPath = resolve(values.json ?? join(ROOT, 'bench/results/far-client.json'));
  const logDir = join(dirname(jsonPath), 'logs');
  mkdirSync(logDir, { recursive: true });

  const tls = makeCertificate(mkdtempSync(join(tmpdir(), 'keyrelay-far-')));
  const upstream = await startUpstream(tls);
  const proxy = await startFarProxy(delayMs);
  const poolKey = `sk-far-${randomBytes(16).toString('hex')}`;
  const adminToken = randomBytes(24).toString('base64url');
  const env = { KEYRELAY_PROXY: `http://127.0.0.1:${proxy.port}`, NODE_EXTRA_CA_CERTS: tls.certFile };
  const options = { upstream: { url: `https://127.0.0.1:${upstream.port}` }, poolKey, adminToken };
  // startKeyrelay writes an empty settings file into `dir`; the second one is pointed at its own.
  const noWarmSettings = join(logDir, 'far-no-warm.yaml');
  writeFileSync(noWarmSettings, 'upstreamConnections:\n  warm: false\n');
  const warm = await startKeyrelay({ ...options, id: 'far-keyrelay', dir: logDir, env });
  const noWarm = await startKeyrelay({ ...options, id: 'far-keyrelay-no-warm', dir: logDir, env: { ...env, KEYRELAY_CONFIG: noWarmSettings } });
  for (const t of [warm, noWarm]) if (t.status !== 'ok') throw new Error(`keyrelay: ${t.reason}`);
  // A first request to each, unmeasured: a process's very first one pays for compiling its code.
  await viaKeyrelay(warm);
  await viaKeyrelay(noWarm);

  const rows = [];
  for (const gap of gaps) {
    const figures = { keyrelay: [], keyrelayNoWarm: [], direct: [] };
    for (let i = 0; i < samples; i++) {
      await delay(gap * 1000);
      figures.keyrelay.push(await viaKeyrelay(warm));
      figures.keyrelayNoWarm.push(await viaKeyrelay(noWarm));
      figures.direct.push(await direct(proxy.port, upstream.port, tls.cert, poolKey));
      progress(`gap ${gap} s, sample ${i + 1}/${samples}: keyrelay ${figures.keyrelay.at(-1).toFixed(1)} ms, warm off ${figures.keyrelayNoWarm.at(-1).toFixed(1)} ms, direct ${figures.direct.at(-1).toFixed(1)} ms`);
    }
    const row = { gapS: gap, samples, keyrelayMs: median(figures.keyrelay), keyrelayNoWarmMs: median(figures.keyrelayNoWarm), directMs: median(figures.direct), figures };
    row.ratio = row.keyrelayMs / row.directMs;
    row.ratioNoWarm = row.keyrelayNoWarmMs / row.directMs;
    rows.push(row);
  }
  await stopAll();
  upstream.server.close();
  proxy.server.close();

  const result = { startedAt: startedAt.toISOString(), durationS: Math.round((Date.now() - startedAt.getTime()) / 1000), machine: machine(), delayMsEachWay: delayMs, proxyConnects: proxy.state.connects, target: 'keyrelay <= 0.4 x direct at every gap', rows };
  writeFileSync(jsonPath, `${JSON.stringify(result, null, 2)}\n`);
  const f = (x) => x.toFixed(0);
  const lines = [
    `far client: first streamed byte, median of ${samples}, new connection per request, proxy delaying ${delayMs} ms each way`,
    '',
    '| idle gap | direct through the proxy, ms | keyrelay, ms | keyrelay / direct | keyrelay, warm connection off, ms | warm off / direct |',
    '| ---: | ---: | ---: | ---: | ---: | ---: |',
    ...rows.map((r) => `| ${r.gapS} s | ${f(r.directMs)} | ${f(r.keyrelayMs)} | ${r.ratio.toFixed(2)} ${r.ratio <= 0.4 ? 'met' : 'missed'} | ${f(r.keyrelayNoWarmMs)} | ${r.ratioNoWarm.toFixed(2)} |`),
    '',
    `results: ${jsonPath}`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

process.once('exit', killAllNow);
main().catch(async (err) => {
  progress(`failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  await stopAll();
  process.exit(1);
});
