// The `audit` settings (docs/audit.md): the log's retention. The one schema of src/config.ts
// includes them.
import { Type } from '@sinclair/typebox';

export const AuditSettings = Type.Object(
  {
    // Both are enforced: the oldest entries go once there are more than maxEntries, and any entry
    // older than maxAgeDays (fractions allowed) goes too.
    maxEntries: Type.Integer({ minimum: 1, maximum: 10_000_000, default: 100_000 }),
    maxAgeDays: Type.Number({ exclusiveMinimum: 0, maximum: 36_500, default: 90 }),
  },
  { additionalProperties: false, default: {} },
);
