// Idle time passing, as Redis sees it, without waiting for it: each key that matches loses `ms` of
// its time to live, and the keys that would have expired meanwhile are deleted. Keys without a
// time to live stay. For the tests of what is left after a gateway has been gone for an hour.
import { redisCli } from './redis-server.js';

/** Resolves the keys that expired, on every port given (each master of a cluster). */
export async function passTime(ports: number[], pattern: string, ms: number): Promise<string[]> {
  const expired: string[] = [];
  for (const port of ports) {
    const keys = (await redisCli(port, '--scan', '--pattern', pattern)).split('\n').filter(Boolean);
    for (const key of keys) {
      const pttl = Number(await redisCli(port, 'pttl', key));
      if (pttl < 0) continue;
      if (pttl <= ms) {
        await redisCli(port, 'del', key);
        expired.push(key);
      } else {
        await redisCli(port, 'pexpire', key, String(pttl - ms));
      }
    }
  }
  return expired;
}
