import { afterAll, beforeAll, expect, it } from 'vitest';
import { exchangeProof, startBroker, type TestBroker } from '../helpers/broker.ts';
import { AUD } from '../helpers/policies.ts';
import { createRedisLeaseStore } from '../../src/leases/redis-store.ts';
import { startWalkProcess } from '../../src/revocation/walk-process.ts';
import { NotReplicatedError } from '../../src/redis/replicated-write.ts';
import { makeLease, revokeInput } from '../contract/lease-fixtures.ts';
import { connectTestRedis, uniquePrefix } from '../contract/redis-client.ts';
import { freePort, startRedis, type TestRedis } from '../helpers/redis-server.ts';
import { baseArgs, spawnRedisNode, type RedisNode } from '../helpers/redis-nodes.ts';
import { api, closeIssuers, issue, lifecyclePolicy, operatorToken, startIssuers, uniq, waitFor, type Issuers } from '../lifecycle/harness.ts';

/**
 * LEASH_REDIS_MIN_REPLICAS=1 on a Redis whose replica comes and goes: without it a lease write is
 * not done, so nothing is handed out (503) and the proof is not burnt; with it all works.
 */
let redis: TestRedis;
let replica: RedisNode | undefined;
let issuers: Issuers;
let broker: TestBroker;

beforeAll(async () => {
  redis = await startRedis();
  issuers = await startIssuers();
  broker = await startBroker({ policy: lifecyclePolicy(issuers), redisUrl: redis.url, env: { LEASH_REDIS_MIN_REPLICAS: '1', LEASH_REDIS_WAIT_MS: '200' } });
});
afterAll(async () => {
  await broker?.close();
  await closeIssuers(issuers);
  await replica?.kill();
  await redis?.destroy();
});

const startReplica = async (): Promise<RedisNode> => {
  const port = await freePort();
  const dir = `${redis.dir}/replica-${port}`;
  return spawnRedisNode(port, dir, [...baseArgs(port, dir), '--replicaof', '127.0.0.1', String(redis.port)]);
};
const ready = async (): Promise<{ status: number; body: any }> => api(broker.url, 'GET', '/readyz');

it('without a replica: not ready, and an exchange answers 503 handing out nothing, with the lease ended and the proof still usable', async () => {
  const r = await ready();
  expect(r.status).toBe(503);
  expect(r.body.checks.replicas).toMatch(/^fewer than 1/);

  const sub = `repo:octo-org/app:unreplicated-${uniq()}`;
  const proof = await issuers.github.mint({ iss: issuers.github.url, aud: AUD, sub, jti: `jti-${uniq()}` });
  const refused = await exchangeProof(broker.url, proof);
  expect(refused.status).toBe(503);
  expect(refused.body.error).toBe('temporarily_unavailable');
  expect(refused.body.access_token).toBeUndefined();
  // The lease that reached the primary is ended: no lease stays active without a credential.
  const page = await broker.deps.store.list({ subject: sub }, { limit: 10 });
  expect(page.leases).toHaveLength(1);
  await waitFor('the unreplicated lease to be revoked', async () => (await broker.deps.store.get(page.leases[0]!.id))?.status === 'revoked');
  expect(await broker.deps.store.get(page.leases[0]!.id)).toMatchObject({ reason: 'not replicated' });

  replica = await startReplica();
  await waitFor('/readyz to be ready with a replica', async () => (await ready()).status === 200, 15_000, 100);
  // The same proof works now: the unconfirmed attempt did not burn it. A replica still catching up
  // on a loaded machine may miss one WAIT; a 503 leaves the proof usable, so the job's retry is the test.
  const ok = await waitFor('the same proof to be exchanged', async () => {
    const r = await exchangeProof(broker.url, proof);
    expect([200, 503]).toContain(r.status);
    return r.status === 200 ? r : null;
  }, 15_000, 200);
  expect(await broker.deps.store.get(ok.body.lease_id)).toMatchObject({ status: 'active', subject: sub });
  expect((await exchangeProof(broker.url, proof)).body.error).toBe('invalid_request');
});

it('a revocation that no replica confirms answers 503, and succeeds once one does', async () => {
  replica ??= await startReplica();
  await waitFor('/readyz ready', async () => (await ready()).status === 200, 15_000, 100);
  const op = await operatorToken(broker.url, issuers, broker.config.issuer);
  const lease = await issue(broker.url, issuers.github, `repo:octo-org/app:revoke-${uniq()}`);

  await replica.kill();
  await waitFor('/readyz not ready', async () => (await ready()).status === 503, 15_000, 100);
  const refused = await api(broker.url, 'POST', `/v1/leases/${lease.lease_id}/revoke`, op.token, { reason: 'compromised' });
  expect(refused.status).toBe(503);
  expect(refused.body.error).toBe('temporarily_unavailable');

  await replica.start();
  await waitFor('/readyz ready again', async () => (await ready()).status === 200, 15_000, 100);
  // The retry finds the lease already flipped on the primary; what matters is that it is revoked.
  await api(broker.url, 'POST', `/v1/leases/${lease.lease_id}/revoke`, op.token, { reason: 'compromised' });
  expect(await broker.deps.store.get(lease.lease_id)).toMatchObject({ status: 'revoked' });
});

it('a bulk revocation that no replica confirms answers 503, with its flips confirmed on the connection that wrote them', async () => {
  replica ??= await startReplica();
  await waitFor('/readyz ready', async () => (await ready()).status === 200, 15_000, 100);
  const op = await operatorToken(broker.url, issuers, broker.config.issuer);
  const subject = `repo:octo-org/app:bulk-${uniq()}`;
  const leases = [await issue(broker.url, issuers.github, subject), await issue(broker.url, issuers.github, subject)];

  // A stopped replica stays connected, so Leash still counts it, but acknowledges nothing.
  const pid = replica.pid()!;
  process.kill(pid, 'SIGSTOP');
  try {
    const refused = await api(broker.url, 'POST', '/v1/leases/revoke', op.token, { subject, reason: 'kill switch' });
    expect(refused.status).toBe(503);
    expect(refused.body.error).toBe('temporarily_unavailable');
  } finally {
    process.kill(pid, 'SIGCONT');
  }
  // The retry finds the flips already made; what matters is that they are revoked.
  await waitFor('the retried bulk revocation', async () => (await api(broker.url, 'POST', '/v1/leases/revoke', op.token, { subject, reason: 'kill switch' })).status === 200, 15_000, 200);
  for (const l of leases) expect(await broker.deps.store.get(l.lease_id)).toMatchObject({ status: 'revoked', reason: 'kill switch' });
});

it('the bulk revocation process does not count a walk done until a replica confirms its flips', async () => {
  replica ??= await startReplica();
  await waitFor('/readyz ready', async () => (await ready()).status === 200, 15_000, 100);
  const main = await connectTestRedis(redis.url);
  const prefix = uniquePrefix();
  const durability = { replicas: 1, waitMs: 200 };
  const walker = startWalkProcess({ redisUrl: redis.url, prefix, retentionSeconds: 3600, durability, onUnreadable: () => undefined, onError: () => undefined });
  try {
    const store = createRedisLeaseStore({ redis: main, prefix, durability });
    const subject = `repo:octo-org/app:walk-${uniq()}`;
    await store.create(makeLease({ subject, rule: 'deploy' }));
    // Until the walker has started and connected it hands walks back (null); on a busy machine that
    // takes longer than the first call waits. A walk that matches nothing shows it is up.
    await waitFor('the walker to be up', async () => (await walker.revokeAndQueue({ subject: `${subject}-none` }, revokeInput(), {})) !== null, 20_000, 100);
    const pid = replica.pid()!;
    process.kill(pid, 'SIGSTOP');
    try {
      // The walker's WAIT, on the connection that wrote the flips, is what is not confirmed.
      await expect(walker.revokeAndQueue({ rule: 'deploy', subject }, revokeInput(), {})).rejects.toBeInstanceOf(NotReplicatedError);
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    // The flip stands on the primary (a retry reports 0); it was only not confirmed.
    expect((await store.list({ subject }, { limit: 5 })).leases.map((l) => l.status)).toEqual(['revoked']);
  } finally {
    await walker.close();
    main.disconnect();
  }
});
