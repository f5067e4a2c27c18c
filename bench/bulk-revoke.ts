/**
 * Section 8: bulk revocation. 100,000 active leases of one subject under one rule: a sample of
 * them issued by real exchanges (so we hold their tokens), the rest written straight through the
 * lease store. An operator (whose token came from the exchange like anyone's) calls POST
 * /v1/leases/revoke {rule, subject}; we time that call (store.revokeWhere + queueing the effects)
 * and how long until introspection of every sampled token answers active:false. Then how long the
 * worker takes to carry out the effects of all of them (bounded wait).
 */
import { Redis } from 'ioredis';
import { redisKeys, SHARD_COUNT } from '../src/redis/keys.ts';
import { createRedisLeaseStore } from '../src/leases/redis-store.ts';
import { BENCH_RULE, REDIS_PREFIX, benchPolicy, exchangeOnce, firstExchange, startBroker, startRedis } from './env.ts';
import { benchLease, createMany } from './leases.ts';
import { introspector, pullKillSwitch } from './kill-switch.ts';
import { startProofIssuer } from './proof-issuer.ts';
import { MACHINE, cpuSeconds } from './load-generator.ts';
import { log, redisPid, sleep, waitUntil } from './util.ts';

export interface BulkRevokeResult {
  leases: number;
  revoked: number;
  sample: number;
  /** The POST /v1/leases/revoke call: every lease flipped to revoked, effects queued. */
  revokeCallMs: number;
  /** From sending the revoke until every sampled token was seen inactive at introspection (a few polled every 100 ms during the call, all after it). */
  visibleMs: number;
  /** From sending the revoke until the worker had finalized every one (NaN if not within the bound). */
  effectsDoneMs: number;
  effectsPendingAtEnd: number;
  /** CPU milliseconds Redis and the broker spent during the revoke call. */
  cpuDuringCallMs: Record<string, number>;
  /** CPU the rest of the machine used meanwhile, in % of one core (includes the introspection polls). */
  otherLoadDuringCallPct: number;
}

const BULK_REPO = 'bulk-target';

export async function benchBulkRevoke(opts: { leases: number; sample: number; effectsTimeoutMs: number }): Promise<BulkRevokeResult> {
  const redisServer = await startRedis();
  const issuer = await startProofIssuer();
  const redis = new Redis(redisServer.url, { enableAutoPipelining: true });
  let broker: Awaited<ReturnType<typeof startBroker>> | undefined;
  try {
    broker = await startBroker({ name: 'leash-bulk', redisUrl: redisServer.url, policyPath: benchPolicy(issuer.url, { maxActive: opts.sample + 10 }), role: 'all' });
    const url = broker.url;
    const [opsProof] = await issuer.mint(1, { repo: 'ops' });
    const operator = (await firstExchange(url, () => opsProof!)) as { access_token: string; scope: string };
    if (!operator.scope.includes('leash:admin')) throw new Error(`the operator token lacks leash:admin: ${operator.scope}`);

    // The sample: real tokens for leases of the target subject.
    const proofs = await issuer.mint(opts.sample, { repo: BULK_REPO });
    const tokens: string[] = [];
    for (let i = 0; i < proofs.length; i += 16) {
      const answers = await Promise.all(proofs.slice(i, i + 16).map((p) => exchangeOnce(url, p)));
      for (const a of answers) {
        if (a.status !== 200) throw new Error(`sample exchange failed: ${a.status} ${JSON.stringify(a.body).slice(0, 300)}`);
        tokens.push((a.body as { access_token: string }).access_token);
      }
    }
    const subject = `repo:octo-org/${BULK_REPO}:ref:refs/heads/main`;

    // The rest, straight through the store: same rule, issuer and subject.
    const store = createRedisLeaseStore({ redis, prefix: REDIS_PREFIX });
    const now = Math.floor(Date.now() / 1000);
    const t0 = performance.now();
    const rest = opts.leases - tokens.length;
    await createMany(store, rest, (i) => benchLease({ rule: BENCH_RULE, subject, issuedAt: now, expiresAt: now + 1800 + (i % 1800), proofIss: issuer.url }), { inFlight: 2_000 });
    log(`bulk revoke: ${opts.leases.toLocaleString('en-US')} active leases of ${subject} (${tokens.length} by exchange) in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

    const introspect = introspector(url, operator.access_token);
    const activeBefore = (await Promise.all(tokens.map(introspect))).filter(Boolean).length;
    if (activeBefore !== tokens.length) throw new Error(`only ${activeBefore} of ${tokens.length} sampled tokens are active before the revocation`);

    // Introspection polls run alongside the revoke call: leases flip batch by batch inside it.
    const pids = { redis: await redisPid(redis), broker: broker.pid };
    const cpu0 = cpuSeconds(pids);
    const { start, answer, visibleAt } = await pullKillSwitch(url, operator.access_token, subject, tokens, 30_000);
    const visibleMs = visibleAt - start;
    const revokeCallMs = answer.ms;
    const cpu1 = cpuSeconds(pids);
    const cpuDuringCallMs = Object.fromEntries(Object.keys(pids).map((k) => [k, ((cpu1[k] ?? NaN) - (cpu0[k] ?? NaN)) * 1000]));
    // Everything else on the machine over the call: other people's jobs slow Redis down.
    const busyOthersPct = (100 * ((cpu1[MACHINE] ?? NaN) - (cpu0[MACHINE] ?? NaN) - (cpuDuringCallMs.redis! + cpuDuringCallMs.broker!) / 1000)) / (revokeCallMs / 1000);

    const keys = redisKeys(REDIS_PREFIX);
    const pending = async (): Promise<number> => {
      const counts = await Promise.all(Array.from({ length: SHARD_COUNT }, (_, s) => redis.zcard(keys.pending(s))));
      return counts.reduce((a, b) => a + b, 0);
    };
    const done = await waitUntil(async () => (await pending()) === 0, opts.effectsTimeoutMs, 100);
    const effectsDoneMs = done ? performance.now() - start : NaN;
    return {
      leases: opts.leases,
      revoked: answer.body.revoked!,
      sample: tokens.length,
      revokeCallMs,
      visibleMs,
      effectsDoneMs,
      effectsPendingAtEnd: await pending(),
      cpuDuringCallMs,
      otherLoadDuringCallPct: Math.max(0, busyOthersPct),
    };
  } finally {
    await broker?.stop();
    redis.disconnect();
    await issuer.close();
    await redisServer.destroy();
  }
}
