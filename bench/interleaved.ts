/**
 * The JWT exchange against oidc-provider, measured as pairs of short slices: both servers are up
 * at once and the load moves between them every few seconds, the order alternating pair by pair.
 * This machine's speed drifts by 20% or more within a minute, so two 10 s runs a minute apart
 * differ by more than the servers do; slices seconds apart see the same machine, and many pairs
 * give the ratio a confidence interval instead of a coin flip.
 */
import { Redis } from 'ioredis';
import { isJwtAccessToken, oidcTokenRequest, startOidcProvider } from './baselines/oidc-provider.ts';
import type { ChildServer } from './child.ts';
import { benchPolicy, exchangeBody, firstExchange, startBroker, startRedis } from './env.ts';
import { isJwtExchangeAnswer, mintProofs, type LoadConfig } from './exchange-load.ts';
import { runLoad, type LoadResult } from './load-generator.ts';
import { startProofIssuer } from './proof-issuer.ts';
import { log, redisPid } from './util.ts';

export type Contender = 'oidc' | 'leash' | 'leash2';

export interface SlicePair {
  /** Which server had the load first in this round. */
  first: Contender;
  oidc: LoadResult;
  /** One API process. */
  leash: LoadResult;
  /** Two API processes over the same Redis (scale-out), when measured. */
  leash2?: LoadResult;
}

export interface InterleavedResult {
  sliceMs: number;
  pairs: SlicePair[];
}

export interface RatioSummary {
  median: number;
  /** Geometric mean of the per-pair ratios, with its 95% confidence interval. */
  geoMean: number;
  low: number;
  high: number;
  /** Pairs in which Leash's figure was the smaller one. */
  below: number;
}

/** Student's t, 97.5th percentile (a two-sided 95% interval), for `df` degrees of freedom; rounded down to a tabled df. */
function tQuantile975(df: number): number {
  const table: [number, number][] = [[1, 12.71], [2, 4.3], [3, 3.18], [4, 2.78], [5, 2.57], [6, 2.45], [7, 2.36], [8, 2.31], [9, 2.26], [10, 2.23], [15, 2.13], [20, 2.09], [30, 2.04], [60, 2.0]];
  let t = NaN;
  for (const [d, q] of table) if (df >= d) t = q;
  return df > 120 ? 1.96 : t;
}

/** Per-pair ratios summed up on a log scale, where a 0.8x and a 1.25x pair cancel out. */
export function summarizeRatios(ratios: readonly number[]): RatioSummary {
  const logs = ratios.map(Math.log);
  const n = logs.length;
  const mean = logs.reduce((a, b) => a + b, 0) / n;
  const sd = n > 1 ? Math.sqrt(logs.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1)) : NaN;
  const half = (tQuantile975(n - 1) * sd) / Math.sqrt(n);
  const sorted = [...ratios].sort((a, b) => a - b);
  const mid = n >> 1;
  return {
    median: n % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2,
    geoMean: Math.exp(mean),
    low: Math.exp(mean - half),
    high: Math.exp(mean + half),
    below: ratios.filter((r) => r < 1).length,
  };
}

/**
 * With `scaleOut`, each round also gives a slice to two API processes (the first one's issuer, each
 * with its signature thread) over the same Redis, the load split between them.
 */
export async function benchInterleaved(cfg: LoadConfig, opts: { pairs: number; sliceMs: number; scaleOut: boolean }): Promise<InterleavedResult> {
  const redisServer = await startRedis();
  const issuer = await startProofIssuer('RS256');
  const redis = new Redis(redisServer.url);
  const servers: ChildServer[] = [];
  try {
    const rpid = await redisPid(redis);
    const broker = await startBroker({ name: 'leash-interleaved', redisUrl: redisServer.url, policyPath: benchPolicy(issuer.url), role: 'all' });
    servers.push(broker);
    const second = opts.scaleOut ? await startBroker({ name: 'leash-interleaved-2', redisUrl: redisServer.url, policyPath: benchPolicy(issuer.url), role: 'api', issuer: broker.issuer }) : null;
    if (second) servers.push(second);
    const oidc = await startOidcProvider();
    servers.push(oidc);
    const warm = await issuer.mint(200, { repoPrefix: 'warm' });
    let w = 0;
    for (const b of second ? [broker, second] : [broker]) await firstExchange(b.url, () => warm[w++ % warm.length]!);

    const slice = { concurrency: cfg.concurrency, warmupMs: 500, durationMs: opts.sliceMs, quietWaitMs: 0 };
    const oidcRequest = oidcTokenRequest();
    const perSlice = Math.ceil(((slice.warmupMs + slice.durationMs) / 1000) * 6_000);
    const exchangeLoad = (name: string, targets: string[], proofs: string[], cpuOf: Record<string, number>): Promise<LoadResult> =>
      runLoad({ name, targets, ...slice, next: (n) => (n < proofs.length ? { path: '/token', body: exchangeBody(proofs[n]!) } : null), check: isJwtExchangeAnswer, cpuOf });
    const leashTargets = second ? [broker.url, second.url] : [broker.url];
    // Every server's code is warmed (JIT, pools) by one uncounted slice before the first round.
    await runLoad({ name: 'oidc-provider warm-up', targets: [oidc.url], ...slice, next: () => oidcRequest });
    await exchangeLoad('Leash warm-up', leashTargets, await mintProofs(issuer, perSlice, { repoPrefix: 'warm-slice' }), {});
    const contenders: Contender[] = second ? ['oidc', 'leash', 'leash2'] : ['oidc', 'leash'];
    const pairs: SlicePair[] = [];
    for (let i = 0; i < opts.pairs; i++) {
      // Minted before the round, not before one slice: each server follows the minting burst equally often.
      const proofs = await mintProofs(issuer, perSlice * (contenders.length - 1), { repoPrefix: `pair${i}` });
      const half = proofs.length / (contenders.length - 1);
      const run: Partial<Record<Contender, () => Promise<LoadResult>>> = {
        oidc: () => runLoad({ name: 'oidc-provider slice', targets: [oidc.url], ...slice, next: () => oidcRequest, check: isJwtAccessToken, cpuOf: { server: oidc.pid } }),
        leash: () => exchangeLoad('Leash slice', [broker.url], proofs.slice(0, half), { broker: broker.pid, redis: rpid }),
        ...(second ? { leash2: () => exchangeLoad('Leash 2-process slice', leashTargets, proofs.slice(half), { 'broker 1': broker.pid, 'broker 2': second.pid, redis: rpid }) } : {}),
      };
      // The order rotates round by round, so no server always follows another.
      const order = contenders.map((_, k) => contenders[(i + k) % contenders.length]!);
      const got: Partial<Record<Contender, LoadResult>> = {};
      for (const c of order) got[c] = await run[c]!();
      const pair: SlicePair = { first: order[0]!, oidc: got.oidc!, leash: got.leash!, ...(got.leash2 ? { leash2: got.leash2 } : {}) };
      pairs.push(pair);
      const two = pair.leash2 ? `, 2 processes ${Math.round(pair.leash2.rps)} req/s p99 ${pair.leash2.latencyMs.p99.toFixed(1)} ms` : '';
      log(`round ${i + 1} of ${opts.pairs}: oidc-provider ${Math.round(pair.oidc.rps)} req/s p99 ${pair.oidc.latencyMs.p99.toFixed(1)} ms, Leash ${Math.round(pair.leash.rps)} req/s p99 ${pair.leash.latencyMs.p99.toFixed(1)} ms${two}`);
    }
    return { sliceMs: opts.sliceMs, pairs };
  } finally {
    for (const s of servers) await s.stop();
    redis.disconnect();
    await issuer.close();
    await redisServer.destroy();
  }
}

/**
 * The same method for any contenders (the scale sections: Cluster against standalone, WAIT against
 * none): every round runs one slice of each, the order rotating round by round.
 */
export async function runSliceRounds<K extends string>(
  names: readonly K[],
  rounds: number,
  slice: (name: K, round: number) => Promise<LoadResult>,
): Promise<Array<{ first: K; results: Record<K, LoadResult> }>> {
  const out: Array<{ first: K; results: Record<K, LoadResult> }> = [];
  for (let i = 0; i < rounds; i++) {
    const order = names.map((_, k) => names[(i + k) % names.length]!);
    const results = {} as Record<K, LoadResult>;
    for (const name of order) results[name] = await slice(name, i);
    out.push({ first: order[0]!, results });
    log(`round ${i + 1} of ${rounds}: ${names.map((n) => `${n} ${Math.round(results[n].rps)} req/s p99 ${results[n].latencyMs.p99.toFixed(1)} ms`).join(', ')}`);
  }
  return out;
}

export interface PairedRatios {
  rounds: number;
  sliceMs: number;
  /** Per-round figures of both, for the JSON. */
  perRound: Array<{ first: string; rps: [number, number]; p99: [number, number]; cpuMsPerRequest: [Record<string, number>, Record<string, number>] }>;
  rps: RatioSummary;
  p99: RatioSummary;
}

/** `a` over `b`, round by round, summed up as summarizeRatios does. */
export function pairedRatios<K extends string>(rounds: Array<{ first: K; results: Record<K, LoadResult> }>, a: K, b: K, sliceMs: number): PairedRatios {
  return {
    rounds: rounds.length,
    sliceMs,
    perRound: rounds.map((r) => ({
      first: r.first,
      rps: [r.results[a].rps, r.results[b].rps],
      p99: [r.results[a].latencyMs.p99, r.results[b].latencyMs.p99],
      cpuMsPerRequest: [r.results[a].cpuMsPerRequest, r.results[b].cpuMsPerRequest],
    })),
    rps: summarizeRatios(rounds.map((r) => r.results[a].rps / r.results[b].rps)),
    p99: summarizeRatios(rounds.map((r) => r.results[a].latencyMs.p99 / r.results[b].latencyMs.p99)),
  };
}
