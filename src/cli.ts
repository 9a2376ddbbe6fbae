// The keyrelay command line: `serve`, and the admin commands, which talk to the admin API of a
// running gateway. main() resolves the exit code instead of exiting, so tests can call it with
// their own streams and environment.
import { type ParseArgsConfig, parseArgs } from 'node:util';
import { AdminClient, DEFAULT_URL, gatewayUrl } from './cli/admin-client.js';
import { type CliIo, type Command, type Context, type OptionValues, CliError, UsageError } from './cli/command.js';
import { COMMANDS } from './cli/commands.js';
import { printable } from './cli/format.js';
import { GLOBAL_OPTIONS, HELP_OPTION, commandHelp, generalHelp, groupHelp, usageLine } from './cli/help.js';

export type { CliIo } from './cli/command.js';

const GROUPS = new Set(COMMANDS.filter((c) => c.path.length > 1).map((c) => c.path[0]));
const VALUE_OPTIONS = new Set(Object.entries(GLOBAL_OPTIONS).filter(([, o]) => o.type === 'string').map(([name]) => `--${name}`));

function isPrefixOfCommand(words: readonly string[]): boolean {
  return COMMANDS.some((c) => words.every((w, i) => c.path[i] === w));
}

/** Splits `[--url U] users create alice --name A` into the command words and everything else. */
function splitCommand(argv: readonly string[]): { words: string[]; rest: string[]; unknown?: string } {
  const words: string[] = [];
  const rest: string[] = [];
  let unknown: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const token = argv[i] ?? '';
    if (token === '--') {
      rest.push(...argv.slice(i));
      break;
    }
    if (token.startsWith('-')) {
      rest.push(token);
      // A global option's value before the command must not be taken for a command word.
      if (unknown === undefined && VALUE_OPTIONS.has(token) && i + 1 < argv.length) rest.push(argv[++i] ?? '');
    } else if (unknown === undefined && isPrefixOfCommand([...words, token])) {
      words.push(token);
    } else {
      // The first word that names no command: the rest are the command's arguments.
      unknown ??= token;
      rest.push(token);
    }
  }
  return { words, rest, unknown };
}

function parse(command: Command, rest: string[]): { args: string[]; values: OptionValues } {
  const options: ParseArgsConfig['options'] = {};
  // serve takes its settings from the environment; only the admin commands take --url and the rest.
  const global = command.admin === false ? { help: HELP_OPTION } : GLOBAL_OPTIONS;
  for (const [name, spec] of Object.entries({ ...global, ...command.options })) {
    options[name] = { type: spec.type, ...('short' in spec && spec.short ? { short: spec.short } : {}) };
  }
  let parsed: { values: OptionValues; positionals: string[] };
  try {
    parsed = parseArgs({ args: rest, options, allowPositionals: true, strict: true }) as { values: OptionValues; positionals: string[] };
  } catch (err) {
    throw new UsageError(parseProblem(err));
  }
  if (parsed.values.help !== true) {
    const missing = command.args[parsed.positionals.length];
    if (missing) throw new UsageError(`missing ${missing}`);
    const extra = parsed.positionals[command.args.length];
    // A key pasted where it does not belong is not echoed back (commands read keys from standard input).
    if (extra !== undefined) throw new UsageError(/^(sk|sess)-/.test(extra) ? 'unexpected argument (not shown: it looks like a key; keys are read from standard input)' : `unexpected argument "${extra}"`);
  }
  return { args: parsed.positionals, values: parsed.values };
}

/** node:util's messages are long and about itself; say what was wrong in a few words. */
function parseProblem(err: unknown): string {
  const code = (err as { code?: string }).code;
  const quoted = /'(-[^' ]+)/.exec((err as Error).message)?.[1] ?? '';
  const option = quoted.split('=')[0];
  if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') return `unknown option ${option}`;
  if (code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') {
    const message = (err as Error).message;
    if (message.includes('does not take')) return `option ${option} takes no value`;
    if (message.includes('ambiguous')) return `option ${option} needs a value; write ${option}=-x for one that starts with "-"`;
    return `option ${option} needs a value`;
  }
  if (code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') return 'unexpected argument';
  return (err as Error).message;
}

function adminClient(values: OptionValues, env: CliIo['env']): AdminClient {
  const token = typeof values.token === 'string' ? values.token : env.KEYRELAY_ADMIN_TOKEN;
  if (!token) {
    throw new CliError(
      'no admin token',
      2,
      'Set KEYRELAY_ADMIN_TOKEN to the token the gateway was started with (export KEYRELAY_ADMIN_TOKEN=...), or pass --token.',
    );
  }
  const url = typeof values.url === 'string' ? values.url : env.KEYRELAY_URL || DEFAULT_URL;
  return new AdminClient(gatewayUrl(url), token);
}

async function dispatch(argv: string[], io: CliIo): Promise<number> {
  const out = (text: string): void => void io.stdout.write(text);
  const help = (text: string): number => {
    out(text);
    return 0;
  };
  const misuse = (problem: string, usage: string): number => {
    io.stderr.write(`keyrelay: ${printable(problem)}\n${usage}`);
    return 2;
  };
  if (argv[0] === 'help') argv = [...argv.slice(1), '--help'];
  const { words, rest, unknown } = splitCommand(argv);
  const command = COMMANDS.find((c) => c.path.length === words.length && c.path.every((w, i) => words[i] === w));
  const wantsHelp = rest.includes('--help') || rest.includes('-h');

  if (!command) {
    const group = words[0];
    if (group !== undefined && GROUPS.has(group)) {
      if (wantsHelp) return help(groupHelp(group, COMMANDS));
      return misuse(unknown ? `unknown command "${group} ${unknown}"` : `which ${group} command?`, groupHelp(group, COMMANDS));
    }
    if (argv.length === 0 || wantsHelp) return help(generalHelp(COMMANDS));
    return misuse(unknown ? `unknown command "${unknown}"` : 'missing command', 'usage: keyrelay <command> [options]; "keyrelay help" lists the commands\n');
  }

  try {
    const { args, values } = parse(command, rest);
    if (values.help === true) return help(commandHelp(command));
    let client: AdminClient | undefined;
    const ctx: Context = {
      io,
      json: values.json === true,
      admin: () => (client ??= adminClient(values, io.env)),
      out,
    };
    return await command.run(ctx, args, values);
  } catch (err) {
    if (err instanceof UsageError) return misuse(err.message, `${usageLine(command)}\n`);
    throw err;
  }
}

const processIo = (): CliIo => ({ stdout: process.stdout, stderr: process.stderr, env: process.env, stdin: process.stdin });

/**
 * Runs one keyrelay command. Resolves the exit code: 0 done, 1 failed, 2 misused; -1 when the
 * process must keep running (serve).
 */
export async function main(argv: string[], io: CliIo = processIo()): Promise<number> {
  try {
    return await dispatch(argv, io);
  } catch (err) {
    if (err instanceof CliError) {
      io.stderr.write(`keyrelay: ${printable(err.message)}\n${err.hint ? `${err.hint}\n` : ''}`);
      return err.exitCode;
    }
    io.stderr.write(`keyrelay: unexpected error: ${printable(err instanceof Error ? err.message : String(err))}\n`);
    return 1;
  }
}
