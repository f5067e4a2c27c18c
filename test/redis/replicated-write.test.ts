import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis, type Cluster } from 'ioredis';
import { connectRedis, whenReady } from '../../src/redis/connect.ts';
import { redisKeys, shardOfLeaseId } from '../../src/redis/keys.ts';
import { startRedisCluster, type TestRedisCluster } from '../helpers/redis-cluster.ts';
import { createRedisLeaseStore } from '../../src/leases/redis-store.ts';
import { NotReplicatedError, type Durability } from '../../src/redis/replicated-write.ts';
import { makeLease } from '../contract/lease-fixtures.ts';
import { connectTestRedis, uniquePrefix } from '../contract/redis-client.ts';
import { freePort, startRedis, type TestRedis } from '../helpers/redis-server.ts';
import { baseArgs, command, spawnRedisNode, type RedisNode } from '../helpers/redis-nodes.ts';
import { waitFor } from '../helpers/wait.ts';

/**
 * LEASH_REDIS_MIN_REPLICAS: the lease writes a connection sends in one turn of the event loop share
 * one WAIT (on a Cluster, one per node), and each is still confirmed, or refused, as if it had its own.
 */
let primary: TestRedis;
let replica: RedisNode | undefined;
let redis: Redis;
let observer: Redis;
// Long enough for a replica on a machine busy with the rest of the suite.
const durability: Durability = { replicas: 1, waitMs: 1_000 };

const startReplica = async (): Promise<RedisNode> => {
  const port = await freePort();
  const dir = `${primary.dir}/replica-${port}`;
  return spawnRedisNode(port, dir, [...baseArgs(port, dir), '--replicaof', '127.0.0.1', String(primary.port)]);
};
const connectedReplicas = async (): Promise<number> => Number(/connected_slaves:(\d+)/.exec(await observer.info('replication'))?.[1] ?? 0);
/** WAIT commands the primary has run so far (INFO commandstats). */
const waitsRun = async (): Promise<number> => Number(/cmdstat_wait:calls=(\d+)/.exec(await observer.info('commandstats'))?.[1] ?? 0);

beforeAll(async () => {
  primary = await startRedis();
  redis = await connectTestRedis(primary.url);
  observer = await connectTestRedis(primary.url);
});
afterAll(async () => {
  redis?.disconnect();
  observer?.disconnect();
  await replica?.kill();
  await primary?.destroy();
});

const leasesOf = (tag: string, n: number) => Array.from({ length: n }, (_, i) => makeLease({ subject: `repo:octo-org/${tag}-${i}:ref:refs/heads/main` }));

describe('lease writes with LEASH_REDIS_MIN_REPLICAS=1', () => {
  it('made in one turn share one WAIT, and each is confirmed and stored', async () => {
    replica = await startReplica();
    await waitFor('the replica to be connected', async () => (await connectedReplicas()) === 1, 15_000, 50);
    const store = createRedisLeaseStore({ redis, prefix: uniquePrefix(), durability });
    // A replica still catching up may miss one WAIT: the warm-up waits until one is confirmed.
    await waitFor('a first write to be confirmed', async () => store.create(makeLease()).then(() => true, () => false), 15_000, 100);
    const leases = leasesOf('turn', 40);
    // The commands as the primary runs them: the WAIT must come after every write it answers for.
    const monitor = await new Redis(primary.url).monitor();
    const ran: string[] = [];
    monitor.on('monitor', (_time: string, args: string[]) => ran.push(String(args[0]).toLowerCase()));
    try {
      const before = await waitsRun();
      await Promise.all(leases.map((l) => store.create(l)));
      // Every one of the 40 went out in this turn: one WAIT after them all, not one each.
      expect((await waitsRun()) - before).toBe(1);
      await waitFor('MONITOR to show the WAIT', async () => ran.includes('wait'), 5_000, 20);
      const order = ran.filter((c) => c === 'evalsha' || c === 'wait');
      expect(order).toEqual([...leases.map(() => 'evalsha'), 'wait']);
    } finally {
      monitor.disconnect();
    }
    const stored = await Promise.all(leases.map((l) => store.get(l.id)));
    expect(stored.map((l) => l?.status)).toEqual(leases.map(() => 'active'));
  });

  it('made in different turns each wait for their own turn\'s WAIT', async () => {
    const store = createRedisLeaseStore({ redis, prefix: uniquePrefix(), durability });
    const [a, b] = leasesOf('turns', 2);
    const before = await waitsRun();
    const first = store.create(a!);
    // The next turn: the first turn's WAIT has left, so this write must not count on it.
    await new Promise((resolve) => setImmediate(resolve));
    const second = store.create(b!);
    await Promise.all([first, second]);
    expect((await waitsRun()) - before).toBe(2);
  });

  it('sent again after NOSCRIPT (the turn\'s WAIT has left by then) share the next batch\'s WAIT', async () => {
    const store = createRedisLeaseStore({ redis, prefix: uniquePrefix(), durability });
    await store.create(makeLease());
    await observer.script('FLUSH');
    const leases = leasesOf('noscript', 5);
    const before = await waitsRun();
    await Promise.all(leases.map((l) => store.create(l)));
    // The turn's WAIT, which covered only the refused EVALSHAs, and one after the EVALs.
    expect((await waitsRun()) - before).toBe(2);
    const stored = await Promise.all(leases.map((l) => store.get(l.id)));
    expect(stored.map((l) => l?.status)).toEqual(leases.map(() => 'active'));
  });

  it('made in one turn with no replica are each refused as not replicated', async () => {
    await replica!.kill();
    await waitFor('the replica to be gone', async () => (await connectedReplicas()) === 0, 15_000, 50);
    const store = createRedisLeaseStore({ redis, prefix: uniquePrefix(), durability });
    const leases = leasesOf('unreplicated', 20);
    const before = await waitsRun();
    const outcomes = await Promise.allSettled(leases.map((l) => store.create(l)));
    expect((await waitsRun()) - before).toBe(1);
    for (const o of outcomes) {
      expect(o.status).toBe('rejected');
      expect((o as PromiseRejectedResult).reason).toBeInstanceOf(NotReplicatedError);
    }
  });

  it('made while a WAIT is out go in one batch after it, so with no replica none waits out more than two WAITs', async () => {
    expect(await connectedReplicas()).toBe(0);
    // As the broker sets it up: a command timeout of 2 s plus LEASH_REDIS_WAIT_MS.
    const waitMs = 400;
    const client = new Redis(primary.url, { commandTimeout: 2_000 + waitMs, maxRetriesPerRequest: 1 });
    client.on('error', () => undefined);
    try {
      await client.ping();
      const store = createRedisLeaseStore({ redis: client, prefix: uniquePrefix(), durability: { replicas: 1, waitMs } });
      const leases = leasesOf('successive-turns', 12);
      const before = await waitsRun();
      // A write every 50 ms: a WAIT each would queue twelve 400 ms WAITs on the connection, and the
      // writes behind the fifth would time out at the client, written but with their outcome unknown.
      const outcomes = await Promise.allSettled(leases.map(async (l, i) => {
        await new Promise((resolve) => setTimeout(resolve, i * 50));
        return store.create(l);
      }));
      for (const o of outcomes) expect((o as PromiseRejectedResult).reason).toBeInstanceOf(NotReplicatedError);
      // Batches at 0, 400 and 800 ms; a slow machine's late timers may split one more.
      expect((await waitsRun()) - before).toBeLessThan(leases.length / 2);
    } finally {
      client.disconnect();
    }
  });

  it('whose WAIT outlasts the client\'s command timeout are refused as not replicated, their write\'s reply kept', async () => {
    expect(await connectedReplicas()).toBe(0);
    const impatient = new Redis(primary.url, { commandTimeout: 300, maxRetriesPerRequest: 1 });
    impatient.on('error', () => undefined);
    try {
      await impatient.ping();
      const prefix = uniquePrefix();
      const store = createRedisLeaseStore({ redis: impatient, prefix, durability: { replicas: 1, waitMs: 5_000 } });
      const leases = leasesOf('wait-timed-out', 5);
      const outcomes = await Promise.allSettled(leases.map((l) => store.create(l)));
      for (const o of outcomes) {
        const reason = (o as PromiseRejectedResult).reason;
        expect(reason).toBeInstanceOf(NotReplicatedError);
        expect(reason.detail).toMatch(/0 of 1 replica\(s\) confirmed the write \(Command timed out\)/);
        // The script's success (0; a refusal is negative): the lease was written, so the caller must end it.
        expect(reason.result).toBe(0);
      }
      const reader = createRedisLeaseStore({ redis: observer, prefix });
      expect((await Promise.all(leases.map((l) => reader.get(l.id)))).map((l) => l?.status)).toEqual(leases.map(() => 'active'));
    } finally {
      impatient.disconnect();
    }
  });
});

describe('lease writes with LEASH_REDIS_MIN_REPLICAS=1 on a Cluster', () => {
  let deployment: TestRedisCluster;
  let cluster: Cluster;
  beforeAll(async () => {
    deployment = await startRedisCluster({ primaries: 3, replicas: 1 });
    cluster = connectRedis(deployment.url) as Cluster;
    await whenReady(cluster, 15_000);
  }, 60_000);
  afterAll(async () => {
    cluster?.disconnect();
    await deployment?.destroy();
  });
  const clusterWaits = async (): Promise<number> => {
    const counts = await Promise.all((await deployment.primaries()).map(async (n) => Number(/cmdstat_wait:calls=(\d+)/.exec(String(await command(n.port, 'INFO', 'commandstats')))?.[1] ?? 0)));
    return counts.reduce((a, b) => a + b, 0);
  };

  it('made in one turn share a WAIT per node, sent after them in one pipeline to the node that ran them', async () => {
    const store = createRedisLeaseStore({ redis: cluster, prefix: uniquePrefix(), durability });
    await waitFor('a first write to be confirmed', async () => store.create(makeLease()).then(() => true, () => false), 15_000, 100);
    // Every primary learns the script (its first EVALSHA there is refused NOSCRIPT, and sent again).
    await Promise.allSettled(leasesOf('cluster-warm-up', 64).map((l) => store.create(l)));
    const leases = leasesOf('cluster-turn', 64);
    const before = await clusterWaits();
    await Promise.all(leases.map((l) => store.create(l)));
    const waits = (await clusterWaits()) - before;
    // One per primary written (the 16 lease shards are slots spread over the three), not one per
    // write or per shard.
    expect(waits).toBeGreaterThan(0);
    expect(waits).toBeLessThanOrEqual((await deployment.primaries()).length);
    const stored = await Promise.all(leases.map((l) => store.get(l.id)));
    expect(stored.map((l) => l?.status)).toEqual(leases.map(() => 'active'));
  });

  it('made in one turn with a primary\'s replica gone: that node\'s writes are refused as not replicated, the others are confirmed', async () => {
    const prefix = uniquePrefix();
    // The default LEASH_REDIS_WAIT_MS: one WAIT for the node's writes, within the client's 2 s
    // command timeout (a WAIT per slot, run one after another, had the last writes time out).
    const store = createRedisLeaseStore({ redis: cluster, prefix, durability: { replicas: 1, waitMs: 1_000 } });
    const [primaryNode] = await deployment.primaries();
    const replicaPort = Number(/slave0:ip=[^,]+,port=(\d+)/.exec(String(await command(primaryNode!.port, 'INFO', 'replication')))?.[1]);
    const replicaNode = deployment.nodes.find((n) => n.port === replicaPort)!;
    await replicaNode.kill();
    try {
      await waitFor('the replica to be gone', async () => /connected_slaves:0/.test(String(await command(primaryNode!.port, 'INFO', 'replication'))), 15_000, 50);
      const leases = leasesOf('cluster-unreplicated', 48);
      const outcomes = await Promise.allSettled(leases.map((l) => store.create(l)));
      const refused = outcomes.filter((o) => o.status === 'rejected');
      // Every refusal is the WAIT's, and only the leases on that primary's slots were refused.
      expect(refused.length).toBeGreaterThan(0);
      expect(refused.length).toBeLessThan(leases.length);
      for (const o of refused) expect((o as PromiseRejectedResult).reason).toBeInstanceOf(NotReplicatedError);
      const slotOf = async (key: string): Promise<number> => Number(await command(primaryNode!.port, 'CLUSTER', 'KEYSLOT', key));
      const onThatPrimary = await Promise.all(leases.map(async (l) => (await deployment.primaryOfSlot(await slotOf(redisKeys(prefix).leases(shardOfLeaseId(l.id))))).port === primaryNode!.port));
      expect(outcomes.map((o) => o.status)).toEqual(onThatPrimary.map((on) => (on ? 'rejected' : 'fulfilled')));
    } finally {
      await replicaNode.start();
    }
  });
});
