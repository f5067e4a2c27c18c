import { afterAll, beforeAll, expect, it } from 'vitest';
import { startBroker } from '../helpers/broker.ts';
import { startRedisCluster, type TestRedisCluster } from '../helpers/redis-cluster.ts';
import { command } from '../helpers/redis-nodes.ts';
import { api } from '../lifecycle/harness.ts';
import { runCli } from '../cli/run-cli.ts';
import { closeIssuers, lifecyclePolicy, startIssuers, type Issuers } from '../lifecycle/harness.ts';

// A plain redis:// URL that names one node of a Cluster: PING answers, and every lease write to
// another node's slots would be MOVED. The start stops, saying which form to use, rather than
// running a broker that cannot issue.
let cluster: TestRedisCluster;
let issuers: Issuers;

beforeAll(async () => {
  cluster = await startRedisCluster();
  issuers = await startIssuers();
}, 120_000);
afterAll(async () => {
  await closeIssuers(issuers);
  await cluster?.destroy();
});

it('a redis:// URL naming a Cluster node stops the start, naming REDIS_URL and redis+cluster://', async () => {
  const started = startBroker({ policy: lifecyclePolicy(issuers), redisUrl: `redis://127.0.0.1:${cluster.nodes[0]!.port}`, worker: false });
  await expect(started).rejects.toThrow(/^REDIS_URL: the server is a Redis Cluster node \(cluster_enabled:1\); use redis\+cluster:\/\//);
}, 60_000);

it('the same nodes as redis+cluster:// start', async () => {
  const seeds = cluster.nodes.slice(0, 2).map((n) => `127.0.0.1:${n.port}`).join(',');
  const broker = await startBroker({ policy: lifecyclePolicy(issuers), redisUrl: `redis+cluster://${seeds}`, worker: false });
  await broker.close();
}, 60_000);

it('a wrong password on a Cluster: /readyz and the log name the nodes\' WRONGPASS, never the password', async () => {
  for (const n of cluster.nodes) await command(n.port, 'ACL', 'SETUSER', 'leash-cl', 'on', '>right-secret', '~*', '&*', '+@all');
  const seeds = cluster.nodes.slice(0, 2).map((n) => `127.0.0.1:${n.port}`).join(',');
  const logLines: string[] = [];
  const broker = await startBroker({ policy: lifecyclePolicy(issuers), redisUrl: `redis+cluster://leash-cl:wrong-secret@${seeds}`, worker: false, logLines });
  try {
    const r = await api(broker.url, 'GET', '/readyz');
    expect(r.status).toBe(503);
    expect(r.body.checks.store).toMatch(/last connection error: 127\.0\.0\.1:\d+: WRONGPASS/);
    expect(logLines.some((l) => l.includes('redis node error') && l.includes('WRONGPASS'))).toBe(true);
    expect(JSON.stringify(r.body) + logLines.join('')).not.toContain('wrong-secret');
    // The CLI says the same rather than "cannot reach Redis".
    const cli = await runCli(['break-glass', '--reason', 'x', '--yes', '--redis-url', `redis+cluster://leash-cl:wrong-secret@${seeds}`], {
      env: { LEASH_KEYS_DIR: broker.keysDir, LEASH_ISSUER: broker.config.issuer, REDIS_PREFIX: broker.config.redisPrefix },
    });
    expect(cli.code).toBe(1);
    expect(cli.stderr).toContain('Redis refused the credentials of --redis-url (or REDIS_URL): WRONGPASS');
    expect(cli.stderr).not.toContain('wrong-secret');
  } finally {
    await broker.close();
    for (const n of cluster.nodes) await command(n.port, 'ACL', 'DELUSER', 'leash-cl');
  }
}, 60_000);
