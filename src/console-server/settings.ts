// The `console` settings (docs/console.md). The one schema of src/config.ts includes them.
import { Type } from '@sinclair/typebox';

export const ConsoleSettings = Type.Object(
  {
    // Unset: on when an admin token is set. KEYRELAY_CONSOLE=true|false overrides the file.
    enabled: Type.Optional(Type.Boolean()),
    // How long a sign-in lasts (fractions allowed); at most 30 days.
    sessionHours: Type.Number({ exclusiveMinimum: 0, maximum: 720, default: 12 }),
  },
  { additionalProperties: false, default: {} },
);

/** Whether /console is served: the setting, or by default whenever there is an admin token. */
export function consoleEnabled(config: { adminToken?: string; console: { enabled?: boolean } }): boolean {
  return config.console.enabled ?? config.adminToken !== undefined;
}
