// Imported first by the child gateway entries (gateway-process.ts, serve-process.ts, and so by
// every worker `keyrelay serve` forks): a copy of each answer any server of the process sends goes,
// one JSON line each, to a file in TEST_ANSWER_DIR, which the parent's secret scan reads
// (log-capture.ts, drainAnswerDirs), and so does each admin request's body (the secrets given at
// run time). A file per process: workers never interleave their lines.
import { appendFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { join } from 'node:path';
import { type TappedAnswer, type TappedRequest, isAdminChange, tapRequest, tapResponse, tapUpgrade } from './answer-tap.js';

const dir = process.env.TEST_ANSWER_DIR;

function sink(answer: TappedAnswer | (TappedRequest & { request: true })): void {
  const sent = 'sent' in answer ? answer.sent?.toString('base64') : undefined;
  const line = JSON.stringify({ ...answer, body: answer.body.toString('base64'), sent });
  appendFileSync(join(dir!, `answers-${process.pid}.jsonl`), `${line}\n`);
}

if (dir) {
  // Every server of this process is the gateway's: wrap the events that hand out a response or
  // an upgraded socket, before any listener sees them.
  for (const proto of [http.Server.prototype, https.Server.prototype] as any[]) {
    const emit = proto.emit as (...args: unknown[]) => boolean;
    proto.emit = function (this: any, event: string, ...args: any[]) {
      const name = `gateway process ${process.pid}`;
      if (event === 'request') {
        if (isAdminChange(args[0])) tapRequest(args[0], (request) => sink({ ...request, request: true }));
        tapResponse(name, args[0], args[1], sink);
      }
      else if (event === 'upgrade' && /\bwebsocket\b/i.test(String(args[0]?.headers?.upgrade ?? ''))) tapUpgrade(name, args[0], args[1], sink);
      return emit.call(this, event, ...args);
    };
  }
}
