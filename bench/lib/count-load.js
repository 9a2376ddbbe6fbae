// A fixed number of requests rather than a fixed time: for instruments that count what a process
// does per request (bench/instructions.js, bench/gc-starts.js).
import { Agent, request } from 'undici';
import { requestSpec } from './workloads.js';

/** Sends `count` requests of `workload`, `concurrency` at a time; throws on any answer but a 200. */
export async function sendRequests({ origin, authorization, workload, count, concurrency }) {
  const dispatcher = new Agent({ connections: concurrency });
  const { path, body } = requestSpec({ origin, authorization }, workload);
  let next = 0;
  const worker = async () => {
    while (next < count) {
      next += 1;
      const res = await request(`${origin}${path}`, {
        method: 'POST',
        headers: { authorization, 'content-type': 'application/json' },
        body,
        dispatcher,
      });
      await res.body.arrayBuffer();
      if (res.statusCode !== 200) throw new Error(`${origin}: answered ${res.statusCode}`);
    }
  };
  try {
    await Promise.all(Array.from({ length: concurrency }, worker));
  } finally {
    await dispatcher.close();
  }
}
