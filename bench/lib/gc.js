// A full garbage collection in a process started with --inspect=127.0.0.1:0, through its inspector
// (HeapProfiler.collectGarbage). Memory per stream is read after one, so that it counts what the
// streams hold rather than when V8 last collected or how much spare heap the process had.
import WebSocket from 'ws';

/** The inspector URLs that Node printed ("Debugger listening on ws://..."), one per process. */
export function inspectorUrls(text) {
  return [...text.matchAll(/Debugger listening on (ws:\/\/127\.0\.0\.1:\d+\/[\w-]+)/g)].map((m) => m[1]);
}

export function collectGarbage(url) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error('the inspector did not answer within 10 s'));
    }, 10_000);
    ws.once('open', () => ws.send(JSON.stringify({ id: 1, method: 'HeapProfiler.collectGarbage' })));
    ws.on('message', (data) => {
      if (JSON.parse(String(data)).id !== 1) return;
      clearTimeout(timer);
      ws.close();
      resolve();
    });
    ws.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}
