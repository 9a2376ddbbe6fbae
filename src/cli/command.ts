// What a command of the `keyrelay` tool is made of. Each command is one small object in a table
// (src/cli/commands.ts), so that later ones (`usage`, `upstreams`) are added by adding rows.
import type { AdminClient } from './admin-client.js';

/** Anything text can be written to: process.stdout, or a buffer in the tests. */
export interface TextSink {
  write(text: string): unknown;
}

/** Where a secret is read from: a pipe, or a terminal (then without echo). */
export interface SecretSource extends AsyncIterable<Buffer | string> {
  isTTY?: boolean;
  setRawMode?(raw: boolean): unknown;
}

export interface CliIo {
  stdout: TextSink;
  stderr: TextSink;
  env: Record<string, string | undefined>;
  /** Secrets (pool keys) come from here, never from an argument, which would land in shell history. */
  stdin?: SecretSource;
}

export interface OptionSpec {
  type: 'string' | 'boolean';
  /** The placeholder shown in help: `--rpm N`. */
  value?: string;
  help: string;
}

export type OptionValues = Record<string, string | boolean | undefined>;

export interface Context {
  io: CliIo;
  /** --json: print the API's JSON as it came instead of a table. */
  json: boolean;
  /** The admin API client; built on first use so that a missing token only matters to commands that need one. */
  admin(): AdminClient;
  out(text: string): void;
}

export interface Command {
  /** The words that name it: ['users', 'create']. */
  path: readonly string[];
  /** Required positional arguments, in order, as help shows them: ['<id>']. */
  args: readonly string[];
  options?: Readonly<Record<string, OptionSpec>>;
  summary: string;
  /** False for commands that do not talk to the admin API. */
  admin?: boolean;
  /** Resolves the exit code; -1 means the process keeps running (serve). */
  run(ctx: Context, args: readonly string[], options: OptionValues): Promise<number>;
}

/** A mistake in how the command was called: exit 2 with a short usage line. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** A failure to report as `keyrelay: <message>`, with an optional hint on the next line. */
export class CliError extends Error {
  override name = 'CliError';
  constructor(
    message: string,
    readonly exitCode = 1,
    readonly hint?: string,
  ) {
    super(message);
  }
}
