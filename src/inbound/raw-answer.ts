// A gateway error written straight on a socket, for the answers made where Node has no request
// object to answer through: a connection refused at the cap, a request whose headers never came
// whole or did not parse. Always OpenAI-shaped with a request id (CONTRACT.md, Errors), and always
// the last thing said on the connection.
import { randomUUID } from 'node:crypto';
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import { type GatewayError, errorBody } from '../errors.js';

// After the answer, what the client still sends is read and dropped for this long before the
// socket is destroyed: closing a socket with unread bytes sends a reset, and a reset can make the
// client's kernel drop the answer before the client has read it (RFC 9112, 9.6).
const LINGER_MS = 2000;

function answerBytes(error: GatewayError): string {
  const id = randomUUID();
  const body = errorBody(error);
  const lines = [
    `HTTP/1.1 ${error.status} ${STATUS_CODES[error.status] ?? ''}`,
    'content-type: application/json',
    `content-length: ${Buffer.byteLength(body)}`,
    `x-request-id: ${id}`,
    `x-keyrelay-request-id: ${id}`,
    'connection: close',
  ];
  for (const [name, value] of Object.entries(error.headers)) lines.push(`${name}: ${value}`);
  return `${lines.join('\r\n')}\r\n\r\n${body}`;
}

/** On a socket nothing else reads: answers, drains what comes in for a moment, then closes. */
export function refuseOnSocket(socket: Socket, error: GatewayError): void {
  socket.on('error', () => socket.destroy());
  const linger = setTimeout(() => socket.destroy(), LINGER_MS).unref();
  socket.once('close', () => clearTimeout(linger));
  socket.end(answerBytes(error));
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
  socket.end(answerBytes(error), () => socket.destroy());
}
