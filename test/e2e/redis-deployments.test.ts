import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { connectRedis, whenReady, type RedisClient } from '../../src/redis/connect.ts';
import { exchangeProof, startBroker, type TestBroker } from '../helpers/broker.ts';
import { AUD } from '../helpers/policies.ts';
import { runCli } from '../cli/run-cli.ts';
import { startRedisCluster } from '../helpers/redis-cluster.ts';
import { startRedisSentinel } from '../helpers/redis-sentinel.ts';
import {
  api, closeIssuers, endingEvents, holderRevoke, introspect, issue, lifecyclePolicy, operatorToken, startIssuers, waitEnded, waitFor,
  type Issued, type Issuers,
} from '../lifecycle/harness.ts';

/** The real broker and its BullMQ worker on a real Redis Cluster and a real Sentinel set. */
const deployments = [
  ['Redis Cluster (3 primaries, 1 replica each)', async () => startRedisCluster()],
  ['Redis Sentinel (primary, 2 replicas, 3 sentinels)', async () => startRedisSentinel()],
] as const;

describe.each(deployments)('on %s', (_, start) => {
  let deployment: { url: string; destroy(): Promise<void> };
  let issuers: Issuers;
  let broker: TestBroker;
  let client: RedisClient;
  let op: Issued;

  beforeAll(async () => {
    deployment = await start();
    issuers = await startIssuers();
    broker = await startBroker({ policy: lifecyclePolicy(issuers), redisUrl: deployment.url, env: { LEASH_REDIS_MIN_REPLICAS: '1' } });
    client = connectRedis(deployment.url);
    client.on('error', () => undefined);
    await whenReady(client, 10_000);
    op = await operatorToken(broker.url, issuers, broker.config.issuer);
  }, 120_000);
  afterAll(async () => {
    await broker?.close();
    await closeIssuers(issuers);
    client?.disconnect();
    await deployment?.destroy();
  });

  it('is ready, with every primary replicated and evicting nothing', async () => {
    const r = await api(broker.url, 'GET', '/readyz');
    expect(r.status).toBe(200);
    expect(r.body.checks).toMatchObject({ store: expect.stringMatching(/^redis ok/), replicas: expect.stringMatching(/^ok/), maxmemory_policy: 'noeviction' });
  });

  it('exchanges and introspects across every shard, and a holder revocation ends its lease once', async () => {
    // 40 subjects spread the leases over the 16 shards and so over every primary.
    const leases = await Promise.all(Array.from({ length: 40 }, (_, i) => issue(broker.url, issuers.github, `repo:octo-org/app:spread-${i}`, { task_id: `spread-${i % 4}` })));
    for (const l of leases) expect((await introspect(broker.url, op.token, l.token)).body).toMatchObject({ active: true, jti: l.lease_id });
    const victim = leases[0]!;
    expect((await holderRevoke(broker.url, victim.token)).status).toBe(200);
    expect((await introspect(broker.url, op.token, victim.token)).body).toEqual({ active: false });
    const ended = await waitEnded(broker.url, op.token, victim.lease_id);
    expect(ended).toMatchObject({ status: 'revoked' });
    await waitFor('the ending event', async () => (await endingEvents(client as Redis, broker.config.redisPrefix)).get(victim.lease_id)?.length === 1);
  });

  it('completes a task and bulk-revokes by subject and by rule across every shard', async () => {
    const task = await Promise.all([1, 2, 3].map((i) => issue(broker.url, issuers.github, `repo:octo-org/app:task-${i}`, { task_id: 'deploy-7' })));
    const done = await api(broker.url, 'POST', '/v1/tasks/deploy-7/complete', task[0]!.token);
    expect(done.status).toBe(200);
    for (const l of task) expect((await introspect(broker.url, op.token, l.token)).body.active).toBe(false);

    const batch = await Promise.all(Array.from({ length: 12 }, (_, i) => issue(broker.url, issuers.github, `repo:octo-org/batch:b-${i}`)));
    const bySubject = await Promise.all([1, 2].map(() => issue(broker.url, issuers.github, 'repo:octo-org/app:bulk-subject')));
    expect((await api(broker.url, 'POST', '/v1/leases/revoke', op.token, { subject: 'repo:octo-org/app:bulk-subject', reason: 'bulk' })).body).toEqual({ revoked: 2 });
    expect((await api(broker.url, 'POST', '/v1/leases/revoke', op.token, { rule: 'batch', reason: 'bulk' })).body).toEqual({ revoked: 12 });
    for (const l of [...batch, ...bySubject]) expect((await introspect(broker.url, op.token, l.token)).body.active).toBe(false);
    for (const l of [...task, ...batch, ...bySubject]) await waitEnded(broker.url, op.token, l.lease_id);
    const events = await endingEvents(client as Redis, broker.config.redisPrefix);
    for (const l of [...task, ...batch, ...bySubject]) expect(events.get(l.lease_id)).toHaveLength(1);
  });

  it('expires leases at their expiry through the worker', async () => {
    const leases = await Promise.all([1, 2, 3, 4].map((i) => issue(broker.url, issuers.github, `repo:octo-org/app:expire-${i}`, { ttl: '1' })));
    for (const l of leases) expect((await waitEnded(broker.url, op.token, l.lease_id, 10_000)).status).toBe('expired');
    for (const l of leases) expect((await introspect(broker.url, op.token, l.token)).body).toEqual({ active: false });
  });

  it('leash break-glass records its lease on the deployment, and the broker takes the token', async () => {
    const env = { LEASH_KEYS_DIR: broker.keysDir, REDIS_URL: deployment.url, REDIS_PREFIX: broker.config.redisPrefix, LEASH_ISSUER: broker.config.issuer };
    const r = await runCli(['break-glass', '--subject', 'alice', '--reason', 'drill', '--ttl', '5m', '--yes'], { env });
    expect(r.code, r.stderr).toBe(0);
    const token = r.stdout.trim();
    expect((await introspect(broker.url, op.token, token)).body).toMatchObject({ active: true, client_id: 'break-glass' });
  }, 120_000);

  it('refuses a replayed proof across the deployment', async () => {
    const proof = await issuers.github.mint({ iss: issuers.github.url, aud: AUD, sub: 'repo:octo-org/app:replay', jti: `replay-${Date.now()}` });
    expect((await exchangeProof(broker.url, proof)).status).toBe(200);
    expect((await exchangeProof(broker.url, proof)).body).toMatchObject({ error: 'invalid_request' });
  });

  it('refuses a proof replayed for a scope another rule grants', async () => {
    // `batch` and `work` both match this subject: the replay record is the proof's, not a rule's.
    const proof = await issuers.github.mint({ iss: issuers.github.url, aud: AUD, sub: 'repo:octo-org/batch:replay', jti: `replay-rule-${Date.now()}` });
    expect((await exchangeProof(broker.url, proof, { scope: 'jobs:run' })).status).toBe(200);
    expect((await exchangeProof(broker.url, proof, { scope: 'deploy:write' })).body).toMatchObject({ error: 'invalid_request' });
    const fresh = await issuers.github.mint({ iss: issuers.github.url, aud: AUD, sub: 'repo:octo-org/batch:replay', jti: `replay-rule-fresh-${Date.now()}` });
    expect((await exchangeProof(broker.url, fresh, { scope: 'deploy:write' })).status).toBe(200);
  });
});
