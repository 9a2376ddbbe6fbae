// The `alerts` settings (docs/alerts.md). Kept beside the code that reads them; the one schema of
// src/config.ts includes them.
import { Type } from '@sinclair/typebox';
import { EVENT_TYPES } from './types.js';

export const WEBHOOK_ID = '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$';
export const SECRET_MIN = 16;
export const SECRET_MAX = 256;

const WebhookSchema = Type.Object(
  {
    id: Type.Optional(Type.String({ pattern: WEBHOOK_ID })),
    url: Type.String({ pattern: '^https?://', maxLength: 2048 }),
    events: Type.Array(Type.Union(EVENT_TYPES.map((name) => Type.Literal(name))), { minItems: 1 }),
    // Best written as env:NAME, so that the file holds no secret.
    secret: Type.String({ minLength: SECRET_MIN, maxLength: SECRET_MAX }),
  },
  { additionalProperties: false },
);

export const AlertsSettings = Type.Object(
  {
    webhooks: Type.Array(WebhookSchema, { default: [] }),
    // The first retry waits this long; each next one twice as long, up to an hour, for 24 hours.
    firstRetryMs: Type.Integer({ minimum: 100, maximum: 3_600_000, default: 1000 }),
    // How often each process looks for deliveries that are due.
    pollMs: Type.Integer({ minimum: 50, maximum: 60_000, default: 1000 }),
    // One attempt waits this long for the receiver's answer.
    timeoutMs: Type.Integer({ minimum: 100, maximum: 60_000, default: 10_000 }),
  },
  { additionalProperties: false, default: {} },
);
