// The keyrelay command line.
import { serve } from './server.js';

export async function main(argv: string[]): Promise<number> {
  const [command] = argv;
  if (command === undefined || command === 'serve') {
    await serve();
    return -1;
  }
  process.stderr.write(`keyrelay: unknown command "${command}"\n`);
  return 2;
}
