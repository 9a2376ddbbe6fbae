// A gateway error written straight on a socket, for the answers made where Node has no request
// object to answer through: a connection refused at the cap, a request whose headers never came
// whole or did not parse. Always OpenAI-shaped with a request id (README, "Errors"), and always
// the last thing said on the connection.
import { randomUUID } from 'node:crypto';
import { type OutgoingHttpHeaders, STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import { type GatewayError, errorBody } from '../errors.js';

// After the answer, what the client still sends is read and dropped for this long before the
// socket is destroyed: closing a socket with unread bytes sends a reset, and a reset can make the
// client's kernel drop the answer before the client has read it (RFC 9112, 9.6).
const LINGER_MS = 2000;

/** An HTTP/1.1 answer as bytes, the last on its connection: its own content-length and
 * `connection: close` replace any the headers name. */
export function rawAnswer(status: number, headers: OutgoingHttpHeaders, body: Buffer): Buffer {
  const head = [`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}`];
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || name === 'content-length' || name === 'connection') continue;
    for (const v of Array.isArray(value) ? value : [value]) head.push(`${name}: ${v}`);
  }
  head.push(`content-length: ${body.length}`, 'connection: close');
  return Buffer.concat([Buffer.from(`${head.join('\r\n')}\r\n\r\n`, 'latin1'), body]);
}

/** A gateway error as such an answer, under request id `id`. */
export function rawError(error: GatewayError, id: string = randomUUID()): Buffer {
  const headers = { ...error.headers, 'content-type': 'application/json', 'x-request-id': id, 'x-keyrelay-request-id': id };
  return rawAnswer(error.status, headers, Buffer.from(errorBody(error)));
}

/** On a socket nothing else reads: answers, drains what comes in for a moment, then closes. */
export function refuseOnSocket(socket: Socket, error: GatewayError): void {
  socket.on('error', () => socket.destroy());
  const linger = setTimeout(() => socket.destroy(), LINGER_MS).unref();
  socket.once('close', () => clearTimeout(linger));
  socket.end(rawError(error));
  socket.resume();
}

/** On a socket Node's HTTP parser still holds: answers, then closes once the answer is written. */
export function answerOnSocket(socket: Socket, error: GatewayError): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const linger = setTimeout(() => socket.destroy(), LINGER_MS).unref();
  socket.once('close', () => clearTimeout(linger));
  socket.end(rawError(error), () => socket.destroy());
}

/** On a socket whose last answer is written (or being written): closes it once that is out. */
export function closeAfterAnswer(socket: Socket): void {
  const linger = setTimeout(() => socket.destroy(), LINGER_MS).unref();
  socket.once('close', () => clearTimeout(linger));
  socket.end(() => socket.destroy());
}
