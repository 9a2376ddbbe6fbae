// pool_key.disabled, pool_key.recovered and pool.exhausted, from the pool's key health. Every
// process sees every change of a key's health record (its own, and the others' through the store:
// src/pool/health-sync.ts), so each event is raised under a mark made of the record's `since`,
// which is the same in every process: one of them raises it. A key that only cools (a 429) raises
// nothing; one that is disabled (a dead key, a tripped account, a hand on the switch) does.
import type { HealthRecord } from '../pool/health-sync.js';
import type { UpstreamDescription } from '../pool/pool.js';
import type { Alerts } from './alerts.js';

const MARK_MS = 7 * 86_400_000;
// An upstream whose keys all cool at once under a burst of 429s would be exhausted again and
// again: one pool.exhausted per upstream a minute, from all processes together, says it.
const EXHAUSTED_EVERY_MS = 60_000;

export interface PoolWatchOptions {
  alerts: Pick<Alerts, 'emitOnce'>;
  /** The pool as selection sees it now (pool.describe()). */
  describe(): UpstreamDescription[];
}

export function poolWatch(options: PoolWatchOptions) {
  const { alerts } = options;
  return (keyRef: string, record: HealthRecord, previous: HealthRecord): void => {
    if (record.state === previous.state) return;
    const slash = keyRef.indexOf('/');
    const upstream = keyRef.slice(0, slash);
    const key = keyRef.slice(slash + 1);
    const since = new Date(record.since).toISOString();
    if (record.state === 'disabled') {
      void alerts.emitOnce(`pool_key.disabled:${keyRef}:${record.since}`, MARK_MS, 'pool_key.disabled', {
        upstream,
        key,
        reason: record.reason ?? null,
        since,
        nextProbeAt: record.until === undefined ? null : new Date(record.until).toISOString(),
      });
    } else if (record.state === 'active' && previous.state === 'disabled') {
      void alerts.emitOnce(`pool_key.recovered:${keyRef}:${record.since}`, MARK_MS, 'pool_key.recovered', { upstream, key, since });
    }
    if (record.state === 'active') return;
    // Looked at once the pool has taken the change in (this is called from inside it).
    setImmediate(() => {
      const found = options.describe().find((u) => u.id === upstream);
      if (!found || found.keys.length === 0 || found.keys.some((k) => k.state === 'active')) return;
      void alerts.emitOnce(`pool.exhausted:${upstream}`, EXHAUSTED_EVERY_MS, 'pool.exhausted', {
        upstream,
        keys: found.keys.map((k) => ({ key: k.id, state: k.state, reason: k.reason ?? null, until: k.until === undefined ? null : new Date(k.until).toISOString() })),
      });
    });
  };
}
