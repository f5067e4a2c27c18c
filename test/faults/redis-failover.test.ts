import { afterAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { connectRedis, whenReady, type RedisClient } from '../../src/redis/connect.ts';
import { shardOfLeaseId } from '../../src/leases/lease-id.ts';
import type { Lease } from '../../src/leases/lease.ts';
import { exchangeProof, startBroker, type TestBroker } from '../helpers/broker.ts';
import { AUD } from '../helpers/policies.ts';
import { startRedisCluster } from '../helpers/redis-cluster.ts';
import { startRedisSentinel } from '../helpers/redis-sentinel.ts';
import {
  api, closeIssuers, endingEvents, lifecyclePolicy, operatorToken, sleep, startIssuers, uniq, waitFor, type Issued, type Issuers,
} from '../lifecycle/harness.ts';

/**
 * A primary SIGKILLed under steady exchange load with LEASH_REDIS_MIN_REPLICAS=1: nothing that was
 * acknowledged is lost (no lease whose credential was handed out, no confirmed revocation), no lease
 * is left active without a credential, endings still happen once, and exchanges succeed again on
 * their own. Counts are printed for the README.
 */
interface Deployment {
  url: string;
  /** Kills a primary; resolves once its replacement is serving (with a replica of its own). */
  killPrimary(): Promise<{ promoted: Promise<void> }>;
  destroy(): Promise<void>;
}

const deployments: [string, () => Promise<Deployment>][] = [
  ['Sentinel (primary, 2 replicas, 3 sentinels)', async () => {
    const s = await startRedisSentinel();
    return {
      url: s.url,
      async killPrimary() {
        const gone = await s.killPrimary();
        return { promoted: s.waitForPromotion(gone, { replicas: 1 }).then(() => undefined) };
      },
      destroy: () => s.destroy(),
    };
  }],
  ['Cluster (3 primaries, 2 replicas each)', async () => {
    const c = await startRedisCluster({ replicas: 2 });
    return {
      url: c.url,
      async killPrimary() {
        const gone = (await c.primaries())[0]!;
        await c.kill(gone);
        return { promoted: c.waitForFailover(gone, { replicas: 1 }) };
      },
      destroy: () => c.destroy(),
    };
  }],
];

async function activeLeases(broker: TestBroker): Promise<Lease[]> {
  const out: Lease[] = [];
  let cursor: string | null = null;
  do {
    const page = await broker.deps.store.list({ status: 'active' }, { limit: 500, cursor });
    out.push(...page.leases);
    cursor = page.next_cursor;
  } while (cursor !== null);
  return out;
}

describe.each(deployments)('failover on %s', (name, start) => {
  let deployment: Deployment | undefined;
  let issuers: Issuers | undefined;
  let broker: TestBroker | undefined;
  let client: RedisClient | undefined;
  afterAll(async () => {
    await broker?.close();
    await closeIssuers(issuers);
    client?.disconnect();
    await deployment?.destroy();
  });

  it('loses no acknowledged lease or revocation, ends each lease once, and recovers on its own', async () => {
    deployment = await start();
    const logLines: string[] = [];
    issuers = await startIssuers();
    broker = await startBroker({
      policy: lifecyclePolicy(issuers), redisUrl: deployment.url, logLines,
      env: { LEASH_REDIS_MIN_REPLICAS: '1', LEASH_REDIS_WAIT_MS: '500' },
    });
    client = connectRedis(deployment.url);
    client.on('error', () => undefined);
    await whenReady(client, 10_000);
    await waitFor('/readyz: every primary replicated', async () => (await api(broker!.url, 'GET', '/readyz')).status === 200, 20_000, 100);
    const op = await operatorToken(broker.url, issuers, broker.config.issuer, { ttl: '1800' }).catch((err) => {
      throw new Error(`${err}\n${logLines.filter((l) => l.includes('"level":5')).join('\n')}`);
    });
    const url = broker.url;
    const github = issuers.github;

    const acknowledged: (Issued & { at: number })[] = [];
    const revoked: { id: string; at: number }[] = [];
    const unavailable: number[] = [];
    const otherFailures: string[] = [];
    let stop = false;
    let killedAt = Infinity;

    // Steady load: 6 clients exchanging proofs for task-bound leases, some short-lived (endings
    // during the failover), every 5th long-lived one revoked by the operator right after it is issued.
    const client1 = async (c: number): Promise<void> => {
      for (let n = 0; !stop; n++) {
        const sub = `repo:octo-org/app:load-${c}-${n % 16}`;
        const proof = await github.mint({ iss: github.url, aud: AUD, sub, jti: `jti-${uniq()}` });
        const ttl = n % 3 === 0 ? '2' : '600';
        const res = await exchangeProof(url, proof, { task_id: `task-${c}-${n}`, ttl }).catch((err: Error) => ({ status: 0, body: { error: err.message } }));
        const at = Date.now();
        if (res.status === 200) {
          acknowledged.push({ token: res.body.access_token, lease_id: res.body.lease_id, expires_in: res.body.expires_in, at });
          // Long-lived only: a 2 s lease may be past its expiry by the time a slow revocation lands.
          if (n % 5 === 1 && ttl !== '2') {
            const r = await api(url, 'POST', `/v1/leases/${res.body.lease_id}/revoke`, op.token, { reason: 'load' });
            if (r.status === 200 && r.body.status === 'revoked') revoked.push({ id: res.body.lease_id, at: Date.now() });
            else if (r.status === 503) unavailable.push(Date.now());
            else otherFailures.push(`revoke ${r.status} ${JSON.stringify(r.body)}`);
          }
        } else if (res.status === 503 && res.body?.error === 'temporarily_unavailable') unavailable.push(at);
        else otherFailures.push(`exchange ${res.status} ${JSON.stringify(res.body)}`);
      }
    };
    const load = Promise.all([0, 1, 2, 3, 4, 5].map(client1));

    await waitFor('steady load', async () => acknowledged.length >= 60, 30_000, 50);
    killedAt = Date.now();
    const ackedBeforeKill = acknowledged.length;
    const revokedBeforeKill = revoked.length;
    const { promoted } = await deployment.killPrimary();
    await promoted;
    const promotedAt = Date.now();
    // Recovered: 30 exchanges in a row answered 200 after the last failure, with no restart.
    await waitFor('exchanges to succeed again', async () => {
      const lastFailure = Math.max(killedAt, ...unavailable);
      return acknowledged.filter((a) => a.at > lastFailure).length >= 30;
    }, 30_000, 50).catch(async (err) => {
      stop = true;
      const ready = await api(url, 'GET', '/readyz');
      throw new Error(`${err}; /readyz ${JSON.stringify(ready.body)}; log: ${logLines.slice(-8).join('\n')}`);
    });
    stop = true;
    await load;
    const lastFailure = Math.max(killedAt, ...unavailable);

    // Every lease whose credential was handed out is there; every confirmed revocation holds.
    const missing: string[] = [];
    for (const a of acknowledged) {
      const r = await api(url, 'GET', `/v1/leases/${a.lease_id}`, op.token);
      if (r.status !== 200) missing.push(`${a.lease_id} (shard ${shardOfLeaseId(a.lease_id)}): ${r.status}`);
    }
    const unrevoked: string[] = [];
    for (const r of revoked) {
      const l = await api(url, 'GET', `/v1/leases/${r.id}`, op.token);
      if (l.body?.status !== 'revoked') unrevoked.push(`${r.id}: ${l.body?.status}`);
    }
    expect(missing).toEqual([]);
    expect(unrevoked).toEqual([]);
    expect(otherFailures).toEqual([]);

    // Endings: every revoked or short-lived acknowledged lease ends exactly once in the record.
    const revokedIds = new Set(revoked.map((r) => r.id));
    const ending = acknowledged.filter((a) => a.expires_in <= 2 || revokedIds.has(a.lease_id));
    await waitFor('every ending', async () => {
      const events = await endingEvents(client as Redis, broker!.config.redisPrefix);
      return ending.every((a) => events.has(a.lease_id));
    }, 40_000, 250);
    const events = await endingEvents(client as Redis, broker.config.redisPrefix);
    const twice = ending.filter((a) => events.get(a.lease_id)!.length !== 1).map((a) => a.lease_id);
    expect(twice).toEqual([]);

    // And no lease is left active with no credential behind it: what a 503 may have written is undone.
    const handedOut = new Set(acknowledged.map((a) => a.lease_id));
    let orphans: string[] = [];
    await waitFor('no active lease without a credential', async () => {
      orphans = (await activeLeases(broker!))
        .filter((l) => l.subject.startsWith('repo:octo-org/app:load-') && l.expires_at * 1000 > Date.now() + 1_000 && !handedOut.has(l.id))
        .map((l) => `${l.id} (shard ${shardOfLeaseId(l.id)})`);
      return orphans.length === 0;
    }, 30_000, 250).catch(() => undefined);
    expect(orphans).toEqual([]);

    // A fresh exchange works, with no restart of the broker, once /readyz says so: under a full test
    // run a replica re-syncing after the failover can leave the new primary short of one for a
    // moment (WAIT 1: a 503, and /readyz not ready, as documented).
    await waitFor('/readyz ready after the failover', async () => (await api(url, 'GET', '/readyz')).status === 200, 20_000, 100);
    const proof = await github.mint({ iss: github.url, aud: AUD, sub: 'repo:octo-org/app:after', jti: `jti-${uniq()}` });
    const fresh = await exchangeProof(url, proof);
    expect({ status: fresh.status, error: fresh.body.error_description }).toEqual({ status: 200, error: undefined });

    const recoverySeconds = (lastFailure - killedAt) / 1000;
    console.log(`[failover ${name}] acknowledged ${acknowledged.length} (${ackedBeforeKill} before the kill), lost 0, ` +
      `revocations confirmed ${revoked.length} (${revokedBeforeKill} before the kill), still revoked ${revoked.length - unrevoked.length}, ` +
      `503s during failover ${unavailable.length}, endings checked ${ending.length} (each once), ` +
      `promotion after ${((promotedAt - killedAt) / 1000).toFixed(1)} s, exchanges succeeding again ${recoverySeconds.toFixed(1)} s after the kill`);
    expect(recoverySeconds).toBeLessThan(name.startsWith('Sentinel') ? 10 : 20);
    await sleep(0);
  }, 180_000);
});
