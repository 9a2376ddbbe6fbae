// A web page's own server, on 127.0.0.1 and port 0, for browser tests that need a page of another
// origin than the gateway's. One server is two origins: http://127.0.0.1:<port> and
// http://localhost:<port> differ for the browser. It serves one HTML page at `/`, and the official
// `openai` SDK's ES modules under `/openai/` (the package has no dependencies, so a page imports
// `/openai/index.mjs` as it is). The default page puts the SDK's class at `window.OpenAI`.
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import { dirname, join, normalize, sep } from 'node:path';

export interface PageServer {
  port: number;
  /** `http://<host>:<port>` for host 127.0.0.1 or localhost: two origins of the same server. */
  origin(host: '127.0.0.1' | 'localhost'): string;
  close(): Promise<void>;
}

const SDK_DIR = dirname(createRequire(import.meta.url).resolve('openai'));

const SDK_PAGE = `<!doctype html><title>page</title><p>page</p>
<script type="module">import OpenAI from '/openai/index.mjs'; window.OpenAI = OpenAI;</script>`;

export async function startPageServer(html = SDK_PAGE): Promise<PageServer> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0] as string;
    if (path === '/') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(html);
      return;
    }
    const file = normalize(join(SDK_DIR, decodeURIComponent(path.slice('/openai/'.length))));
    if (!path.startsWith('/openai/') || !file.startsWith(SDK_DIR + sep) || !file.endsWith('.mjs')) {
      res.writeHead(404).end();
      return;
    }
    readFile(file).then(
      (bytes) => res.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8' }).end(bytes),
      () => res.writeHead(404).end(),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    port,
    origin: (host) => `http://${host}:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
