import { parseArgs } from 'node:util';

export const USAGE = `Usage: npm run bench [-- options]

Measures Leash on this machine beside its baselines in the same run (bare Hono ES256 sign,
oidc-provider's token endpoint), prints a markdown table and writes bench/results/latest.json.

Options:
  --only <sections>   comma list of sections to run (same as BENCH_ONLY); default: all
  -h, --help          this text

Sections: hono, oidc, baselines (= hono,oidc), exchange, scaleout, certs, expiry, memory, bulk,
          cluster (3-primary Redis Cluster, and 3 primaries + 3 replicas, against standalone),
          failover (Sentinel: WAIT cost, primary SIGKILLed under load), storms (expiry storm and bulk
          revocation under steady exchanges)

Environment (all optional):
  BENCH_ONLY           sections, as --only
  BENCH_DURATION_S     measured window of each load run (10); BENCH_WARMUP_S (2); BENCH_CONCURRENCY (64)
  BENCH_ROUNDS         10 s runs of oidc-provider then the exchange, alternated (1)
  BENCH_PAIRS          interleaved slice pairs behind the verdict against oidc-provider (30; 0 skips)
  BENCH_SLICE_S        seconds per interleaved slice (3)
  BENCH_PROOFS         proofs minted per load run
  BENCH_LEASES         leases for the memory section (1,000,000); BENCH_MEMORY_BUDGET_S (120)
  BENCH_EXPIRY_LEASES  leases expiring together (10,000); BENCH_BULK_LEASES (100,000)
  BENCH_SCALE_ROUNDS   slice rounds of the cluster section and of failover's WAIT cost (10)
  BENCH_STEADY_RATE    exchanges/s of the open-loop load in failover and storms (200)
  BENCH_FAILOVER_AFTER_S  failover: run on until this many seconds without a failed exchange (5)
  BENCH_STORM_EXPIRY_LEASES  leases expiring together in storms (100,000); BENCH_STORM_BULK_LEASES (1,000,000)
  BENCH_STORM_QUIET_S  storms: the quiet window p99 is compared with (10); BENCH_STORM_EFFECTS_S (120)
  BENCH_STORM_PARTS    storms parts to run: expiry,bulk (both)
  BENCH_QUIET_WAIT_S   wait up to this long for the machine to go quiet before each part (10)
  BENCH_PROFILE        1: always CPU-profile the exchange and certificates; 0: never
  BENCH_LOG_LEVEL      the broker's LEASH_LOG_LEVEL (info)
  BENCH_CHILD_FLAGS    node flags for the broker processes, space-separated (none);
                       BENCH_CHILD_FLAGS_API, _WORKER, _ALL: for the processes of that LEASH_ROLE only
  BENCH_ES256          0: skip the run with ES256 proofs
`;

export class BenchUsageError extends Error {
  readonly code = 'ERR_BENCH_USAGE';
}

/** The bench's own arguments; anything it does not know is an error, never a silent full run. */
export function parseBenchArgs(argv: string[]): { help: boolean; only?: string } {
  try {
    const { values } = parseArgs({
      args: argv,
      options: { help: { type: 'boolean', short: 'h' }, only: { type: 'string' } },
      strict: true,
      allowPositionals: false,
    });
    return { help: values.help ?? false, ...(values.only !== undefined ? { only: values.only } : {}) };
  } catch (err) {
    throw new BenchUsageError((err as Error).message);
  }
}
