// A GET the gateway makes on its own behalf (a batch's input or output file), on a given pool key,
// through that key's outbound route (proxies included) with the relay's timeouts.
import type { Readable } from 'node:stream';
import { request } from 'undici';
import type { Config } from '../config.js';
import type { PoolChoice } from '../pool/pool.js';
import type { Outbound } from './outbound.js';

export interface UpstreamGet {
  status: number;
  body: Readable;
}

export async function upstreamGet(outbound: Outbound, timeouts: Config['timeouts'], choice: PoolChoice, rest: string): Promise<UpstreamGet> {
  const { key, upstream } = choice;
  const headers: Record<string, string> = { authorization: `Bearer ${key.secret}`, 'accept-encoding': 'identity' };
  if (key.organization) headers['openai-organization'] = key.organization;
  if (key.project) headers['openai-project'] = key.project;
  const answer = await request(upstream.origin + upstream.basePath + rest, {
    method: 'GET',
    headers,
    dispatcher: outbound.dispatcherFor(choice),
    headersTimeout: timeouts.headersMs,
    bodyTimeout: timeouts.bodyIdleMs,
  });
  return { status: answer.statusCode, body: answer.body };
}
