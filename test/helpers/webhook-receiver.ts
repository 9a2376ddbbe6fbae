// A real HTTP receiver of keyrelay's webhooks on port 0: it checks each delivery's signature with
// the secret it was given, keeps every delivery, and answers as the test scripts it (a status per
// delivery in turn, or no answer at all).
import { createHmac, timingSafeEqual } from 'node:crypto';
import { type IncomingMessage, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { captureOutput, registerSecret } from './log-capture.js';

export interface Received {
  headers: IncomingMessage['headers'];
  body: string;
  event: { id: string; type: string; time: string; data: Record<string, any> };
  /** The signature matched the body under the secret, and its time is within 5 minutes. */
  verified: boolean;
}

export interface WebhookReceiver {
  url: string;
  received: Received[];
  /** Statuses for the next deliveries, in turn; then 200. `hang` never answers. */
  script(...answers: Array<number | 'hang'>): void;
  /** Resolves once `predicate` holds for what was received (polls; a generous bound). */
  until(predicate: (received: Received[]) => boolean, ms?: number): Promise<void>;
  close(): Promise<void>;
}

export function verify(secret: string, header: string | undefined, body: string, nowSeconds = Math.floor(Date.now() / 1000)): boolean {
  const match = /^t=([0-9]+),v1=([0-9a-f]{64})$/.exec(header ?? '');
  if (!match) return false;
  const t = Number(match[1]);
  if (Math.abs(nowSeconds - t) > 300) return false;
  const expected = createHmac('sha256', secret).update(`${t}.${body}`).digest();
  return timingSafeEqual(expected, Buffer.from(match[2] as string, 'hex'));
}

export async function startWebhookReceiver(secret: string): Promise<WebhookReceiver> {
  registerSecret(secret, 'webhook signing secret');
  const received: Received[] = [];
  const answers: Array<number | 'hang'> = [];
  const hanging = new Set<ServerResponse>();
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const header = req.headers['x-keyrelay-signature'];
      // A delivery is an output of the gateway like an answer: the secret scan reads it too.
      captureOutput(`webhook delivery to ${req.url}`, Object.entries(req.headers).map(([n, v]) => `${n}: ${String(v)}`).join('\r\n'), Buffer.from(body, 'utf8'));
      received.push({ headers: req.headers, body, event: JSON.parse(body), verified: verify(secret, typeof header === 'string' ? header : undefined, body) });
      const answer = answers.shift() ?? 200;
      if (answer === 'hang') {
        hanging.add(res);
        return;
      }
      res.writeHead(answer, { 'content-type': 'text/plain' }).end(answer < 300 ? 'ok' : 'no');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hook`,
    received,
    script: (...next) => answers.push(...next),
    async until(predicate, ms = 15_000) {
      const end = Date.now() + ms;
      while (!predicate(received)) {
        if (Date.now() > end) throw new Error(`webhook receiver: not there after ${ms} ms; got ${JSON.stringify(received.map((r) => r.event))}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    async close() {
      for (const res of hanging) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
