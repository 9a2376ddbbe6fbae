// A small HTTP CONNECT proxy with Basic auth that can stall, for bench/chaos.js: while stalled it
// holds every new CONNECT unanswered and moves no byte through the tunnels already open (as a
// proxy that hangs, or a network that drops everything, would); on resume the held CONNECTs are
// tunnelled and the open tunnels flow again. Its own code rather than the `proxy` package: that
// one gives no handle on a tunnel's two sockets, which stalling needs.
import { createServer } from 'node:http';
import { connect } from 'node:net';

export async function startStallProxy({ username, password }) {
  const expected = `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
  const sockets = new Set();
  /** The sockets of open tunnels, which stall and resume. */
  const flowing = new Set();
  let stalled = false;
  /** CONNECTs that came while stalled, answered on resume. */
  let held = [];
  const counts = { connects: 0, refused: 0, heldConnects: 0, frozenTunnels: 0 };

  const track = (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
  };

  /** Copies `from` to `to` with backpressure, and nothing while stalled. */
  const forward = (from, to) => {
    flowing.add(from);
    from.once('close', () => flowing.delete(from));
    from.on('data', (chunk) => {
      if (!to.write(chunk) || stalled) from.pause();
    });
    to.on('drain', () => {
      if (!stalled) from.resume();
    });
    from.once('end', () => to.end());
    from.once('close', () => to.destroy());
  };

  const tunnel = (req, client, head) => {
    if (client.destroyed) return;
    const colon = req.url.lastIndexOf(':');
    const target = connect({ host: req.url.slice(0, colon), port: Number(req.url.slice(colon + 1)) });
    track(target);
    let open = false;
    target.once('connect', () => {
      open = true;
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length > 0) target.write(head);
      forward(client, target);
      forward(target, client);
      if (stalled) target.pause();
      else client.resume();
    });
    target.once('error', () => {
      // Once the tunnel is open its bytes are the upstream's: a reset there is a reset here.
      if (client.destroyed) return;
      if (!open) client.end('HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
      else client.resetAndDestroy();
    });
  };

  const server = createServer((_req, res) => {
    res.writeHead(405, { connection: 'close' }).end();
  });
  server.on('connect', (req, client, head) => {
    track(client);
    client.pause(); // until its tunnel is open: nothing is read before that
    counts.connects++;
    if (req.headers['proxy-authorization'] !== expected) {
      counts.refused++;
      client.end('HTTP/1.1 407 Proxy Authentication Required\r\nproxy-authenticate: Basic realm="chaos"\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
      return;
    }
    if (stalled) {
      counts.heldConnects++;
      held.push(() => tunnel(req, client, head));
      return;
    }
    tunnel(req, client, head);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));

  return {
    port: server.address().port,
    counts,
    /** Tunnels open now: each has two sockets flowing. */
    get openTunnels() {
      return flowing.size / 2;
    },
    stall() {
      stalled = true;
      for (const socket of flowing) socket.pause();
    },
    resume() {
      stalled = false;
      for (const socket of flowing) socket.resume();
      const waiting = held;
      held = [];
      for (const go of waiting) go();
    },
    async close() {
      stalled = false;
      held = [];
      for (const socket of sockets) socket.destroy();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
