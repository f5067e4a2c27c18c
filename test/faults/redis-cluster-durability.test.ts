import { afterAll, beforeAll, expect, it } from 'vitest';
import { exchangeProof, startBroker, type TestBroker } from '../helpers/broker.ts';
import { AUD } from '../helpers/policies.ts';
import { startRedisCluster, type TestRedisCluster } from '../helpers/redis-cluster.ts';
import { command, type RedisNode } from '../helpers/redis-nodes.ts';
import { api, closeIssuers, lifecyclePolicy, sleep, startIssuers, uniq, waitFor, type Issuers } from '../lifecycle/harness.ts';

/**
 * LEASH_REDIS_MIN_REPLICAS=1 (and the default LEASH_REDIS_WAIT_MS) on a Cluster whose one primary
 * has lost its replica, under a steady trickle of exchanges: the leases on that primary's slots are
 * refused with a 503 and ended, their proofs stay usable, and the other primaries' leases are issued.
 * A WAIT a slot, or a WAIT sent while another was out, had writes there time out at the client:
 * written after all, active with no credential behind them, and their proofs used up.
 */
let cluster: TestRedisCluster;
let issuers: Issuers;
let broker: TestBroker;
let lostReplica: RedisNode | undefined;

beforeAll(async () => {
  cluster = await startRedisCluster({ primaries: 3, replicas: 1 });
  issuers = await startIssuers();
  broker = await startBroker({ policy: lifecyclePolicy(issuers), redisUrl: cluster.url, env: { LEASH_REDIS_MIN_REPLICAS: '1' } });
}, 60_000);
afterAll(async () => {
  await broker?.close();
  await closeIssuers(issuers);
  await cluster?.destroy();
});

const ready = async (): Promise<number> => (await api(broker.url, 'GET', '/readyz')).status;

it('a primary without its replica: its leases are refused and ended with their proofs still usable, the rest are issued', async () => {
  await waitFor('/readyz: every primary replicated', async () => (await ready()) === 200, 30_000, 100);
  const [primary] = await cluster.primaries();
  const replicaPort = Number(/slave0:ip=[^,]+,port=(\d+)/.exec(String(await command(primary!.port, 'INFO', 'replication')))?.[1]);
  lostReplica = cluster.nodes.find((n) => n.port === replicaPort)!;
  await lostReplica.kill();
  await waitFor('the replica to be gone', async () => /connected_slaves:0/.test(String(await command(primary!.port, 'INFO', 'replication'))), 15_000, 50);

  const jobs = await Promise.all(Array.from({ length: 24 }, async (_, i) => {
    const sub = `repo:octo-org/app:cluster-durability-${i}-${uniq()}`;
    return { sub, proof: await issuers.github.mint({ iss: issuers.github.url, aud: AUD, sub, jti: `jti-${uniq()}` }) };
  }));
  // One exchange every 40 ms: each lands in a turn of its own while the last one's WAIT is out.
  const answers = await Promise.all(jobs.map(async (job, i) => {
    await sleep(i * 40);
    return exchangeProof(broker.url, job.proof);
  }));
  expect(answers.map((a) => a.status).filter((s) => s !== 200 && s !== 503)).toEqual([]);
  const refused = jobs.filter((_, i) => answers[i]!.status === 503);
  expect(refused.length).toBeGreaterThan(0);
  expect(refused.length).toBeLessThan(jobs.length);
  for (const i of answers.keys()) if (answers[i]!.status === 503) expect(answers[i]!.body.access_token).toBeUndefined();

  // Each refused exchange's lease reached its primary and is ended, none left active.
  for (const job of refused) {
    const page = await broker.deps.store.list({ subject: job.sub }, { limit: 10 });
    expect(page.leases).toHaveLength(1);
    await waitFor(`the lease of ${job.sub} to be revoked`, async () => (await broker.deps.store.get(page.leases[0]!.id))?.status === 'revoked');
    expect(await broker.deps.store.get(page.leases[0]!.id)).toMatchObject({ reason: 'not replicated' });
  }

  await lostReplica.start();
  await waitFor('/readyz to be ready with the replica back', async () => (await ready()) === 200, 30_000, 100);
  // The job's retry with the same proof works: the refused attempt did not use it up.
  for (const job of refused) {
    const ok = await waitFor(`the proof of ${job.sub} to be exchanged`, async () => {
      const r = await exchangeProof(broker.url, job.proof);
      expect([200, 503]).toContain(r.status);
      return r.status === 200 ? r : null;
    }, 15_000, 200);
    expect(await broker.deps.store.get(ok.body.lease_id)).toMatchObject({ status: 'active', subject: job.sub });
  }
}, 120_000);
