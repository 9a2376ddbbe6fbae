// keyrelay webhooks list|add|remove|deliveries: the alert webhooks (docs/alerts.md). The signing
// secret is read from standard input, never from an argument; a URL with a password is refused.
import { type Attempt, EVENT_TYPES } from '../alerts/types.js';
import type { Command } from './command.js';
import { UsageError } from './command.js';
import { answer, fields, orDash, table } from './format.js';
import { list, refusePassword, text, wholeNumber } from './options.js';
import { readSecret } from './secret-input.js';

export interface ApiWebhook {
  id: string;
  url: string;
  events: string[];
  source: 'settings' | 'store';
  createdAt: string | null;
  /** The last 4 characters of the signing secret. */
  last4: string;
}


const path = (id: string | undefined): string => `/webhooks/${encodeURIComponent(id ?? '')}`;

export const webhooksCommands: readonly Command[] = [
  {
    path: ['webhooks', 'list'],
    args: [],
    summary: 'list the alert webhooks, from the settings and added at run time (never their secrets)',
    async run(ctx) {
      const page = await ctx.admin().get<{ data: ApiWebhook[] }>('/webhooks');
      return answer(ctx, page, ({ data }) => {
        if (data.length === 0) return 'No webhooks. Add one with: keyrelay webhooks add <url> --events quota.threshold < secret-file\n';
        return table(['ID', 'URL', 'EVENTS', 'SOURCE', 'SECRET', 'CREATED'], data.map((w) => [w.id, w.url, w.events.join(','), w.source, `…${w.last4}`, orDash(w.createdAt)]));
      });
    },
  },
  {
    path: ['webhooks', 'add'],
    args: ['<url>'],
    options: {
      events: { type: 'string', value: 'LIST', help: `comma-separated events to send: ${EVENT_TYPES.join(', ')}` },
      id: { type: 'string', value: 'ID', help: 'an id of your choice (default: one is made)' },
    },
    summary: 'add a webhook; its signing secret is read from standard input',
    async run(ctx, [url], options) {
      // A password in the URL (basic auth at the receiver) is a secret: never an argument.
      refusePassword('<url>', url === undefined ? undefined : [url], 'webhook');
      const events = list(options, 'events');
      if (!events) throw new UsageError(`--events: say which events to send (${EVENT_TYPES.join(', ')})`);
      const secret = await readSecret(ctx.io, 'Signing secret');
      const hook = await ctx.admin().post<ApiWebhook>('/webhooks', { id: text(options, 'id'), url, events, secret });
      return answer(ctx, hook, (w) => `Added webhook ${w.id}.\n` + fields([['url', w.url], ['events', w.events.join(', ')], ['secret', `…${w.last4}`]]));
    },
  },
  {
    path: ['webhooks', 'remove'],
    args: ['<id>'],
    summary: 'remove a webhook added at run time; its queued deliveries are dropped',
    async run(ctx, [id]) {
      const removed = await ctx.admin().delete<{ id: string; deleted: boolean }>(path(id));
      return answer(ctx, removed, (r) => `Removed webhook ${r.id}.\n`);
    },
  },
  {
    path: ['webhooks', 'deliveries'],
    args: ['<id>'],
    options: { limit: { type: 'string', value: 'N', help: 'how many attempts (1 to 100, default 20)' } },
    summary: "show a webhook's last delivery attempts, newest first",
    async run(ctx, [id], options) {
      const limit = wholeNumber(options, 'limit');
      const page = await ctx.admin().get<{ data: Attempt[] }>(`${path(id)}/deliveries${limit === undefined ? '' : `?limit=${limit}`}`);
      return answer(ctx, page, ({ data }) => {
        if (data.length === 0) return `No deliveries to ${id} yet.\n`;
        const rows = data.map((a) => [a.at, a.type, a.eventId, String(a.attempt), a.status === null ? '-' : String(a.status), a.ok ? 'ok' : orDash(a.error), orDash(a.nextAttemptAt)]);
        return table(['TIME', 'EVENT', 'EVENT ID', 'ATTEMPT', 'STATUS', 'RESULT', 'NEXT'], rows);
      });
    },
  },
];
