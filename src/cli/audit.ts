// keyrelay audit: the audit log of admin changes, newest first (docs/audit.md).
import type { AuditEntry } from '../audit/log.js';
import type { Command } from './command.js';
import { answer, table } from './format.js';
import { text, wholeNumber } from './options.js';


export const auditCommands: readonly Command[] = [
  {
    path: ['audit'],
    args: [],
    options: {
      limit: { type: 'string', value: 'N', help: 'how many entries (1 to 1000, default 100)' },
      before: { type: 'string', value: 'ID', help: 'entries older than this entry id (the ID column): the next page' },
      target: { type: 'string', value: 'TARGET', help: 'only changes to this target, such as user:alice or pool_key:main/k1' },
    },
    summary: 'show the audit log of admin changes, newest first',
    async run(ctx, _args, options) {
      const query = new URLSearchParams();
      const limit = wholeNumber(options, 'limit');
      if (limit !== undefined) query.set('limit', String(limit));
      for (const name of ['before', 'target']) {
        const value = text(options, name);
        if (value !== undefined) query.set(name, value);
      }
      const qs = query.size > 0 ? `?${query}` : '';
      const page = await ctx.admin().get<{ data: AuditEntry[] }>(`/audit${qs}`);
      return answer(ctx, page, ({ data }) => {
        if (data.length === 0) return 'No audit entries.\n';
        const rows = data.map((e) => [e.time, e.actor, e.action, e.target, e.ip, e.requestId, e.id]);
        const next = data.length === (limit ?? 100) ? `\nOlder entries: keyrelay audit --before ${data.at(-1)?.id}\n` : '';
        return table(['TIME', 'ACTOR', 'ACTION', 'TARGET', 'IP', 'REQUEST', 'ID'], rows) + next;
      });
    },
  },
];
