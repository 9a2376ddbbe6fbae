// An https upstream for tests: TLS in front of a plain one (the fake upstream), with a certificate
// made by openssl for 127.0.0.1 and the names given, closing a connection idle for `idleMs` as a
// real upstream does (OpenAI after about a minute). It records every connection: when its
// handshake ended, whether it resumed a TLS session, the name it asked for (SNI), when it carried
// data and when it closed, so that a test can tell which connection served a request and when it
// had been opened.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { type Socket, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TLSSocket, createServer } from 'node:tls';

export interface FrontConnection {
  openedAt: number;
  resumed: boolean;
  /** The SNI name, or '' (an IP address is sent none). */
  servername: string;
  /** When each chunk from the client arrived. */
  dataAt: number[];
  closedAt?: number;
}

export interface TlsFront {
  port: number;
  /** PEM file of the certificate (trust it with NODE_EXTRA_CA_CERTS). */
  certFile: string;
  connections: FrontConnection[];
  /** Open connections that never carried a request: warm ones. */
  unused(servername?: string): FrontConnection[];
  close(): Promise<void>;
}

/** A self-signed certificate for 127.0.0.1 and `names`, made by openssl (Node cannot make one). */
export function makeCertificate(names: string[] = []): { key: string; cert: string; certFile: string } {
  const dir = mkdtempSync(join(tmpdir(), 'keyrelay-cert-'));
  const certFile = join(dir, 'cert.pem');
  const san = ['IP:127.0.0.1', ...names.map((n) => `DNS:${n}`)].join(',');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-keyout', join(dir, 'key.pem'), '-out', certFile, '-subj', '/CN=keyrelay test upstream', '-addext', `subjectAltName=${san}`], { stdio: 'ignore' });
  return { key: readFileSync(join(dir, 'key.pem'), 'utf8'), cert: readFileSync(certFile, 'utf8'), certFile };
}

export async function startTlsFront(target: number, options: { idleMs: number; names?: string[] }): Promise<TlsFront> {
  const { key, cert, certFile } = makeCertificate(options.names);
  const connections: FrontConnection[] = [];
  const sockets = new Set<Socket>();
  const server = createServer({ key, cert }, (secure: TLSSocket) => {
    const record: FrontConnection = {
      openedAt: Date.now(),
      resumed: secure.isSessionReused(),
      servername: typeof secure.servername === 'string' ? secure.servername : '',
      dataAt: [],
    };
    connections.push(record);
    sockets.add(secure);
    const plain = connect(target, '127.0.0.1');
    sockets.add(plain);
    secure.setTimeout(options.idleMs, () => secure.destroy());
    secure.on('data', () => record.dataAt.push(Date.now()));
    secure.on('close', () => {
      record.closedAt = Date.now();
      plain.destroy();
    });
    secure.on('error', () => plain.destroy());
    plain.on('error', () => secure.destroy());
    plain.on('close', () => secure.destroy());
    secure.pipe(plain).pipe(secure);
  });
  server.on('tlsClientError', () => {});
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  return {
    port: typeof address === 'object' && address ? address.port : 0,
    certFile,
    connections,
    unused: (servername) => connections.filter((c) => c.closedAt === undefined && c.dataAt.length === 0 && (servername === undefined || c.servername === servername)),
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
