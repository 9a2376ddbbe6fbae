// A GET the gateway makes on its own behalf (a batch's input or output file), on a given pool key,
// through that key's outbound route (proxies included) with the relay's timeouts.
import type { Readable } from 'node:stream';
import { request } from 'undici';
import type { Config } from '../config.js';
import type { PoolChoice } from '../pool/pool.js';
import { poolKeyHeaders } from './credentials.js';
import type { Outbound } from './outbound.js';
import { withApiVersion } from './upstream-target.js';

export interface UpstreamGet {
  status: number;
  body: Readable;
}

export async function upstreamGet(outbound: Outbound, timeouts: Config['timeouts'], choice: PoolChoice, rest: string): Promise<UpstreamGet> {
  const { key, upstream } = choice;
  const headers: Record<string, string> = { ...poolKeyHeaders(upstream, key), 'accept-encoding': 'identity' };
  // Only the file content GETs of batches come here: at Azure's classic API, under /openai with api-version.
  const azure = upstream.azure;
  const path = azure?.apiVersion === undefined ? rest : rest + withApiVersion('', azure.apiVersion);
  const answer = await request(upstream.origin + upstream.basePath + path, {
    method: 'GET',
    headers,
    dispatcher: outbound.dispatcherFor(choice),
    headersTimeout: timeouts.headersMs,
    bodyTimeout: timeouts.bodyIdleMs,
  });
  return { status: answer.statusCode, body: answer.body };
}
