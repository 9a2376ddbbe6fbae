// Requests pipelined on one keep-alive connection are handed over by Node at once, but their
// answers wait in a queue for the ones before them to end. When the connection closes first,
// Node 20 destroys those requests yet never tells their answers: a queued answer gets neither
// 'finish' nor 'close' (see `abortIncoming` in Node's _http_server.js, "Abort socket._httpMessage ?").
// Everything that gives back what a request holds (its place under the cap of requests in flight,
// its upstream request, an object slot, its log line) waits for its answer's 'close', so a client
// that pipelines requests behind a slow one and hangs up would keep those for ever.
//
// This closes each such answer when its connection closes, as Node closes the answer the
// connection was writing.
import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

// Node's own way of closing an answer (emitCloseNT in _http_server.js); `_closed` backs `res.closed`.
function closeAnswer(res: ServerResponse): void {
  if (res.closed) return;
  res.destroyed = true;
  (res as unknown as { _closed: boolean })._closed = true;
  res.emit('close');
}

/** To be called for every request as Node hands it over, before anything listens on its answer. */
export function closeWithConnection(socket: Socket, res: ServerResponse): void {
  // An answer that has the connection already is closed by Node.
  if (res.socket !== null) return;
  const onClose = () => {
    // Given the connection in the meantime: Node closed it or will.
    if (res.socket === null) closeAnswer(res);
  };
  socket.once('close', onClose);
  // A keep-alive connection carries many requests: the listener goes with the answer.
  res.once('close', () => socket.off('close', onClose));
}
