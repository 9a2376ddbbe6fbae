// Help and usage text, written from the command table so that it cannot drift from it.
import type { Command, OptionSpec } from './command.js';
import { DEFAULT_URL } from './admin-client.js';

type Option = OptionSpec & { short?: string };

export const HELP_OPTION: Option = { type: 'boolean', short: 'h', help: 'show help' };

/** Options every admin command takes, wherever they appear on the line. */
export const GLOBAL_OPTIONS: Readonly<Record<string, Option>> = {
  url: { type: 'string', value: 'URL', help: `the gateway (default: $KEYRELAY_URL, else ${DEFAULT_URL})` },
  token: { type: 'string', value: 'TOKEN', help: 'the admin token (default: $KEYRELAY_ADMIN_TOKEN, which is better: arguments show in ps)' },
  json: { type: 'boolean', help: "print the API's JSON instead of a table" },
  help: HELP_OPTION,
};

export function commandName(command: Command): string {
  return [...command.path, ...command.args].join(' ');
}

export function usageLine(command: Command): string {
  const options = command.admin === false ? '' : ' [options]';
  return `usage: keyrelay ${commandName(command)}${options}`;
}

function optionLines(options: Readonly<Record<string, Option>>): string[] {
  const rows = Object.entries(options).map(([name, spec]) => {
    const flag = `${spec.short ? `-${spec.short}, ` : ''}--${name}${spec.value ? ` ${spec.value}` : ''}`;
    return [flag, spec.help] as const;
  });
  const width = Math.max(...rows.map(([flag]) => flag.length));
  return rows.map(([flag, help]) => `  ${flag.padEnd(width)}  ${help}`);
}

function commandLines(commands: readonly Command[]): string[] {
  const width = Math.max(...commands.map((c) => commandName(c).length));
  return commands.map((c) => `  ${commandName(c).padEnd(width)}  ${c.summary}`);
}

export function generalHelp(commands: readonly Command[]): string {
  return [
    'keyrelay: a self-hosted relay gateway for the OpenAI API',
    '',
    'usage: keyrelay <command> [options]',
    '',
    'Commands:',
    ...commandLines(commands),
    `  ${'help [command]'.padEnd(Math.max(...commands.map((c) => commandName(c).length)))}  this help, or the options of one command`,
    '',
    'Options of every command but serve:',
    ...optionLines(GLOBAL_OPTIONS),
    '',
    'The commands talk to the admin API of a running gateway, which needs KEYRELAY_ADMIN_TOKEN set.',
    '',
  ].join('\n');
}

export function groupHelp(group: string, commands: readonly Command[]): string {
  const members = commands.filter((c) => c.path[0] === group);
  return [`usage: keyrelay ${group} <command> [options]`, '', 'Commands:', ...commandLines(members), ''].join('\n');
}

export function commandHelp(command: Command): string {
  const lines = [usageLine(command), '', `${command.summary[0]?.toUpperCase() ?? ''}${command.summary.slice(1)}.`];
  if (command.options) lines.push('', 'Options:', ...optionLines(command.options));
  if (command.admin !== false) lines.push('', 'Options of every admin command:', ...optionLines(GLOBAL_OPTIONS));
  lines.push('');
  return lines.join('\n');
}
