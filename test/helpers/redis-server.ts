// Real redis-server processes for the tests, on free ports, in temporary directories, with no
// persistence: a single server, and a three-master cluster built with `redis-cli --cluster create`.
// Every test file stops what it started in afterAll; a process exit kills whatever is left.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const alive = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of alive) child.kill('SIGKILL');
});

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** Starts redis-server and resolves once it accepts connections. */
function launch(args: string[], dir: string): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn('redis-server', ['--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    alive.add(child);
    let output = '';
    const onData = (chunk: Buffer) => {
      output += chunk.toString('utf8');
      if (output.includes('Ready to accept connections')) {
        child.stdout?.off('data', onData);
        child.stdout?.resume();
        resolve(child);
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.resume();
    child.once('error', reject);
    child.once('exit', (code) => {
      alive.delete(child);
      reject(new Error(`redis-server exited (${code}) before it was ready:\n${output}`));
    });
  });
}

/**
 * Launches on ports picked by freePort(), picking again when one was taken between the pick and
 * redis-server's bind (another test file can take it in that gap).
 */
async function launchOnFreePorts(
  count: number,
  args: (ports: number[]) => string[],
  dir: string,
): Promise<{ child: ChildProcess; ports: number[] }> {
  for (let attempt = 1; ; attempt++) {
    const ports: number[] = [];
    for (let i = 0; i < count; i++) ports.push(await freePort());
    try {
      return { child: await launch(args(ports), dir), ports };
    } catch (err) {
      if (attempt >= 5 || !String((err as Error).message).includes('Address already in use')) throw err;
    }
  }
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

async function killHard(child: ChildProcess): Promise<void> {
  const gone = exited(child);
  child.kill('SIGCONT'); // a frozen server would not die until thawed otherwise
  child.kill('SIGKILL');
  await gone;
  alive.delete(child);
}

export async function redisCli(port: number, ...args: string[]): Promise<string> {
  const { stdout } = await run('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args]);
  return stdout.trim();
}

export interface RedisServer {
  port: number;
  url: string;
  /** SIGKILL: gone at once, data and scripts lost. */
  kill(): Promise<void>;
  /** Starts again on the same port (empty, as after a crash without persistence). */
  start(): Promise<void>;
  /** SIGSTOP / SIGCONT: the socket stays open, nothing answers. */
  freeze(): void;
  thaw(): void;
  cli(...args: string[]): Promise<string>;
  stop(): Promise<void>;
}

/** `port`: where to listen (a test that first needs Redis absent picks it with freePort()). */
export async function startRedis(extraArgs: string[] = [], port?: number): Promise<RedisServer> {
  const dir = mkdtempSync(join(tmpdir(), 'keyrelay-redis-'));
  let child: ChildProcess | undefined;
  if (port === undefined) {
    const launched = await launchOnFreePorts(1, ([p]) => ['--port', String(p), ...extraArgs], dir);
    child = launched.child;
    port = launched.ports[0] as number;
  } else {
    child = await launch(['--port', String(port), ...extraArgs], dir);
  }
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    async kill() {
      if (child) await killHard(child);
      child = undefined;
    },
    async start() {
      child = await launch(['--port', String(port), ...extraArgs], dir);
    },
    freeze() {
      child?.kill('SIGSTOP');
    },
    thaw() {
      child?.kill('SIGCONT');
    },
    cli: (...args) => redisCli(port, ...args),
    async stop() {
      if (child) await killHard(child);
      child = undefined;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface RedisCluster {
  /** `host:port` of each master, as REDIS_CLUSTER_NODES takes them. */
  nodes: string[];
  ports: number[];
  stop(): Promise<void>;
}

/** Three masters, no replicas, all 16384 slots assigned. */
export async function startRedisCluster(): Promise<RedisCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'keyrelay-cluster-'));
  const children: ChildProcess[] = [];
  const ports: number[] = [];
  try {
    for (let i = 0; i < 3; i++) {
      const launched = await launchOnFreePorts(
        2,
        ([port, busPort]) => [
          '--port', String(port),
          '--cluster-enabled', 'yes',
          '--cluster-config-file', `nodes-${port}.conf`,
          '--cluster-port', String(busPort),
          '--cluster-node-timeout', '5000',
        ],
        dir,
      );
      ports.push(launched.ports[0] as number);
      children.push(launched.child);
    }
    const nodes = ports.map((p) => `127.0.0.1:${p}`);
    await run('redis-cli', ['--cluster', 'create', ...nodes, '--cluster-replicas', '0', '--cluster-yes']);
    // `create` returns once slots are assigned; each node says ok once it has heard of the others.
    for (const port of ports) {
      for (let attempt = 0; !(await redisCli(port, 'cluster', 'info')).includes('cluster_state:ok'); attempt++) {
        if (attempt > 100) throw new Error(`cluster node ${port} never reached cluster_state:ok`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
    return {
      nodes,
      ports,
      async stop() {
        await Promise.all(children.map(killHard));
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await Promise.all(children.map(killHard));
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}
