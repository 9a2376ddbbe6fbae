// Reads a secret for the command line: the first line of a pipe (`printf %s "$KEY" | keyrelay …`),
// or typed at a prompt without echo. Never an argument: arguments land in shell history and in
// every `ps` listing.
import { CliError, type CliIo } from './command.js';

const MAX_BYTES = 64 * 1024;

export async function readSecret(io: CliIo, what: string): Promise<string> {
  const input = io.stdin;
  if (!input) throw new CliError(`${what}: nothing to read it from; pipe it in on standard input`, 2);
  const tty = input.isTTY === true;
  if (tty) {
    io.stderr.write(`${what} (not shown): `);
    input.setRawMode?.(true);
  }
  let text = '';
  try {
    for await (const chunk of input) {
      text += typeof chunk === 'string' ? chunk : chunk.toString('utf8');
      if (tty && /[\r\n\u0003\u0004]/.test(text)) break;
      if (text.length > MAX_BYTES) break;
    }
  } finally {
    if (tty) {
      input.setRawMode?.(false);
      io.stderr.write('\n');
    }
  }
  if (text.includes('\u0003')) throw new CliError('cancelled');
  const secret = (text.split(/\r?\n|\r|\u0004/, 1)[0] ?? '').trim();
  // A usage error (exit code 2), as a missing argument is.
  if (!secret) throw new CliError(`${what}: read nothing; pipe it in on standard input, as in: printf %s "$KEY" | keyrelay …`, 2);
  return secret;
}
