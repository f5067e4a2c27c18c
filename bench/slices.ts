/**
 * Interleaved slices of the JWT exchange between several Leash brokers that are all up at once
 * (the scale sections: a broker on Cluster against one on standalone Redis; WAIT against none).
 */
import type { ChildServer } from './child.ts';
import { exchangeBody, firstExchange } from './env.ts';
import { isJwtExchangeAnswer, mintProofs, type LoadConfig } from './exchange-load.ts';
import { pairedRatios, runSliceRounds, type PairedRatios } from './interleaved.ts';
import { runLoad, type LoadResult } from './load-generator.ts';
import type { ProofIssuer } from './proof-issuer.ts';
import { log } from './util.ts';

export type SliceConfig = LoadConfig & { rounds: number; sliceMs: number; expectedRps?: number };

/** `a` against `b` in `rounds` rounds of `sliceMs` slices (0.5 s warm-up each); ratios are a / b. */
export async function exchangeSlices<K extends string>(
  brokers: Record<K, ChildServer>,
  a: K,
  b: K,
  issuer: ProofIssuer,
  cfg: SliceConfig,
  /** Further processes whose CPU each broker's slices report (its Redis nodes), by broker. */
  cpuOf: Partial<Record<K, Record<string, number>>> = {},
): Promise<PairedRatios> {
  return pairedRatios(await exchangeRounds(brokers, issuer, cfg, cpuOf), a, b, cfg.sliceMs);
}

/**
 * Every broker's slice in each of `rounds` rounds, the order rotating, so any two of them can be
 * set against each other with pairedRatios (three or more brokers share one run).
 */
export async function exchangeRounds<K extends string>(
  brokers: Record<K, ChildServer>,
  issuer: ProofIssuer,
  cfg: SliceConfig,
  cpuOf: Partial<Record<K, Record<string, number>>> = {},
): Promise<Array<{ first: K; results: Record<K, LoadResult> }>> {
  const names = Object.keys(brokers) as K[];
  const warm = await issuer.mint(100 * names.length, { repoPrefix: 'warm' });
  let w = 0;
  for (const n of names) await firstExchange(brokers[n].url, () => warm[w++]!);
  const slice = { concurrency: cfg.concurrency, warmupMs: 500, durationMs: cfg.sliceMs, quietWaitMs: 0 };
  const perSlice = Math.ceil(((slice.warmupMs + slice.durationMs) / 1000) * (cfg.expectedRps ?? 6_000));
  const load = (n: K, proofs: string[], name: string) =>
    runLoad({
      name,
      targets: [brokers[n].url],
      ...slice,
      next: (i) => (i < proofs.length ? { path: '/token', body: exchangeBody(proofs[i]!) } : null),
      check: isJwtExchangeAnswer,
      cpuOf: { broker: brokers[n].pid, ...cpuOf[n] },
    });
  // One uncounted slice each warms JIT and pools.
  for (const n of names) await load(n, await issuer.mint(perSlice, { repoPrefix: `warm-${n}` }), `${n} warm-up`);
  let proofs: string[] = [];
  return runSliceRounds(names, cfg.rounds, async (n, round) => {
    // Minted before the round, so each broker follows the minting burst equally often.
    if (n === names[round % names.length]) proofs = await mintProofs(issuer, perSlice * names.length, { repoPrefix: `r${round}` });
    const k = (names.indexOf(n) + names.length - (round % names.length)) % names.length;
    const r = await load(n, proofs.slice(k * perSlice, (k + 1) * perSlice), `${n} slice`);
    if (r.exhausted) log(`${n}: the slice's ${perSlice} proofs ran out before its end (raise expectedRps)`);
    return r;
  });
}
