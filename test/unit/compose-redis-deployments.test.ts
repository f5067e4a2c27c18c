import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { parseRedisUrl, type HostPort } from '../../src/redis/redis-url.ts';

// No Docker engine runs here, so the compose files' structure is checked instead of run (as
// compose-file.test.ts does for docker-compose.yml). Merge keys (<<: *x) as docker compose reads them.
const load = (name: string): any => parse(readFileSync(new URL(`../../${name}`, import.meta.url), 'utf8'), { merge: true });
const arg = (command: string[], flag: string): string | undefined => command[command.indexOf(flag) + 1];

function leashServices(compose: any): void {
  const { api, worker } = compose.services;
  expect(api.environment.LEASH_ROLE).toBe('api');
  expect(worker.environment.LEASH_ROLE).toBe('worker');
  expect(worker.command).toEqual(['node', '--v8-pool-size=1', '--no-memory-reducer', 'dist/main.js']);
  expect(api.command).toBeUndefined();
  expect(api.deploy.replicas).toBe(2);
  for (const svc of [api, worker]) {
    expect(svc.build).toBe('.');
    expect(svc.environment.LEASH_REDIS_MIN_REPLICAS).toBe('1');
    expect(svc.volumes).toContain('./keys:/keys:ro');
  }
}

const hostsAreServices = (compose: any, hosts: HostPort[]): void => {
  for (const h of hosts) expect(Object.keys(compose.services)).toContain(h.host);
};

describe('docker-compose.sentinel.yml', () => {
  const compose = load('docker-compose.sentinel.yml');
  const data = ['redis-primary', 'redis-replica-1', 'redis-replica-2'].map((n) => compose.services[n]);

  it('runs a primary with two replicas, none evicting, each restarted when it dies', () => {
    for (const svc of data) {
      expect(svc.image).toMatch(/^redis:7/);
      expect(svc.restart).toBe('unless-stopped');
      expect(arg(svc.command, '--maxmemory-policy')).toBe('noeviction');
      expect(arg(svc.command, '--appendonly')).toBe('yes');
    }
    for (const replica of data.slice(1)) expect(arg(replica.command, '--replicaof')).toBe('redis-primary');
  });

  it('runs three sentinels with quorum 2 watching the primary as `leash`', () => {
    for (const name of ['sentinel-1', 'sentinel-2', 'sentinel-3']) {
      const script = compose.services[name].entrypoint.join(' ');
      expect(script).toMatch(/sentinel monitor leash redis-primary 6379 2\b/);
      expect(script).toContain('--sentinel');
    }
  });

  it('points Leash at the sentinels with a redis+sentinel:// URL Leash accepts', () => {
    leashServices(compose);
    const target = parseRedisUrl(compose.services.api.environment.REDIS_URL);
    expect(target).toMatchObject({ kind: 'sentinel', name: 'leash' });
    if (target.kind !== 'sentinel') throw new Error('unreachable');
    expect(target.sentinels.map((s) => s.host)).toEqual(['sentinel-1', 'sentinel-2', 'sentinel-3']);
    hostsAreServices(compose, target.sentinels);
    expect(compose.services.worker.environment.REDIS_URL).toBe(compose.services.api.environment.REDIS_URL);
  });
});

describe('docker-compose.cluster.yml', () => {
  const compose = load('docker-compose.cluster.yml');
  const nodeNames = Object.keys(compose.services).filter((n) => n.startsWith('redis-node-'));

  it('runs six cluster nodes, none evicting, each keeping nodes.conf on its volume and restarted when it dies', () => {
    expect(nodeNames).toHaveLength(6);
    for (const name of nodeNames) {
      const svc = compose.services[name];
      expect(arg(svc.command, '--cluster-enabled')).toBe('yes');
      expect(arg(svc.command, '--cluster-config-file')).toBe('/data/nodes.conf');
      expect(arg(svc.command, '--cluster-announce-hostname')).toBe(name);
      expect(arg(svc.command, '--maxmemory-policy')).toBe('noeviction');
      expect(svc.restart).toBe('unless-stopped');
      expect(svc.volumes).toContain(`${name}:/data`);
    }
  });

  it('forms the cluster once, with a replica per primary, before Leash starts', () => {
    const init = compose.services['redis-cluster-init'];
    const script = init.entrypoint.join(' ');
    expect(script).toContain('--cluster create');
    expect(script).toContain('--cluster-replicas 1');
    for (const name of nodeNames) {
      expect(script).toContain(name);
      expect(init.depends_on[name].condition).toBe('service_healthy');
    }
    for (const svc of [compose.services.api, compose.services.worker]) {
      expect(svc.depends_on['redis-cluster-init'].condition).toBe('service_completed_successfully');
    }
  });

  it('points Leash at every node with a redis+cluster:// URL Leash accepts', () => {
    leashServices(compose);
    const target = parseRedisUrl(compose.services.api.environment.REDIS_URL);
    if (target.kind !== 'cluster') throw new Error(`expected a cluster URL, got ${target.kind}`);
    expect(target.nodes.map((n) => n.host).sort()).toEqual([...nodeNames].sort());
    hostsAreServices(compose, target.nodes);
  });
});
