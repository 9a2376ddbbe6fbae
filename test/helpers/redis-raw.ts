// Every key of a Redis (each master of a cluster) and its value, whatever its type, as one text:
// what someone who reads the store's files or its traffic sees. The secrets-at-rest tests look in
// it for a secret and its pieces.
import { redisCli } from './redis-server.js';

const READ: Record<string, (key: string) => string[]> = {
  string: (key) => ['get', key],
  hash: (key) => ['hgetall', key],
  set: (key) => ['smembers', key],
  zset: (key) => ['zrange', key, '0', '-1', 'withscores'],
  list: (key) => ['lrange', key, '0', '-1'],
  stream: (key) => ['xrange', key, '-', '+'],
};

export async function rawValues(ports: number[]): Promise<string> {
  const out: string[] = [];
  for (const port of ports) {
    const keys = (await redisCli(port, '--scan')).split('\n').filter(Boolean);
    for (const key of keys) {
      const type = await redisCli(port, 'type', key);
      const read = READ[type];
      // A key that expired between the scan and its read has nothing to show.
      if (type === 'none') continue;
      if (!read) throw new Error(`unexpected type ${type} of ${key}`);
      out.push(key, await redisCli(port, ...read(key)));
    }
  }
  return out.join('\n');
}
