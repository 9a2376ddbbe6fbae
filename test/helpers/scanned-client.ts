// An HTTP client that shows a test what the gateway really sent (no decompression, no redirect
// followed, headers as they came) and passes every answer through the pool key scan of
// log-capture.ts, which fails the test file if any held a pool key in any form.
import type { IncomingHttpHeaders } from 'node:http';
import { request } from 'node:http';
import { captureAnswer } from './log-capture.js';

export interface RawHttpAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  text: string;
}

export function scannedRequest(url: string, options: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<RawHttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: options.method ?? 'GET', headers: options.headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.once('error', reject);
      res.once('end', () => {
        const answer = { status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) };
        captureAnswer(`${options.method ?? 'GET'} ${url}`, { ...answer, sent: options.body });
        resolve({ ...answer, text: answer.body.toString('utf8') });
      });
    });
    req.once('error', reject);
    req.end(options.body);
  });
}
