// The table of keyrelay's commands. A new command (`usage`, `upstreams`) is a new module with
// its rows, added here; main() and the help text need no change.
import type { Command } from './command.js';
import { auditCommands } from './audit.js';
import { keysCommands } from './keys.js';
import { webhooksCommands } from './webhooks.js';
import { upstreamChangeCommands } from './upstream-changes.js';
import { upstreamsCommands } from './upstreams.js';
import { usageCommands } from './usage.js';
import { usersCommands } from './users.js';

const serveCommand: Command = {
  path: ['serve'],
  args: [],
  admin: false,
  summary: 'start the gateway (settings: environment, then config/keyrelay.yaml)',
  async run() {
    // Loaded only here, so that the admin commands start without loading the whole gateway.
    const { serve } = await import('../server.js');
    await serve();
    return -1;
  },
};

export const COMMANDS: readonly Command[] = [
  serveCommand,
  ...usersCommands,
  ...keysCommands,
  ...usageCommands,
  ...upstreamsCommands,
  ...upstreamChangeCommands,
  ...auditCommands,
  ...webhooksCommands,
];
