// The container files: the Dockerfile replayed without a Docker engine (docker/check-build.sh
// builds both stages, starts the result as the image would, runs its HEALTHCHECK and SIGTERM),
// and the essentials of the Dockerfile, .dockerignore and docker/compose.yaml.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { describe, it, expect } from 'vitest';
import { parse } from 'yaml';

const run = promisify(execFile);
const dockerfile = readFileSync('Dockerfile', 'utf8');
const instructions = dockerfile
  .replace(/\\\n/g, ' ')
  .split('\n')
  .map((line) => line.trim())
  .filter((line) => line !== '' && !line.startsWith('#'));

describe('the Docker image', () => {
  it('builds, starts, passes its HEALTHCHECK and stops on SIGTERM when its steps are replayed', async () => {
    const result = await run('bash', ['docker/check-build.sh'], { maxBuffer: 64 * 1024 * 1024, timeout: 290_000 }).catch(
      (err: { stdout?: string; stderr?: string; code?: number }) => err,
    );
    const output = `${result.stdout ?? ''}${result.stderr ?? ''}`;
    expect('code' in result ? result.code : 0, output).toBe(0);
    const steps = output.split('\n').filter((line) => line.startsWith('==> '));
    expect(steps).toEqual([
      expect.stringMatching(/^==> build context: /),
      expect.stringMatching(/^==> FROM node:22-bookworm-slim AS build /),
      '==> COPY package.json package-lock.json ./',
      '==> RUN npm ci --ignore-scripts',
      '==> COPY tsconfig.json tsconfig.build.json ./',
      '==> COPY src ./src',
      '==> COPY console ./console',
      '==> RUN npm run build',
      expect.stringMatching(/^==> FROM node:22-bookworm-slim /),
      '==> COPY package.json package-lock.json ./',
      '==> RUN npm ci --omit=dev --ignore-scripts',
      '==> COPY --from=build /app/dist ./dist',
      '==> COPY bin ./bin',
      '==> COPY config ./config',
      '==> COPY spec/openai/routes.tsv ./spec/openai/routes.tsv',
      '==> COPY spec/openai/NOTICE ./spec/openai/NOTICE',
      '==> start: node bin/keyrelay.js serve (in /app, as the image would, on 127.0.0.1 and a free port)',
      expect.stringMatching(/^==> listening on 127\.0\.0\.1:\d+$/),
      '==> HEALTHCHECK passed',
      '==> demo ran with the production dependencies alone',
      '==> SIGTERM: exited 0',
      '==> image replay passed',
    ]);
  }, 300_000);

  it('runs as the non-root node user, listening on 0.0.0.0:8080, checked through /healthz', () => {
    const froms = instructions.flatMap((line, i) => (line.startsWith('FROM ') ? [i] : []));
    const finalStage = instructions.slice(froms.at(-1));
    expect(finalStage[0]).toBe('FROM node:22-bookworm-slim');
    expect(finalStage.filter((i) => i.startsWith('USER '))).toEqual(['USER node']);
    expect(finalStage).toContain('ENV NODE_ENV=production HOST=0.0.0.0 PORT=8080');
    expect(finalStage).toContain('EXPOSE 8080');
    expect(finalStage.filter((i) => i.startsWith('RUN '))).toEqual(['RUN --mount=type=cache,target=/root/.npm npm ci --omit=dev --ignore-scripts']);
    const healthcheck = finalStage.find((i) => i.startsWith('HEALTHCHECK '));
    expect(healthcheck).toMatch(/^HEALTHCHECK .*CMD \["node", "-e", ".*\/healthz.*"\]$/);
    expect(finalStage.at(-2)).toBe('ENTRYPOINT ["node", "bin/keyrelay.js"]');
    expect(finalStage.at(-1)).toBe('CMD ["serve"]');
  });

  it('leaves dependencies, builds, tests and local settings out of the build context', () => {
    const ignored = readFileSync('.dockerignore', 'utf8').split('\n').filter((line) => line && !line.startsWith('#'));
    expect(ignored).toEqual(expect.arrayContaining(['node_modules', 'dist', '.git', 'test', 'bench/results', '.env', 'config/keyrelay.yaml']));
  });
});

describe('docker/compose.yaml', () => {
  const compose = parse(readFileSync('docker/compose.yaml', 'utf8'));

  it('runs the gateway built from the repository against Redis, secrets from the host environment', () => {
    const gateway = compose.services.gateway;
    expect(gateway.build).toEqual({ context: '..', dockerfile: 'Dockerfile' });
    expect(gateway.ports).toEqual(['8080:8080']);
    expect(gateway.environment.REDIS_URL).toBe('redis://redis:6379');
    expect(gateway.environment.KEYRELAY_ADMIN_TOKEN).toMatch(/^\$\{KEYRELAY_ADMIN_TOKEN:\?.+\}$/);
    expect(gateway.environment.OPENAI_API_KEYS).toMatch(/^\$\{OPENAI_API_KEYS:\?.+\}$/);
    expect(gateway.depends_on).toEqual({ redis: { condition: 'service_healthy' } });
  });

  it('runs Redis 7 with noeviction, a volume and a healthcheck', () => {
    const redis = compose.services.redis;
    expect(redis.image).toBe('redis:7-alpine');
    const command: string[] = redis.command;
    expect(command[0]).toBe('redis-server');
    expect(command[command.indexOf('--maxmemory-policy') + 1]).toBe('noeviction');
    expect(redis.volumes).toEqual(['redis-data:/data']);
    expect(compose.volumes).toHaveProperty('redis-data');
    expect(redis.healthcheck.test).toEqual(['CMD', 'redis-cli', 'ping']);
  });
});
