/**
 * Section 1: the full JWT exchange under load. POST /token over real HTTP to the broker in a child
 * process, real Redis, each proof a distinct GitHub-Actions-shaped ID token (RS256 as GitHub signs
 * them, or ES256 when asked) verified against the bench issuer's
 * JWKS (fetched over HTTP once, then cached), replay guard on, lease write with its expiry
 * schedule, ES256 mint, audit event and logs. Then the same with two API processes over one Redis.
 * When asked (throughput below a baseline), a second run on the same broker is CPU-profiled.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { RESULTS_DIR } from './child.ts';
import { benchPolicy, exchangeBody, firstExchange, startBroker, startRedis } from './env.ts';
import { runLoad, type LoadResult } from './load-generator.ts';
import { summarizeProfile, type ProfileSummary } from './profile.ts';
import { startProofIssuer, type MintOptions, type ProofAlg, type ProofIssuer } from './proof-issuer.ts';
import { fmtCpu, log, redisPid, usedMemory } from './util.ts';

export interface LoadConfig {
  concurrency: number;
  warmupMs: number;
  durationMs: number;
}

export interface ExchangeProfile {
  file: string;
  load: LoadResult;
  summary: ProfileSummary;
}

export interface ExchangeResults {
  single: LoadResult;
  scaleOut: LoadResult | null;
  /** used_memory growth over the single-process run divided by exchanges: lease + replay record + audit event. */
  redisBytesPerExchange: number;
  jwksFetches: number;
  proofsPerRun: number;
  profile: ExchangeProfile | null;
}

/** A 200 answer carries an ES256 JWT access token (three parts) and its lease id. */
export function isJwtExchangeAnswer(body: string): boolean {
  try {
    const j = JSON.parse(body) as { access_token?: string; token_type?: string; lease_id?: string };
    return typeof j.access_token === 'string' && j.access_token.split('.').length === 3 && j.token_type === 'Bearer' && typeof j.lease_id === 'string';
  } catch {
    return false;
  }
}

/** Enough proofs for warm-up + window at `perSecond`; BENCH_PROOFS overrides. The load generator says if they ran out. */
export function proofsFor(cfg: LoadConfig, perSecond: number): number {
  const fromEnv = Number(process.env.BENCH_PROOFS ?? NaN);
  if (Number.isFinite(fromEnv) && fromEnv > 0) return Math.floor(fromEnv);
  return Math.ceil(((cfg.warmupMs + cfg.durationMs) / 1000) * perSecond);
}

export async function mintProofs(issuer: ProofIssuer, count: number, opts: MintOptions = {}): Promise<string[]> {
  const t0 = performance.now();
  const proofs = await issuer.mint(count, opts);
  log(`minted ${proofs.length.toLocaleString('en-US')} distinct proofs in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  return proofs;
}

export function describeLoad(r: LoadResult): void {
  log(
    `${r.name}: ${Math.round(r.rps)} req/s, p50 ${r.latencyMs.p50.toFixed(2)} ms, p99 ${r.latencyMs.p99.toFixed(2)} ms, ` +
      `${r.ok} ok / ${r.errors} errors in ${r.seconds.toFixed(1)} s${r.exhausted ? ' (bodies ran out: window cut short)' : ''}; ` +
      `CPU: ${fmtCpu(r.cpuPct)}` +
      (r.firstError ? `; first error: ${r.firstError}` : ''),
  );
}

export async function proofLoad(
  name: string,
  targets: string[],
  proofs: string[],
  cfg: LoadConfig,
  opts: { extra?: string; check?: (body: string) => boolean; cpuOf?: Record<string, number>; onWindowStart?: () => void } = {},
): Promise<LoadResult> {
  const extra = opts.extra ?? '';
  const r = await runLoad({
    name,
    targets,
    concurrency: cfg.concurrency,
    warmupMs: cfg.warmupMs,
    durationMs: cfg.durationMs,
    next: (i) => (i < proofs.length ? { path: '/token', body: exchangeBody(proofs[i]!, extra) } : null),
    check: opts.check ?? isJwtExchangeAnswer,
    ...(opts.cpuOf ? { cpuOf: opts.cpuOf } : {}),
    ...(opts.onWindowStart ? { onWindowStart: opts.onWindowStart } : {}),
  });
  describeLoad(r);
  return r;
}

export async function benchExchange(
  cfg: LoadConfig,
  opts: { scaleOut: boolean; expectedRps: number; profileBelowRps?: number; profileAlways?: boolean; proofAlg?: ProofAlg },
): Promise<ExchangeResults> {
  const redisServer = await startRedis();
  const issuer = await startProofIssuer(opts.proofAlg ?? 'RS256');
  const redis = new Redis(redisServer.url);
  const brokers: Awaited<ReturnType<typeof startBroker>>[] = [];
  try {
    const rpid = await redisPid(redis);
    const policyPath = benchPolicy(issuer.url);
    const b1 = await startBroker({ name: 'leash-1', redisUrl: redisServer.url, policyPath, role: 'all' });
    brokers.push(b1);
    const warm = await issuer.mint(200, { repoPrefix: 'warm' });
    let w = 0;
    await firstExchange(b1.url, () => warm[w++ % warm.length]!);

    const count = proofsFor(cfg, opts.expectedRps);
    const proofs = await mintProofs(issuer, count);
    const before = await usedMemory(redis);
    const label = opts.proofAlg === 'ES256' ? 'Leash exchange, 1 API process, ES256 proofs' : 'Leash exchange, 1 API process';
    const single = await proofLoad(label, [b1.url], proofs, cfg, { cpuOf: { broker: b1.pid, redis: rpid } });
    await new Promise((r) => setTimeout(r, 200));
    const after = await usedMemory(redis);
    const redisBytesPerExchange = single.okTotal > 0 ? (after - before) / single.okTotal : NaN;

    let profile: ExchangeProfile | null = null;
    if (opts.profileAlways || (opts.profileBelowRps !== undefined && single.rps < opts.profileBelowRps)) {
      const dir = join(RESULTS_DIR, 'profiles');
      mkdirSync(dir, { recursive: true });
      const file = join(dir, 'exchange.cpuprofile');
      const more = await mintProofs(issuer, count, { repoPrefix: 'prof' });
      const profCfg = { ...cfg, warmupMs: 1_000, durationMs: Math.min(cfg.durationMs, 8_000) };
      // The profiler starts once the warm-up is over, so it sees the steady state only.
      let started: Promise<void> = Promise.reject(new Error('the measured window never opened'));
      started.catch(() => undefined);
      const load = await proofLoad('Leash exchange under the CPU profiler', [b1.url], more, profCfg, {
        cpuOf: { broker: b1.pid, redis: rpid },
        onWindowStart: () => {
          started = b1.profileStart();
          started.catch(() => undefined);
        },
      });
      await started;
      await b1.profileStop(file);
      profile = { file, load, summary: summarizeProfile(file) };
    }

    let scaleOut: LoadResult | null = null;
    if (opts.scaleOut) {
      // Two API processes over one Redis, each with its signature thread (the default): measured
      // in interleaved slices on this machine, level with the thread turned off.
      await b1.stop();
      brokers.splice(brokers.indexOf(b1), 1);
      const s1 = await startBroker({ name: 'leash-s1', redisUrl: redisServer.url, policyPath, role: 'all' });
      brokers.push(s1);
      const s2 = await startBroker({ name: 'leash-s2', redisUrl: redisServer.url, policyPath, role: 'api', issuer: s1.issuer });
      brokers.push(s2);
      for (const s of [s1, s2]) await firstExchange(s.url, () => warm[w++ % warm.length]!);
      const more = await mintProofs(issuer, count, { repoPrefix: 'scale' });
      scaleOut = await proofLoad('Leash exchange, 2 API processes, one Redis', [s1.url, s2.url], more, cfg, {
        cpuOf: { 'broker 1': s1.pid, 'broker 2': s2.pid, redis: rpid },
      });
    }
    return { single, scaleOut, redisBytesPerExchange, jwksFetches: issuer.jwksHits(), proofsPerRun: count, profile };
  } finally {
    for (const b of brokers) await b.stop();
    redis.disconnect();
    await issuer.close();
    await redisServer.destroy();
  }
}
