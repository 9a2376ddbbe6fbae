// Reads a secret from standard input: piped (`printf %s "$SECRET" | keyrelay ...`), or typed at a
// prompt when stdin is a terminal. Never from an argument, which would land in shell history and
// show in `ps`.
import { CliError, type CliIo } from './command.js';

const MAX_BYTES = 64 * 1024;

export async function readSecret(io: CliIo, prompt: string): Promise<string> {
  const stdin = io.stdin;
  if (!stdin) throw new CliError('no standard input to read the secret from', 2);
  if (stdin.isTTY) io.stderr.write(`${prompt}: `);
  let text = '';
  for await (const chunk of stdin) {
    text += typeof chunk === 'string' ? chunk : chunk.toString('utf8');
    if (text.length > MAX_BYTES) throw new CliError('the secret on standard input is too long', 2);
    // At a terminal, one line is the answer.
    if (stdin.isTTY && text.includes('\n')) break;
  }
  const secret = text.replace(/\r?\n$/, '').split(/\r?\n/)[0] ?? '';
  if (secret === '') {
    throw new CliError('no secret on standard input', 2, 'Pipe it in, for example: printf %s "$WEBHOOK_SECRET" | keyrelay webhooks add ...');
  }
  return secret;
}
