/**
 * Section `storms`: what a burst of endings does to the exchange beside it. One redis-server, an
 * API process (LEASH_ROLE=api) taking steady exchanges (~200/s, open loop: a stall shows as
 * latency, not as fewer requests) and a worker process (LEASH_ROLE=worker) ending leases.
 *
 * (a) Expiry storm: N leases (100,000) written straight through the store, all expiring in the same
 *     second, well after the writing is done. Exchange p99 over the storm (from that second until
 *     the last of them has ended, plus a second) against the quiet window (the seconds just before
 *     that second, the leases written); expiry lag from each lease's `lease.expired` audit event.
 * (b) Bulk revocation: M leases (1,000,000) of one subject and rule written through the store (a
 *     sample of 100 by real exchanges, so their tokens can be introspected), a quiet window, then
 *     POST /v1/leases/revoke {rule, subject}: time until every sampled token is inactive at
 *     introspection, and exchange p99 while the call runs and until the worker's effects are done.
 */
import { Redis } from 'ioredis';
import { redisKeys, SHARD_COUNT } from '../src/redis/keys.ts';
import { createRedisLeaseStore } from '../src/leases/redis-store.ts';
import { AHEAD_MS } from '../src/leases/endings-ahead.ts';
import type { ChildServer } from './child.ts';
import { BENCH_RULE, REDIS_PREFIX, benchPolicy, exchangeBody, exchangeOnce, firstExchange, startBroker, startRedis } from './env.ts';
import { expiredLags } from './expiry-lag.ts';
import { benchLease, createMany } from './leases.ts';
import { introspector, pullKillSwitch } from './kill-switch.ts';
import { startPacedLoad, windowStats, type PacedLoad, type WindowStats } from './paced-load.ts';
import { startProofIssuer, type ProofIssuer } from './proof-issuer.ts';
import { MACHINE, cpuSeconds } from './load-generator.ts';
import { formatProfile, summarizeProfile } from './profile.ts';
import { RESULTS_DIR } from './child.ts';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { log, redisPid, sleep, summarize, waitUntil, type Summary } from './util.ts';

export interface StormsOptions {
  rate: number;
  quietS: number;
  expiryLeases: number;
  bulkLeases: number;
  /** Bound on the wait for the worker's effects of the bulk revocation. */
  effectsTimeoutS: number;
  /** Run only part (a) or (b). */
  parts: { expiry: boolean; bulk: boolean };
}

export interface ExpiryStormResult {
  /** CPU ms of the API, worker and Redis from expires_at until the last had ended. */
  cpuMs: Record<string, number>;
  leases: number;
  writeSeconds: number;
  quiet: WindowStats;
  /**
   * From AHEAD_MS before expires_at to the quiet window: the worker reads the leases ahead
   * (endings-ahead.ts), so their cost to the exchanges starts here.
   */
  readingAhead: WindowStats;
  storm: WindowStats;
  p99Ratio: number;
  /** readingAhead's p99 against quiet's. */
  readingAheadRatio: number;
  lagMs: Summary;
  ended: number;
  /** From expires_at until the last of them had ended. */
  allEndedAfterMs: number;
}

export interface BulkStormResult {
  /** CPU ms of the API, worker and Redis from the call until the effects were done. */
  cpuMs: Record<string, number>;
  leases: number;
  revoked: number;
  sample: number;
  writeSeconds: number;
  revokeCallMs: number;
  /** Until every lease reads inactive: the later of the sampled tokens and the call's answer. */
  visibleMs: number;
  effectsDoneMs: number;
  quiet: WindowStats;
  /** Exchanges sent while the revoke call ran (until every sampled token read inactive). */
  duringCall: WindowStats;
  /** Exchanges sent from the call until the worker had finalized every lease (or the bound). */
  untilEffectsDone: WindowStats;
  p99RatioCall: number;
  p99RatioEffects: number;
}

export interface StormsResult {
  rate: number;
  expiry?: ExpiryStormResult;
  bulk?: BulkStormResult;
}

const BULK_REPO = 'bulk-target';

export async function benchStorms(opts: StormsOptions): Promise<StormsResult> {
  const redisServer = await startRedis();
  const issuer = await startProofIssuer('RS256');
  const redis = new Redis(redisServer.url, { enableAutoPipelining: true });
  const servers: ChildServer[] = [];
  try {
    const policyPath = benchPolicy(issuer.url, { maxActive: 1000 });
    const api = await startBroker({ name: 'leash-storm-api', redisUrl: redisServer.url, policyPath, role: 'api' });
    servers.push(api);
    const worker = await startBroker({ name: 'leash-storm-worker', redisUrl: redisServer.url, policyPath, role: 'worker', issuer: api.issuer });
    servers.push(worker);
    const store = createRedisLeaseStore({ redis, prefix: REDIS_PREFIX });
    const [opsProof] = await issuer.mint(1, { repo: 'ops' });
    const operator = (await firstExchange(api.url, () => opsProof!)) as { access_token: string };
    const out: StormsResult = { rate: opts.rate };
    const procs = { api, worker, redisPid: await redisPid(redis) };
    if (opts.parts.expiry) out.expiry = await expiryStorm(opts, issuer, procs, store, redis);
    if (opts.parts.bulk) out.bulk = await bulkStorm(opts, issuer, procs, store, redis, operator.access_token);
    return out;
  } finally {
    for (const s of servers) await s.stop();
    redis.disconnect();
    await issuer.close();
    await redisServer.destroy();
  }
}

type Store = ReturnType<typeof createRedisLeaseStore>;

interface Procs { api: ChildServer; worker: ChildServer; redisPid: number }

/** A process's children, from /proc (Linux); none where that cannot be read. */
function childPids(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/**
 * CPU milliseconds each process used over a window (where a storm's cost lands), and with
 * BENCH_STORM_PROFILE=1 a V8 CPU profile of the API and worker processes over it.
 */
async function watch(p: Procs, tag: string): Promise<() => Promise<Record<string, number>>> {
  // The API's bulk-revocation walker is a process of its own (src/revocation/walk-process.ts).
  const walker = childPids(p.api.pid)[0];
  // The bench's own process (the exchanges' load) and the machine's total show what was left of the cores.
  const pids = { api: p.api.pid, ...(walker ? { walker } : {}), worker: p.worker.pid, redis: p.redisPid, bench: process.pid };
  const profile = process.env.BENCH_STORM_PROFILE === '1';
  if (profile) await Promise.all([p.api.profileStart(), p.worker.profileStart()]);
  const c0 = cpuSeconds(pids);
  const t0 = performance.now();
  return async () => {
    const c1 = cpuSeconds(pids);
    const s = (performance.now() - t0) / 1000;
    const ms = (k: string): number => Math.round(((c1[k] ?? NaN) - (c0[k] ?? NaN)) * 1000);
    const out = { ...Object.fromEntries(Object.keys(pids).map((k) => [k, ms(k)])), machine: ms(MACHINE) };
    log(`${tag}: CPU over ${s.toFixed(1)} s: ${Object.entries(out).map(([k, v]) => `${k} ${v} ms`).join(', ')}`);
    if (profile) {
      const dir = join(RESULTS_DIR, 'profiles');
      mkdirSync(dir, { recursive: true });
      for (const [name, child] of [['api', p.api], ['worker', p.worker]] as const) {
        const file = join(dir, `${tag}-${name}.cpuprofile`);
        await child.profileStop(file);
        process.stderr.write(`\n${tag} ${name} (${file}):\n${formatProfile(summarizeProfile(file, 25))}\n`);
      }
    }
    return out;
  };
}

async function pacedExchanges(issuer: ProofIssuer, url: string, rate: number, seconds: number, tag: string): Promise<PacedLoad> {
  const proofs = await issuer.mint(Math.ceil(rate * seconds), { repoPrefix: tag });
  log(`storms: ${proofs.length.toLocaleString('en-US')} proofs for ${seconds} s of exchanges at ${rate}/s`);
  return startPacedLoad({ target: url, rate, next: (i) => (i < proofs.length ? { path: '/token', body: exchangeBody(proofs[i]!) } : null) });
}

/** The answers other than 200, by status (0: no answer), as `503 x2, 0 x1`. */
const failures = (w: WindowStats): string =>
  Object.entries(w.statuses).filter(([s]) => s !== '200').map(([s, n]) => `${s} x${n}`).join(', ');

const describe = (w: WindowStats): string =>
  `${w.ok} ok / ${w.errors} errors${w.errors > 0 ? ` (${failures(w)})` : ''} in ${w.seconds.toFixed(1)} s, p50 ${w.latencyMs.p50.toFixed(1)} ms, p99 ${w.latencyMs.p99.toFixed(1)} ms, max ${w.latencyMs.max.toFixed(1)} ms`;

/** performance.now() time of an epoch-ms instant. */
const perfAt = (epochMs: number): number => epochMs - performance.timeOrigin;

async function expiryStorm(opts: StormsOptions, issuer: ProofIssuer, procs: Procs, store: Store, redis: Redis): Promise<ExpiryStormResult> {
  const { api } = procs;
  const keys = redisKeys(REDIS_PREFIX);
  // Writing runs at 5,000-20,000 leases/s here, slower when the machine is busy: the leases expire
  // well after it is done and the worker has read them ahead (AHEAD_MS before), and the quiet
  // window is the last seconds before they do.
  const leadS = Math.ceil(opts.expiryLeases / 2_500) + AHEAD_MS / 1000 + opts.quietS + 5;
  const load = await pacedExchanges(issuer, api.url, opts.rate, leadS + 40, 'storm-a');
  let stopped = false;
  try {
    const now = Math.floor(Date.now() / 1000);
    const expiresAt = now + leadS;
    const ids = new Set<string>();
    const t0 = performance.now();
    const written = await createMany(store, opts.expiryLeases, (i) => {
      const l = benchLease({ subject: `repo:octo-org/app-${i % 1000}:ref:refs/heads/main`, issuedAt: now, expiresAt });
      ids.add(l.id);
      return l;
    });
    const writtenAt = performance.now();
    const writeSeconds = (writtenAt - t0) / 1000;
    const stormFrom = perfAt(expiresAt * 1000);
    const quietTo = stormFrom - 500;
    const quietFrom = Math.max(performance.now() + 1_000, quietTo - opts.quietS * 1000);
    if (quietTo - quietFrom < 3_000) throw new Error(`writing ${written} leases took ${writeSeconds.toFixed(1)} s, too close to their expiry for a quiet window`);
    log(`expiry storm: ${written} leases written in ${writeSeconds.toFixed(1)} s, all expiring at ${new Date(expiresAt * 1000).toISOString()}`);
    await sleep(Math.max(0, expiresAt * 1000 - Date.now() - 200));
    const cpu = await watch(procs, 'expiry-storm');
    // Due at or before that second: only the storm's leases (the exchange's live 10 minutes).
    const dueLeft = async (): Promise<number> => {
      const n = await Promise.all(Array.from({ length: SHARD_COUNT }, (_, s) => redis.zcount(keys.due(s), '-inf', expiresAt * 1000)));
      return n.reduce((a, b) => a + b, 0);
    };
    const ended = await waitUntil(async () => (await dueLeft()) === 0, 60_000, 50);
    if (!ended) log(`expiry storm: ${await dueLeft()} leases still due 60 s after expiry`);
    const cpuMs = await cpu();
    await sleep(1_000);
    const stormTo = performance.now();
    await load.stop();
    stopped = true;
    const quiet = windowStats(load.samples, quietFrom, quietTo);
    const readingAhead = windowStats(load.samples, Math.max(stormFrom - AHEAD_MS, writtenAt + 1_000), quietFrom);
    const storm = windowStats(load.samples, stormFrom, stormTo);
    const lags = await expiredLags(redis, ids);
    const lagMs = summarize(lags);
    log(`expiry storm: reading ahead ${describe(readingAhead)}; quiet ${describe(quiet)}; storm ${describe(storm)}; lag first ${lags.reduce((a, b) => Math.min(a, b), Infinity)} ms, p50 ${lagMs.p50} ms, p99 ${lagMs.p99} ms, max ${lagMs.max} ms (${lags.length} ended)`);
    const ratio = (w: WindowStats): number => w.latencyMs.p99 / quiet.latencyMs.p99;
    return { cpuMs, leases: written, writeSeconds, quiet, readingAhead, storm, p99Ratio: ratio(storm), readingAheadRatio: ratio(readingAhead), lagMs, ended: lags.length, allEndedAfterMs: lagMs.max };
  } finally {
    if (!stopped) await load.stop();
  }
}

async function bulkStorm(opts: StormsOptions, issuer: ProofIssuer, procs: Procs, store: Store, redis: Redis, operatorToken: string): Promise<BulkStormResult> {
  const { api } = procs;
  const keys = redisKeys(REDIS_PREFIX);
  const sampleSize = 100;
  // The sample: real tokens for leases of the target subject (written before the rest, so the
  // rule's active lease limit is not yet reached).
  const proofs = await issuer.mint(sampleSize, { repo: BULK_REPO });
  const tokens: string[] = [];
  for (let i = 0; i < proofs.length; i += 16) {
    const answers = await Promise.all(proofs.slice(i, i + 16).map((p) => exchangeOnce(api.url, p)));
    for (const a of answers) {
      if (a.status !== 200) throw new Error(`sample exchange failed: ${a.status} ${JSON.stringify(a.body).slice(0, 300)}`);
      tokens.push((a.body as { access_token: string }).access_token);
    }
  }
  const subject = `repo:octo-org/${BULK_REPO}:ref:refs/heads/main`;
  const now = Math.floor(Date.now() / 1000);
  const t0 = performance.now();
  const rest = opts.bulkLeases - tokens.length;
  await createMany(store, rest, (i) => benchLease({ rule: BENCH_RULE, subject, issuedAt: now, expiresAt: now + 3600 + (i % 1800), proofIss: issuer.url }), {
    inFlight: 2_000,
    onProgress: (n) => { if (n % 200_000 === 0) log(`bulk storm: ${n.toLocaleString('en-US')} leases written`); },
  });
  const writeSeconds = (performance.now() - t0) / 1000;
  log(`bulk storm: ${opts.bulkLeases.toLocaleString('en-US')} active leases of ${subject} in ${writeSeconds.toFixed(1)} s`);

  const introspect = introspector(api.url, operatorToken);
  const activeBefore = (await Promise.all(tokens.map(introspect))).filter(Boolean).length;
  if (activeBefore !== tokens.length) throw new Error(`only ${activeBefore} of ${tokens.length} sampled tokens are active before the revocation`);

  const load = await pacedExchanges(issuer, api.url, opts.rate, 2 + opts.quietS + 30 + opts.effectsTimeoutS + 5, 'storm-b');
  let stopped = false;
  try {
    await sleep(2_000);
    const quietFrom = performance.now();
    await sleep(opts.quietS * 1000);
    const quietTo = performance.now();
    const cpu = await watch(procs, 'bulk-storm');
    const { start, answer, visibleAt } = await pullKillSwitch(api.url, operatorToken, subject, tokens, 300_000);
    const callEnd = Math.max(start + answer.ms, Number.isFinite(visibleAt) ? visibleAt : 0);
    log(`bulk storm: ${answer.body.revoked} revoked, call ${Math.round(answer.ms)} ms, visible after ${Math.round(visibleAt - start)} ms`);
    const pending = async (): Promise<number> => {
      const counts = await Promise.all(Array.from({ length: SHARD_COUNT }, (_, s) => redis.zcard(keys.pending(s))));
      return counts.reduce((a, b) => a + b, 0);
    };
    const done = await waitUntil(async () => (await pending()) === 0, opts.effectsTimeoutS * 1000, 250);
    const effectsAt = performance.now();
    const cpuMs = await cpu();
    await load.stop();
    stopped = true;
    const quiet = windowStats(load.samples, quietFrom, quietTo);
    const duringCall = windowStats(load.samples, start, callEnd);
    const untilEffectsDone = windowStats(load.samples, start, effectsAt);
    log(`bulk storm: quiet ${describe(quiet)}; during the call ${describe(duringCall)}; until effects done ${describe(untilEffectsDone)}`);
    for (let t = start; t < callEnd + 5_000; t += 1_000) log(`  second ${Math.round((t - start) / 1000)}: ${describe(windowStats(load.samples, t, t + 1_000))}`);
    return {
      cpuMs,
      leases: opts.bulkLeases,
      revoked: answer.body.revoked!,
      sample: tokens.length,
      writeSeconds,
      revokeCallMs: answer.ms,
      // The sampled tokens expire first, and revokeWhere walks the index in expiry order, so they
      // read inactive early; every lease is flipped only by the time the call answers.
      visibleMs: Math.max(visibleAt - start, answer.ms),
      effectsDoneMs: done ? effectsAt - start : NaN,
      quiet,
      duringCall,
      untilEffectsDone,
      p99RatioCall: duringCall.latencyMs.p99 / quiet.latencyMs.p99,
      p99RatioEffects: untilEffectsDone.latencyMs.p99 / quiet.latencyMs.p99,
    };
  } finally {
    if (!stopped) await load.stop();
  }
}
