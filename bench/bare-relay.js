// The bare relay: node:http in, undici.request out, bodies piped both ways, the client's key
// replaced by the pool key. No auth, no quotas, no logging: the floor any Node relay pays.
//
// UPSTREAM_URL=http://127.0.0.1:N UPSTREAM_KEY=sk-... node bench/bare-relay.js [--port N]
import { createServer } from 'node:http';
import { pipeline } from 'node:stream';
import { request } from 'undici';

const upstream = new URL(process.env.UPSTREAM_URL ?? 'http://127.0.0.1:8081').origin;
const authorization = `Bearer ${process.env.UPSTREAM_KEY ?? ''}`;
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'host']);

function forwardable(headers) {
  const out = {};
  for (const name in headers) if (!HOP_BY_HOP.has(name)) out[name] = headers[name];
  return out;
}

// A small body is read whole and sent in one write: cheaper than streaming it, so the floor is as
// low as a relay gets. Larger or unsized bodies stream through.
const WHOLE_BODY_LIMIT = 1024 * 1024;

function readWhole(req) {
  return new Promise((resolve, reject) => {
    const parts = [];
    req.on('data', (chunk) => parts.push(chunk));
    req.once('end', () => resolve(parts.length === 1 ? parts[0] : Buffer.concat(parts)));
    req.once('error', reject);
  });
}

const server = createServer(async (req, res) => {
  const abort = new AbortController();
  res.once('close', () => {
    if (!res.writableFinished) abort.abort();
  });
  const headers = forwardable(req.headers);
  headers.authorization = authorization;
  const length = Number(req.headers['content-length'] ?? Number.NaN);
  const hasBody = req.method !== 'GET' && req.method !== 'HEAD';
  try {
    const body = !hasBody ? undefined : length <= WHOLE_BODY_LIMIT ? await readWhole(req) : req;
    const answer = await request(upstream + req.url, { method: req.method, headers, body, signal: abort.signal });
    res.writeHead(answer.statusCode, forwardable(answer.headers));
    pipeline(answer.body, res, () => {});
  } catch {
    if (res.headersSent) return void res.destroy();
    res.writeHead(502, { 'content-type': 'application/json' }).end('{"error":{"message":"upstream unreachable"}}');
  }
});

const args = process.argv.slice(2);
const portArg = args.indexOf('--port');
server.listen({ host: '127.0.0.1', port: portArg === -1 ? 0 : Number(args[portArg + 1]) }, () => {
  const { port } = /** @type {import('node:net').AddressInfo} */ (server.address());
  if (process.send) process.send({ ready: true, port });
  else process.stdout.write(`bare relay listening on http://127.0.0.1:${port}\n`);
});
const stop = () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
};
process.once('SIGINT', stop);
process.once('SIGTERM', stop);
process.once('disconnect', stop);
