import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { expect, it } from 'vitest';

// No Docker engine runs here, so the compose file's structure is checked instead of run.
// Compose files use YAML merge keys (<<: *leash), as docker compose does.
const compose = parse(readFileSync(new URL('../../docker-compose.yml', import.meta.url), 'utf8'), { merge: true });
const dockerfile = readFileSync(new URL('../../Dockerfile', import.meta.url), 'utf8');

it('runs Redis, two API replicas and a worker over one Redis', () => {
  expect(Object.keys(compose.services).sort()).toEqual(['api', 'redis', 'worker']);
  const { api, worker, redis } = compose.services;
  expect(redis.image).toMatch(/^redis:7/);
  expect(api.deploy.replicas).toBe(2);
  expect(api.environment.LEASH_ROLE).toBe('api');
  expect(worker.environment.LEASH_ROLE).toBe('worker');
  // The worker's one V8 helper thread (README, roles and scaling out); the API runs the image's CMD.
  expect(worker.command).toEqual(['node', '--v8-pool-size=1', '--no-memory-reducer', 'dist/main.js']);
  expect(api.command).toBeUndefined();
  for (const svc of [api, worker]) {
    expect(svc.build).toBe('.');
    expect(svc.environment.REDIS_URL).toBe('redis://redis:6379');
    expect(svc.environment.LEASH_KEYS_DIR).toBe('/keys');
    expect(svc.volumes).toContain('./keys:/keys:ro');
    expect(svc.depends_on.redis.condition).toBe('service_healthy');
  }
});

it('the Dockerfile runs the broker as a non-root user on the port compose maps', () => {
  expect(dockerfile).toMatch(/^USER node$/m);
  expect(dockerfile).toContain('EXPOSE 8080');
  // The compiled broker is the container's own process (it gets SIGHUP); no TypeScript loader at run time.
  expect(dockerfile).toMatch(/^CMD \["node", "dist\/main\.js"\]$/m);
  expect(dockerfile).toMatch(/^FROM .* AS build$/m);
  expect(dockerfile).toMatch(/npm ci --omit=dev/);
  expect(dockerfile).not.toMatch(/tsx/);
  expect(compose.services.api.ports[0]).toMatch(/:8080$/);
});
