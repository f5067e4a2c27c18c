/**
 * Section `failover`: a Sentinel set (one primary, two replicas, three sentinels) and brokers with
 * REDIS_URL=redis+sentinel://...
 *
 * 1. The cost of WAIT on the exchange: a broker with LEASH_REDIS_MIN_REPLICAS=1 against one with
 *    =0 on the same Sentinel set, both up, in interleaved slices at full load.
 * 2. The failover: steady exchanges (~200/s) on the MIN_REPLICAS=1 broker, and the holders of one
 *    lease in ten revoking it (POST /revoke); SIGKILL the primary; go on until the exchange has
 *    succeeded for a while again. Then every lease whose exchange answered 200 is read back from
 *    the new primary (it must exist), and every revocation that answered 200 must show as revoked.
 */
import { connectRedis, whenReady } from '../src/redis/connect.ts';
import { createRedisLeaseStore } from '../src/leases/redis-store.ts';
import { startRedisSentinel } from '../test/helpers/redis-sentinel.ts';
import type { ChildServer } from './child.ts';
import { REDIS_PREFIX, benchPolicy, exchangeBody, firstExchange, startBroker } from './env.ts';
import type { LoadConfig } from './exchange-load.ts';
import type { PairedRatios } from './interleaved.ts';
import { startPacedLoad, windowStats, type WindowStats } from './paced-load.ts';
import { startProofIssuer } from './proof-issuer.ts';
import { exchangeSlices } from './slices.ts';
import { log, sleep } from './util.ts';

export interface FailoverResult {
  /** WAIT 1 against no WAIT, ratios min1 / min0. */
  waitCost: PairedRatios;
  rate: number;
  /** Exchanges answered 200 before, during and after the failover, all read back afterwards. */
  acknowledged: number;
  lost: number;
  lostIds: string[];
  revocationsAcknowledged: number;
  revocationsLost: number;
  /** Answers that were not 200 after the kill, by status (0 = no answer). */
  failedAfterKill: Record<string, number>;
  unavailable503: number;
  /** From the kill until the first 200 of a request sent after the last failed one. */
  recoverySeconds: number;
  /** From the kill until the sentinels named a new primary with a replica linked. */
  promotionSeconds: number;
  before: WindowStats;
  after: WindowStats;
}

export async function benchFailover(cfg: LoadConfig & { rounds: number; sliceMs: number; rate: number; afterS: number }): Promise<FailoverResult> {
  const sentinel = await startRedisSentinel({ replicas: 2 });
  const issuer = await startProofIssuer('RS256');
  const brokers: ChildServer[] = [];
  let reader: ReturnType<typeof connectRedis> | undefined;
  try {
    const policyPath = benchPolicy(issuer.url);
    const min1 = await startBroker({ name: 'leash-wait-1', redisUrl: sentinel.url, policyPath, role: 'all', env: { LEASH_REDIS_MIN_REPLICAS: '1' } });
    brokers.push(min1);
    const min0 = await startBroker({ name: 'leash-wait-0', redisUrl: sentinel.url, policyPath, role: 'api', issuer: min1.issuer, env: { LEASH_REDIS_MIN_REPLICAS: '0' } });
    brokers.push(min0);
    const waitCost = await exchangeSlices({ 'MIN_REPLICAS=1': min1, 'MIN_REPLICAS=0': min0 }, 'MIN_REPLICAS=1', 'MIN_REPLICAS=0', issuer, cfg);
    await min0.stop();
    brokers.splice(brokers.indexOf(min0), 1);

    // Enough proofs for the whole run at the rate (before + failover + after, with room).
    const seconds = 10 + 30 + cfg.afterS;
    const proofs = await issuer.mint(Math.ceil(cfg.rate * seconds), { repoPrefix: 'failover' });
    await firstExchange(min1.url, () => proofs.pop()!);
    const acked: { id: string; at: number }[] = [];
    const revocations: { id: string; at: number; status: number }[] = [];
    const revoking: Promise<void>[] = [];
    const load = startPacedLoad({
      target: min1.url,
      rate: cfg.rate,
      next: (i) => (i < proofs.length ? { path: '/token', body: exchangeBody(proofs[i]!) } : null),
      keepBody: () => true,
      onAnswer: (s) => {
        if (s.status !== 200) return;
        const { lease_id: id, access_token: token } = JSON.parse(s.body) as { lease_id: string; access_token: string };
        acked.push({ id, at: s.doneAt });
        // One holder in ten revokes its own lease (RFC 7009): a confirmed revocation must survive too.
        if (acked.length % 10 === 0) {
          revoking.push(
            fetch(`${min1.url}/revoke`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `token=${token}` })
              .then(async (res) => { await res.arrayBuffer(); revocations.push({ id, at: performance.now(), status: res.status }); })
              .catch(() => { revocations.push({ id, at: performance.now(), status: 0 }); }),
          );
        }
      },
    });
    const t0 = performance.now();
    await sleep(10_000);
    const killAt = performance.now();
    const gone = await sentinel.killPrimary();
    log(`failover: SIGKILLed the primary on port ${gone.port} with ${acked.length} exchanges acknowledged`);
    await sentinel.waitForPromotion(gone, { replicas: 1, timeoutMs: 30_000 });
    const promotionSeconds = (performance.now() - killAt) / 1000;
    log(`failover: a new primary with a replica after ${promotionSeconds.toFixed(1)} s`);
    // Run on until the exchange has answered 200 for `afterS` seconds in a row (bounded).
    const deadline = performance.now() + 30_000 + cfg.afterS * 1000;
    const lastFailure = (): number => Math.max(killAt, ...load.samples.filter((s) => s.status !== 200 && s.sentAt >= killAt).map((s) => s.sentAt));
    while (performance.now() < deadline && performance.now() - lastFailure() < cfg.afterS * 1000) await sleep(500);
    const samples = await load.stop();
    await Promise.all(revoking);
    const end = performance.now();

    const afterKill = samples.filter((s) => s.sentAt >= killAt && s.doneAt >= killAt);
    const inFlightAtKill = samples.filter((s) => s.sentAt < killAt && s.doneAt >= killAt && s.status !== 200);
    const failed = [...afterKill.filter((s) => s.status !== 200), ...inFlightAtKill];
    const failedAfterKill: Record<string, number> = {};
    for (const s of failed) failedAfterKill[String(s.status)] = (failedAfterKill[String(s.status)] ?? 0) + 1;
    const lastFailed = Math.max(-Infinity, ...failed.map((s) => s.sentAt));
    const firstOkAfter = samples.filter((s) => s.status === 200 && s.sentAt > lastFailed).reduce((m, s) => Math.min(m, s.doneAt), Infinity);
    const recoverySeconds = failed.length === 0 ? 0 : (firstOkAfter - killAt) / 1000;

    // Read every acknowledged lease back through the new primary.
    reader = connectRedis(sentinel.url);
    reader.on('error', () => undefined);
    await whenReady(reader, 10_000);
    const store = createRedisLeaseStore({ redis: reader, prefix: REDIS_PREFIX });
    const lostIds: string[] = [];
    for (let i = 0; i < acked.length; i += 500) {
      const got = await Promise.all(acked.slice(i, i + 500).map((a) => store.get(a.id)));
      got.forEach((l, k) => { if (!l) lostIds.push(acked[i + k]!.id); });
    }
    const confirmed = revocations.filter((r) => r.status === 200);
    let revocationsLost = 0;
    for (const r of confirmed) {
      const l = await store.get(r.id);
      if (!l || l.status !== 'revoked') revocationsLost++;
    }
    log(`failover: ${acked.length} acknowledged leases read back, ${lostIds.length} missing; ${confirmed.length} confirmed revocations, ${revocationsLost} not revoked`);
    return {
      waitCost,
      rate: cfg.rate,
      acknowledged: acked.length,
      lost: lostIds.length,
      lostIds: lostIds.slice(0, 20),
      revocationsAcknowledged: confirmed.length,
      revocationsLost,
      failedAfterKill,
      unavailable503: failedAfterKill['503'] ?? 0,
      recoverySeconds,
      promotionSeconds,
      before: windowStats(samples, t0 + 1_000, killAt),
      after: windowStats(samples, Number.isFinite(firstOkAfter) ? firstOkAfter : killAt, end),
    };
  } finally {
    reader?.disconnect();
    for (const b of brokers) await b.stop();
    await issuer.close();
    await sentinel.destroy();
  }
}
