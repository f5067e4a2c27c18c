/**
 * `npm run bench`: every speed and memory target (README "Benchmarks"), measured in this one run on this
 * machine, printed as markdown and written to bench/results/latest.json.
 *
 * Options and environment: `npm run bench -- --help` (USAGE in args.ts).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { BenchUsageError, parseBenchArgs, USAGE } from './args.ts';
import { benchHonoSign } from './baselines/hono-sign.ts';
import { benchOidcProvider } from './baselines/oidc-provider.ts';
import { benchBulkRevoke, type BulkRevokeResult } from './bulk-revoke.ts';
import { benchCerts, type CertsResult } from './certs.ts';
import { benchCluster, type ClusterResult } from './cluster.ts';
import { benchFailover, type FailoverResult } from './failover.ts';
import { benchStorms, type StormsResult } from './storms.ts';
import { RESULTS_DIR } from './child.ts';
import { cleanupEnv } from './env.ts';
import { buildIfStale } from '../test/helpers/build.ts';
import { benchExchange, type ExchangeResults, type LoadConfig } from './exchange-load.ts';
import { benchExpiryLag, type ExpiryLagResult } from './expiry-lag.ts';
import { benchInterleaved, summarizeRatios, type InterleavedResult, type PairedRatios, type RatioSummary, type SlicePair } from './interleaved.ts';
import type { LoadResult } from './load-generator.ts';
import { benchMemoryPerLease, type MemoryResult } from './memory-per-lease.ts';
import { formatProfile } from './profile.ts';
import { envInt, fmtInt, fmtMs, fmtRatio, log, machineInfo, waitForQuiet } from './util.ts';

const SECTIONS = ['hono', 'oidc', 'exchange', 'scaleout', 'certs', 'expiry', 'memory', 'bulk', 'cluster', 'failover', 'storms'] as const;
type Section = (typeof SECTIONS)[number];

function selected(): Set<Section> {
  const raw = process.env.BENCH_ONLY;
  if (!raw) return new Set(SECTIONS);
  const out = new Set<Section>();
  for (const name of raw.split(',').map((s) => s.trim().toLowerCase()).filter(Boolean)) {
    if (name === 'baselines') {
      out.add('hono');
      out.add('oidc');
    } else if ((SECTIONS as readonly string[]).includes(name)) out.add(name as Section);
    else throw new Error(`BENCH_ONLY: unknown section ${name} (known: ${SECTIONS.join(', ')}, baselines)`);
  }
  return out;
}

interface Results {
  startedAt: string;
  seconds: number;
  machine: ReturnType<typeof machineInfo> & { loadavgAtStart: number[] };
  config: LoadConfig & ScaleConfig & { leases: number; memoryBudgetSeconds: number; expiryLeases: number; bulkLeases: number; brokerLogLevel: string; sections: Section[] };
  hono?: LoadResult;
  oidc?: LoadResult;
  exchange?: ExchangeResults;
  /** One run with ES256 proofs instead of GitHub's RS256. */
  exchangeEs256?: ExchangeResults;
  /** Alternating oidc-provider / Leash exchange runs; `oidc` and `exchange` above are the last round. */
  rounds: Array<{ oidc: LoadResult; exchange: LoadResult }>;
  /** The verdict's measurement: oidc-provider and the exchange in pairs of short alternating slices. */
  interleaved?: InterleavedResult;
  certs?: CertsResult;
  expiry?: ExpiryLagResult;
  memory?: MemoryResult;
  bulk?: BulkRevokeResult;
  cluster?: ClusterResult;
  failover?: FailoverResult;
  storms?: StormsResult;
  errors: Record<string, string>;
}

async function main(): Promise<void> {
  const t0 = performance.now();
  // The brokers under test run the compiled build (broker-process.ts), as production does.
  buildIfStale();
  const only = selected();
  const load: LoadConfig = {
    concurrency: envInt('BENCH_CONCURRENCY', 64),
    warmupMs: envInt('BENCH_WARMUP_S', 2) * 1000,
    durationMs: envInt('BENCH_DURATION_S', 10) * 1000,
  };
  const expectedRps = 6_000; // proofs to mint per run (the load generator reports if they ran out)
  const cfg = {
    ...load,
    leases: envInt('BENCH_LEASES', 1_000_000),
    memoryBudgetSeconds: envInt('BENCH_MEMORY_BUDGET_S', 120),
    expiryLeases: envInt('BENCH_EXPIRY_LEASES', 10_000),
    bulkLeases: envInt('BENCH_BULK_LEASES', 100_000),
    brokerLogLevel: process.env.BENCH_LOG_LEVEL ?? 'info',
    sections: [...only],
    ...scaleConfig(),
  };
  const quietMs = Number(process.env.BENCH_QUIET_WAIT_S ?? 10) * 1000;
  const results: Results = {
    startedAt: new Date().toISOString(),
    seconds: 0,
    machine: { ...machineInfo(), loadavgAtStart: loadavg() },
    config: cfg,
    rounds: [],
    errors: {},
  };
  const attempt = async <K extends keyof Results>(key: K, name: string, f: () => Promise<Results[K]>): Promise<void> => {
    log(`--- ${name}`);
    try {
      results[key] = await f();
    } catch (err) {
      results.errors[name] = err instanceof Error ? err.message : String(err);
      log(`${name} FAILED: ${results.errors[name]}`);
    }
  };

  try {
    if (only.has('hono')) await attempt('hono', 'baseline A (bare Hono + ES256 sign)', () => benchHonoSign(load));
    const rounds = only.has('oidc') && only.has('exchange') ? Math.max(1, envInt('BENCH_ROUNDS', 1)) : 1;
    for (let round = 1; round <= rounds; round++) {
      const last = round === rounds;
      const tag = rounds > 1 ? ` (round ${round} of ${rounds})` : '';
      if (only.has('oidc')) await attempt('oidc', `baseline B (oidc-provider)${tag}`, () => benchOidcProvider(load));
      if (only.has('exchange') || only.has('scaleout')) {
        const profileEnv = process.env.BENCH_PROFILE;
        const medianRps = results.oidc ? medianOf([...results.rounds.map((x) => x.oidc.rps), results.oidc.rps]) : undefined;
        await attempt('exchange', `JWT exchange${tag}`, () =>
          benchExchange(load, {
            scaleOut: only.has('scaleout') && last,
            expectedRps,
            profileAlways: profileEnv === '1' && last,
            ...(profileEnv !== '0' && last && medianRps !== undefined ? { profileBelowRps: medianRps } : {}),
          }),
        );
      }
      if (results.oidc && results.exchange) results.rounds.push({ oidc: results.oidc, exchange: results.exchange.single });
    }
    const pairs = process.env.BENCH_PAIRS === '0' ? 0 : envInt('BENCH_PAIRS', 30);
    if (only.has('oidc') && only.has('exchange') && pairs > 0) {
      const scaleOut = only.has('scaleout');
      await attempt('interleaved', `JWT exchange against oidc-provider, ${pairs} rounds of alternating slices${scaleOut ? ' (1 and 2 API processes)' : ''}`, async () => {
        await waitForQuiet(quietMs);
        return benchInterleaved(load, { pairs, sliceMs: envInt('BENCH_SLICE_S', 3) * 1000, scaleOut });
      });
    }
    // GitHub (like every CI issuer in the fixtures) signs RS256; P-256 issuers (SPIRE, some
    // clusters) cost Leash a dearer signature check per proof, so they get a run of their own.
    if (only.has('exchange') && process.env.BENCH_ES256 !== '0') await attempt('exchangeEs256', 'JWT exchange, ES256 proofs', () => benchExchange(load, { scaleOut: false, expectedRps, proofAlg: 'ES256', profileBelowRps: 0 }));
    if (only.has('certs')) await attempt('certs', 'certificates', () => benchCerts(load, { expectedRps: 2_500, profile: process.env.BENCH_PROFILE === '1' }));
    if (only.has('expiry')) {
      await attempt('expiry', 'expiry lag', async () => {
        await waitForQuiet(quietMs);
        return benchExpiryLag({ leases: cfg.expiryLeases, aheadSeconds: 10 });
      });
    }
    if (only.has('memory')) {
      await attempt('memory', 'Redis bytes per lease', async () => {
        await waitForQuiet(quietMs);
        return benchMemoryPerLease({ leases: cfg.leases, budgetSeconds: cfg.memoryBudgetSeconds });
      });
    }
    if (only.has('bulk')) {
      await attempt('bulk', 'bulk revocation', async () => {
        await waitForQuiet(quietMs);
        return benchBulkRevoke({ leases: cfg.bulkLeases, sample: 100, effectsTimeoutMs: 60_000 });
      });
    }
    const scale = { ...load, rounds: cfg.scaleRounds, sliceMs: cfg.scaleSliceMs };
    if (only.has('cluster')) {
      await attempt('cluster', `JWT exchange on a 3-primary Redis Cluster, and one with 3 replicas, against standalone Redis, ${cfg.scaleRounds} rounds`, async () => {
        await waitForQuiet(quietMs);
        return benchCluster(scale);
      });
    }
    if (only.has('failover')) {
      await attempt('failover', 'Sentinel: the cost of WAIT, then a primary SIGKILLed under steady load', async () => {
        await waitForQuiet(quietMs);
        return benchFailover({ ...scale, rate: cfg.steadyRate, afterS: cfg.failoverAfterS });
      });
    }
    if (only.has('storms')) {
      await attempt('storms', 'expiry storm and bulk revocation under steady exchanges', async () => {
        await waitForQuiet(quietMs);
        return benchStorms({
          rate: cfg.steadyRate,
          quietS: cfg.stormQuietS,
          expiryLeases: cfg.stormExpiryLeases,
          bulkLeases: cfg.stormBulkLeases,
          effectsTimeoutS: cfg.stormEffectsS,
          parts: { expiry: cfg.stormParts.includes('expiry'), bulk: cfg.stormParts.includes('bulk') },
        });
      });
    }
  } finally {
    cleanupEnv();
  }
  results.seconds = (performance.now() - t0) / 1000;

  const report = render(results);
  mkdirSync(RESULTS_DIR, { recursive: true });
  writeFileSync(join(RESULTS_DIR, 'latest.json'), `${JSON.stringify(results, null, 2)}\n`);
  writeFileSync(join(RESULTS_DIR, 'latest.md'), report);
  process.stdout.write(report);
  process.exit(Object.keys(results.errors).length > 0 ? 1 : 0);
}

interface ScaleConfig {
  scaleRounds: number;
  scaleSliceMs: number;
  steadyRate: number;
  failoverAfterS: number;
  stormQuietS: number;
  stormExpiryLeases: number;
  stormBulkLeases: number;
  stormEffectsS: number;
  stormParts: string[];
}

/** Sizes of the scale sections (cluster, failover, storms); defaults are the targets' own sizes. */
function scaleConfig(): ScaleConfig {
  const parts = (process.env.BENCH_STORM_PARTS ?? 'expiry,bulk').split(',').map((x) => x.trim()).filter(Boolean);
  for (const p of parts) if (p !== 'expiry' && p !== 'bulk') throw new Error(`BENCH_STORM_PARTS: unknown part ${p} (known: expiry, bulk)`);
  return {
    scaleRounds: envInt('BENCH_SCALE_ROUNDS', 10),
    scaleSliceMs: envInt('BENCH_SLICE_S', 3) * 1000,
    steadyRate: envInt('BENCH_STEADY_RATE', 200),
    failoverAfterS: envInt('BENCH_FAILOVER_AFTER_S', 5),
    stormQuietS: envInt('BENCH_STORM_QUIET_S', 10),
    stormExpiryLeases: envInt('BENCH_STORM_EXPIRY_LEASES', 100_000),
    stormBulkLeases: envInt('BENCH_STORM_BULK_LEASES', 1_000_000),
    stormEffectsS: envInt('BENCH_STORM_EFFECTS_S', 120),
    stormParts: parts,
  };
}

function medianOf(xs: readonly number[]): number {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

const verdict = (ok: boolean | undefined): string => (ok === undefined ? '' : ok ? 'met' : '**missed**');

function cpuCell(r: LoadResult): string {
  const parts = Object.entries(r.cpuPct).map(([k, v]) => `${k} ${Number.isFinite(v) ? Math.round(v) : '?'}`);
  return parts.join(', ');
}

const NOT_SERVER = new Set(['load generator', 'rest of machine', 'redis']);

/** CPU time per request of the server process(es) under test, and of Redis. */
function perRequestCell(r: LoadResult): string {
  let server = 0;
  for (const [k, v] of Object.entries(r.cpuMsPerRequest)) if (!NOT_SERVER.has(k)) server += v;
  const redis = r.cpuMsPerRequest.redis;
  return `${server.toFixed(2)}${redis !== undefined ? ` + Redis ${redis.toFixed(3)}` : ''}`;
}

function loadRow(label: string, r: LoadResult | undefined): string {
  if (!r) return `| ${label} | not run | | | | | | |`;
  const errs = r.errors > 0 ? `${r.errors} (${Object.entries(r.statuses).filter(([s]) => s !== '200').map(([s, n]) => `${s}: ${n}`).join(', ')})` : '0';
  const cut = r.exhausted ? ` (proofs ran out after ${r.seconds.toFixed(1)} s)` : '';
  return `| ${label} | ${fmtInt(r.rps)}${cut} | ${fmtMs(r.latencyMs.p50)} | ${fmtMs(r.latencyMs.p99)} | ${fmtMs(r.latencyMs.max)} | ${errs} | ${perRequestCell(r)} | ${cpuCell(r)} |`;
}

const interval = (x: RatioSummary): string => `${fmtRatio(x.geoMean)} (95% interval ${x.low.toFixed(2)}–${x.high.toFixed(2)}x; median ${fmtRatio(x.median)})`;

/** Met only when the whole 95% interval is on the right side of 1.00x; missed when all of it is on the wrong side. */
function intervalVerdict(x: RatioSummary, wantAbove: boolean): string {
  const [good, bad] = wantAbove ? [x.low >= 1, x.high < 1] : [x.high < 1, x.low >= 1];
  return good ? 'met' : bad ? '**missed**' : 'level with it (1.00x is inside the interval)';
}

function interleavedRows(il: InterleavedResult): string[] {
  const n = il.pairs.length;
  const row = (label: string, leashOf: (x: SlicePair) => LoadResult | undefined): string | null => {
    const pairs = il.pairs.filter((x) => leashOf(x) !== undefined);
    if (pairs.length === 0) return null;
    const rps = summarizeRatios(pairs.map((x) => leashOf(x)!.rps / x.oidc.rps));
    const p99 = summarizeRatios(pairs.map((x) => leashOf(x)!.latencyMs.p99 / x.oidc.latencyMs.p99));
    const cpu = summarizeRatios(pairs.map((x) => serverCpuMs(leashOf(x)!) / serverCpuMs(x.oidc)));
    return (
      `| 4 | ${label} / oidc-provider, ${n} rounds of ${il.sliceMs / 1000} s slices (table below) | req/s ${interval(rps)}, Leash ahead in ${n - rps.below} of ${n}; ` +
      `p99 ${interval(p99)}, Leash lower in ${p99.below} of ${n}; server CPU per request ${fmtRatio(cpu.geoMean)} | req/s >= 1.00x and p99 < 1.00x | ` +
      `req/s ${intervalVerdict(rps, true)}, p99 ${intervalVerdict(p99, false)} |`
    );
  };
  return [row('Leash, 1 API process', (x) => x.leash), row('Leash, 2 API processes over one Redis', (x) => x.leash2)].filter((x): x is string => x !== null);
}

function serverCpuMs(x: LoadResult): number {
  return Object.entries(x.cpuMsPerRequest).filter(([k]) => !NOT_SERVER.has(k)).reduce((a, [, v]) => a + v, 0);
}

function render(r: Results): string {
  const m = r.machine;
  const c = r.config;
  const out: string[] = [];
  const ex = r.exchange;
  const leash = ex?.single;
  out.push(`## Leash bench, ${r.startedAt.slice(0, 19).replace('T', ' ')} UTC`);
  out.push('');
  out.push(
    `Machine: ${m.cpus} CPUs (${m.cpuModel}), ${m.platform}, Node ${m.node}, Redis ${m.redis} (private redis-server on loopback, no persistence); ` +
      `load average at start ${m.loadavgAtStart.map((x) => x.toFixed(2)).join(' ')}. Load: ${c.concurrency} requests in flight, ` +
      `${c.warmupMs / 1000} s warm-up then ${c.durationMs / 1000} s measured, keep-alive HTTP/1.1 from the parent process; every server in its own child process. ` +
      `Broker log level ${c.brokerLogLevel}. Whole run ${r.seconds.toFixed(0)} s.`,
  );
  out.push('');
  out.push('### Load runs');
  out.push('');
  out.push('| run | req/s | p50 ms | p99 ms | max ms | errors | server CPU ms/request | CPU % of one core over the window |');
  out.push('|---|---:|---:|---:|---:|---:|---:|---|');
  out.push(loadRow('Leash JWT exchange, 1 API process (verify RS256 proof, replay guard, policy, lease, ES256 mint, audit)', leash));
  out.push(loadRow('Leash JWT exchange, 1 API process, ES256 proofs (P-256 issuers such as SPIRE)', r.exchangeEs256?.single));
  if (c.sections.includes('scaleout')) out.push(loadRow('Leash JWT exchange, 2 API processes over one Redis (round-robin), 10 s', ex?.scaleOut ?? undefined));
  out.push(loadRow('Baseline A: bare Hono route, one ES256 sign', r.hono));
  out.push(loadRow('Baseline B: oidc-provider 8, client_credentials, ES256 JWT access token', r.oidc));
  out.push(loadRow('Leash certificate exchange (P-256 CSR, X.509 leaf)', r.certs?.load));
  out.push('');

  out.push('### Against the targets');
  out.push('');
  out.push('| # | measure | result | target | verdict |');
  out.push('|---|---|---|---|---|');
  if (leash && r.hono) {
    out.push(`| 4 | Leash / baseline A | req/s ${fmtRatio(leash.rps / r.hono.rps)}, p99 ${fmtRatio(leash.latencyMs.p99 / r.hono.latencyMs.p99)} | (reference: the floor of one sign per request) | |`);
  }
  if (r.interleaved) out.push(...interleavedRows(r.interleaved));
  if (leash && r.oidc) {
    const rounds = r.rounds.length > 0 ? r.rounds : [{ oidc: r.oidc, exchange: leash }];
    const rpsRatio = medianOf(rounds.map((x) => x.exchange.rps / x.oidc.rps));
    const p99Ratio = medianOf(rounds.map((x) => x.exchange.latencyMs.p99 / x.oidc.latencyMs.p99));
    const each = rounds.length > 1 ? ` (median of ${rounds.length} alternating rounds, table below)` : ` (${fmtInt(leash.rps)} vs ${fmtInt(r.oidc.rps)} req/s, ${fmtMs(leash.latencyMs.p99)} vs ${fmtMs(r.oidc.latencyMs.p99)} ms)`;
    // With the interleaved pairs above, these 10 s runs a minute apart are context, not the verdict.
    const judged = r.interleaved ? '(see the interleaved row: runs a minute apart see different machine speeds)' : `req/s ${verdict(rpsRatio >= 1)}, p99 ${verdict(p99Ratio < 1)}`;
    out.push(`| 4 | Leash / oidc-provider, 10 s runs | req/s ${fmtRatio(rpsRatio)}, p99 ${fmtRatio(p99Ratio)}${each} | req/s >= 1.00x and p99 < 1.00x | ${judged} |`);
  }
  if (leash && r.oidc) {
    out.push(`| 4 | server CPU per request, Leash / oidc-provider | ${fmtRatio(serverCpuMs(leash) / serverCpuMs(r.oidc))} (${serverCpuMs(leash).toFixed(2)} vs ${serverCpuMs(r.oidc).toFixed(2)} ms) | (the figure least disturbed by other load on the machine) | |`);
  }
  if (r.exchangeEs256 && r.oidc) {
    const es = r.exchangeEs256.single;
    const oidcRps = medianOf((r.rounds.length > 0 ? r.rounds.map((x) => x.oidc) : [r.oidc]).map((x) => x.rps));
    out.push(`| 4 | ES256 proofs: Leash req/s / oidc-provider's median round | ${fmtRatio(es.rps / oidcRps)} (${fmtInt(es.rps)} vs ${fmtInt(oidcRps)} req/s, p99 ${fmtMs(es.latencyMs.p99)} ms) | (informational: a P-256 signature check costs over twice an RS256 one) | |`);
  }
  if (ex?.scaleOut && leash) {
    out.push(`| 1 | scale-out: 2 API processes / 1 | req/s ${fmtRatio(ex.scaleOut.rps / leash.rps)} | (informational: ${m.cpus} cores shared by both brokers, Redis and the load generator) | |`);
  }
  if (ex?.scaleOut && r.oidc) {
    // The scale-out run is measured once, so it is set beside oidc-provider's median round.
    const rounds = r.rounds.length > 0 ? r.rounds.map((x) => x.oidc) : [r.oidc];
    const oidcRps = medianOf(rounds.map((x) => x.rps));
    const oidcP99 = medianOf(rounds.map((x) => x.latencyMs.p99));
    const rps = ex.scaleOut.rps / oidcRps;
    const p99 = ex.scaleOut.latencyMs.p99 / oidcP99;
    const interleaved = r.interleaved?.pairs.some((x) => x.leash2);
    const judged = interleaved ? '(see the interleaved row: runs a minute apart see different machine speeds)' : `req/s ${verdict(rps >= 1)}, p99 ${verdict(p99 < 1)}`;
    out.push(
      `| 4 | scale-out: 2 API processes / oidc-provider's median round, 10 s runs | req/s ${fmtRatio(rps)}, p99 ${fmtRatio(p99)} (${fmtInt(ex.scaleOut.rps)} vs ${fmtInt(oidcRps)} req/s, ${fmtMs(ex.scaleOut.latencyMs.p99)} vs ${fmtMs(oidcP99)} ms) | req/s >= 1.00x and p99 < 1.00x | ${judged} |`,
    );
  }
  if (r.certs) {
    const cl = r.certs.load;
    out.push(
      `| 5 | certificates/s (full exchange, P-256 CSR) | ${fmtInt(cl.rps)}/s, p99 ${fmtMs(cl.latencyMs.p99)} ms; the certificate step alone (CSR parse + checks + issue) ${fmtInt(r.certs.issueOnlyCpuUs)} µs CPU each | about 1,000/s (step-ca here) | ${verdict(cl.rps >= 1000)} |`,
    );
  }
  if (r.expiry) {
    const e = r.expiry;
    out.push(
      `| 6 | expiry lag, ${fmtInt(e.leases)} leases expiring in the same second (worker process, sweep every ${e.sweepIntervalMs} ms) | p50 ${fmtInt(e.lagMs.p50)} ms, p99 ${fmtInt(e.lagMs.p99)} ms, max ${fmtInt(e.lagMs.max)} ms (${fmtInt(e.ended)} of ${fmtInt(e.leases)} ended) | p99 < 1,000 ms | ${verdict(e.lagMs.p99 < 1000 && e.ended === e.leases)} |`,
    );
  }
  if (r.memory) {
    const mm = r.memory;
    const note = mm.cutShort ? ` (**${fmtInt(mm.written)} of ${fmtInt(mm.requested)} requested**: the ${c.memoryBudgetSeconds} s budget ran out)` : '';
    out.push(
      `| 7 | Redis bytes per active lease, expiry schedule and indexes included | ${fmtInt(mm.bytesPerLease)} B with ${fmtInt(mm.written)} active leases${note}; written at ${fmtInt(mm.createsPerSecond)} creates/s | <= 1,024 B at 1,000,000 | ${verdict(mm.bytesPerLease <= 1024)}${mm.cutShort ? ' (at the smaller count)' : ''} |`,
    );
  }
  if (ex && Number.isFinite(ex.redisBytesPerExchange)) {
    out.push(`| 7b | Redis bytes per JWT exchange (lease + replay record + audit stream entry) | ${fmtInt(ex.redisBytesPerExchange)} B | (informational) | |`);
  }
  if (r.bulk) {
    const b = r.bulk;
    out.push(
      `| 8 | bulk revocation of ${fmtInt(b.leases)} leases of one subject and rule (POST /v1/leases/revoke) | revoked ${fmtInt(b.revoked)}; call ${fmtInt(b.revokeCallMs)} ms; all ${b.sample} sampled tokens inactive at introspection after ${fmtInt(b.visibleMs)} ms; worker effects done after ${Number.isFinite(b.effectsDoneMs) ? `${(b.effectsDoneMs / 1000).toFixed(1)} s` : `(not within 60 s: ${b.effectsPendingAtEnd} pending)`}; during the call Redis used ${fmtInt(b.cpuDuringCallMs.redis ?? NaN)} ms CPU, the broker ${fmtInt(b.cpuDuringCallMs.broker ?? NaN)} ms, other processes ${fmtInt(b.otherLoadDuringCallPct)}% of a core | visible < 5,000 ms | ${verdict(b.visibleMs < 5000 && b.revoked === b.leases)} |`,
    );
  }
  out.push(...scaleRows(r));
  out.push('');
  if (r.interleaved) {
    const il = r.interleaved;
    const two = il.pairs.some((x) => x.leash2);
    out.push(`The JWT exchange against oidc-provider in rounds of ${il.sliceMs / 1000} s slices (0.5 s warm-up each), every server up, the load alternating and the order rotating:`);
    out.push('');
    out.push(`| round | first | oidc-provider req/s | Leash req/s | ratio |${two ? ' Leash, 2 processes, req/s | ratio |' : ''} oidc-provider p99 ms | Leash p99 ms | ratio |${two ? ' Leash, 2 processes, p99 ms | ratio |' : ''} server CPU ms/request, oidc-provider / Leash |`);
    out.push(`|---:|---|---:|---:|---:|${two ? '---:|---:|' : ''}---:|---:|---:|${two ? '---:|---:|' : ''}---|`);
    const firstName: Record<SlicePair['first'], string> = { oidc: 'oidc-provider', leash: 'Leash', leash2: 'Leash, 2 processes' };
    il.pairs.forEach((x, i) => {
      const l2 = x.leash2;
      const rps2 = two ? (l2 ? ` ${fmtInt(l2.rps)} | ${fmtRatio(l2.rps / x.oidc.rps)} |` : ' | |') : '';
      const p992 = two ? (l2 ? ` ${fmtMs(l2.latencyMs.p99)} | ${fmtRatio(l2.latencyMs.p99 / x.oidc.latencyMs.p99)} |` : ' | |') : '';
      out.push(
        `| ${i + 1} | ${firstName[x.first]} | ${fmtInt(x.oidc.rps)} | ${fmtInt(x.leash.rps)} | ${fmtRatio(x.leash.rps / x.oidc.rps)} |${rps2} ${fmtMs(x.oidc.latencyMs.p99)} | ${fmtMs(x.leash.latencyMs.p99)} | ${fmtRatio(x.leash.latencyMs.p99 / x.oidc.latencyMs.p99)} |${p992} ${perRequestCell(x.oidc)} / ${perRequestCell(x.leash)} |`,
      );
    });
    out.push('');
  }
  if (r.rounds.length > 1) {
    out.push('Leash JWT exchange (1 API process) against oidc-provider, round by round:');
    out.push('');
    out.push('| round | oidc-provider req/s | Leash req/s | req/s ratio | oidc-provider p99 ms | Leash p99 ms | p99 ratio | server CPU ms/request, oidc-provider / Leash |');
    out.push('|---:|---:|---:|---:|---:|---:|---:|---|');
    r.rounds.forEach((x, i) => {
      out.push(
        `| ${i + 1} | ${fmtInt(x.oidc.rps)} | ${fmtInt(x.exchange.rps)} | ${fmtRatio(x.exchange.rps / x.oidc.rps)} | ${fmtMs(x.oidc.latencyMs.p99)} | ${fmtMs(x.exchange.latencyMs.p99)} | ${fmtRatio(x.exchange.latencyMs.p99 / x.oidc.latencyMs.p99)} | ${perRequestCell(x.oidc)} / ${perRequestCell(x.exchange)} |`,
      );
    });
    out.push('');
  }
  if (ex) out.push(`JWKS fetched ${ex.jwksFetches} time(s) by the exchange brokers (warm cache). ${fmtInt(ex.proofsPerRun)} distinct proofs minted per exchange run.`);
  const busy = [leash, ex?.scaleOut, r.hono, r.oidc, r.certs?.load].filter((x): x is LoadResult => !!x).filter((x) => (x.cpuPct['rest of machine'] ?? 0) > 25);
  if (busy.length > 0) {
    out.push('');
    out.push(`Note: other processes on this shared machine used CPU during ${busy.map((b) => `"${b.name}" (${Math.round(b.cpuPct['rest of machine']!)}% of a core)`).join(', ')}; those figures are low.`);
  }
  if (Object.keys(r.errors).length > 0) {
    out.push('');
    out.push('### Sections that failed');
    for (const [k, v] of Object.entries(r.errors)) out.push(`- ${k}: ${v}`);
  }
  if (ex?.profile) {
    const p = ex.profile;
    out.push('');
    out.push(`### Where the exchange spends its CPU (V8 CPU profile of the broker over ${p.load.seconds.toFixed(0)} s at ${fmtInt(p.load.rps)} req/s under the profiler)`);
    out.push('');
    out.push(`Full profile: ${p.file} (open in Chrome DevTools or speedscope).`);
    out.push('');
    out.push(formatProfile(p.summary));
  }
  if (r.certs?.profile) {
    const p = r.certs.profile;
    out.push('');
    out.push(`### Where the certificate exchange spends its CPU (profile over ${p.load.seconds.toFixed(0)} s at ${fmtInt(p.load.rps)} req/s under the profiler)`);
    out.push('');
    out.push(`Full profile: ${p.file}.`);
    out.push('');
    out.push(formatProfile(p.summary));
  }
  out.push('');
  return out.join('\n');
}

const sec = (ms: number): string => (Number.isFinite(ms) ? `${(ms / 1000).toFixed(1)} s` : 'n/a');

/** Figures 9-12: the targets at scale (Cluster, Sentinel failover, storms). */
function scaleRows(r: Results): string[] {
  const out: string[] = [];
  const ratioCell = (x: RatioSummary): string => `${fmtRatio(x.geoMean)} (95% interval ${x.low.toFixed(2)}–${x.high.toFixed(2)}x)`;
  if (r.cluster) {
    const cl = r.cluster;
    const medians = (x: PairedRatios): string => `median ${fmtInt(medianOf(x.perRound.map((p) => p.rps[0])))} vs ${fmtInt(medianOf(x.perRound.map((p) => p.rps[1])))} req/s`;
    out.push(
      `| 9 | JWT exchange on a 3-primary Redis Cluster (no replicas) / standalone Redis (no replica), ${cl.rounds} rounds of ${cl.sliceMs / 1000} s slices | req/s ${ratioCell(cl.rps)} (${medians(cl)}); p99 ${ratioCell(cl.p99)} | req/s >= 0.85x | ${cl.rps.low >= 0.85 ? 'met' : cl.rps.high < 0.85 ? '**missed**' : `level (0.85x is inside the interval; mean ${verdict(cl.rps.geoMean >= 0.85)})`} |`,
    );
    const wr = cl.withReplicas;
    out.push(
      `| 9b | JWT exchange on a 3-primary + 3-replica Redis Cluster / standalone Redis (no replica), the same run's rounds | req/s ${ratioCell(wr.rps)} (${medians(wr)}); p99 ${ratioCell(wr.p99)} | (reported: the replicas apply every write on the same cores) | |`,
    );
  }
  if (r.failover) {
    const f = r.failover;
    const w = f.waitCost;
    out.push(`| 10 | Sentinel, LEASH_REDIS_MIN_REPLICAS=1 / =0 (WAIT 1 on every lease write), ${w.rounds} rounds of ${w.sliceMs / 1000} s slices | req/s ${ratioCell(w.rps)}; p99 ${ratioCell(w.p99)} | (informational: the cost of durability) | |`);
    const fails = Object.entries(f.failedAfterKill).map(([k, v]) => `${k === '0' ? 'no answer' : k}: ${v}`).join(', ') || 'none';
    out.push(
      `| 11 | Sentinel primary SIGKILLed under ${f.rate} exchanges/s, MIN_REPLICAS=1 | ${fmtInt(f.lost)} of ${fmtInt(f.acknowledged)} acknowledged leases lost, ${fmtInt(f.revocationsLost)} of ${fmtInt(f.revocationsAcknowledged)} confirmed revocations lost; failed answers after the kill: ${fails}; exchanges succeed again ${f.recoverySeconds.toFixed(1)} s after the kill (new primary named after ${f.promotionSeconds.toFixed(1)} s); p99 before ${fmtMs(f.before.latencyMs.p99)} ms, after ${fmtMs(f.after.latencyMs.p99)} ms | 0 lost, < 10 s | ${verdict(f.lost === 0 && f.revocationsLost === 0 && f.recoverySeconds < 10)} |`,
    );
  }
  const e = r.storms?.expiry;
  if (e) {
    out.push(
      `| 12a | ${fmtInt(e.leases)} leases expiring in the same second under ${r.storms!.rate} exchanges/s (API and worker processes) | exchange p99 ${fmtMs(e.storm.latencyMs.p99)} ms during the storm vs ${fmtMs(e.quiet.latencyMs.p99)} ms quiet = ${fmtRatio(e.p99Ratio)} (max ${fmtMs(e.storm.latencyMs.max)} ms, ${e.storm.errors} errors), ${fmtMs(e.readingAhead.latencyMs.p99)} ms = ${fmtRatio(e.readingAheadRatio)} while the worker read them ahead; expiry lag p50 ${fmtInt(e.lagMs.p50)} ms, p99 ${fmtInt(e.lagMs.p99)} ms, max ${fmtInt(e.lagMs.max)} ms (${fmtInt(e.ended)} of ${fmtInt(e.leases)} ended) | p99 <= 2x quiet, lag p99 < 2,000 ms | ${verdict(e.p99Ratio <= 2 && e.readingAheadRatio <= 2 && e.lagMs.p99 < 2000 && e.ended === e.leases && e.storm.errors + e.readingAhead.errors === 0)} |`,
    );
  }
  const b = r.storms?.bulk;
  if (b) {
    out.push(
      `| 12b | bulk revocation of ${fmtInt(b.leases)} leases of one subject under ${r.storms!.rate} exchanges/s | revoked ${fmtInt(b.revoked)}; all ${b.sample} sampled tokens inactive after ${sec(b.visibleMs)} (call ${sec(b.revokeCallMs)}); exchange p99 ${fmtMs(b.duringCall.latencyMs.p99)} ms during the call vs ${fmtMs(b.quiet.latencyMs.p99)} ms quiet = ${fmtRatio(b.p99RatioCall)}, ${fmtMs(b.untilEffectsDone.latencyMs.p99)} ms = ${fmtRatio(b.p99RatioEffects)} until the worker's effects were done (${sec(b.effectsDoneMs)}); ${b.duringCall.errors + b.untilEffectsDone.errors} errors | visible < 30 s, p99 <= 2x quiet | ${verdict(b.visibleMs < 30_000 && b.revoked === b.leases && b.p99RatioCall <= 2 && b.untilEffectsDone.errors === 0)}${b.p99RatioEffects > 2 ? ' (p99 until the effects were done above 2x)' : ''} |`,
    );
  }
  return out;
}

let args: ReturnType<typeof parseBenchArgs>;
try {
  args = parseBenchArgs(process.argv.slice(2));
} catch (err) {
  if (!(err instanceof BenchUsageError)) throw err;
  process.stderr.write(`bench: ${err.message}\n\n${USAGE}`);
  process.exit(2);
}
if (args.help) {
  process.stdout.write(USAGE);
} else {
  if (args.only !== undefined) process.env.BENCH_ONLY = args.only;
  await main();
}
