/** Small helpers shared by the bench sections: statistics, formatting, bounded waiting. */
import { cpus } from 'node:os';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export const envInt = (name: string, fallback: number): number => {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw.replaceAll('_', ''));
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name} must be a positive number, not ${raw}`);
  return Math.floor(n);
};

/** Nearest-rank percentile of an ascending array. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}

export interface Summary {
  count: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
}

export function summarize(values: ArrayLike<number>): Summary {
  const sorted = Float64Array.from(values as ArrayLike<number>).sort();
  let sum = 0;
  for (let i = 0; i < sorted.length; i++) sum += sorted[i]!;
  return {
    count: sorted.length,
    p50: percentile(sorted, 50),
    p90: percentile(sorted, 90),
    p99: percentile(sorted, 99),
    max: sorted.length ? sorted[sorted.length - 1]! : NaN,
    mean: sorted.length ? sum / sorted.length : NaN,
  };
}

/** Polls `check` every `everyMs` until it returns true or `timeoutMs` passes; returns whether it did. */
export async function waitUntil(check: () => Promise<boolean> | boolean, timeoutMs: number, everyMs = 20): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() >= deadline) return false;
    await sleep(everyMs);
  }
}

export const fmtInt = (n: number): string => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : 'n/a');
export const fmtMs = (n: number): string => (Number.isFinite(n) ? (n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(2)) : 'n/a');
export const fmtRatio = (n: number): string => (Number.isFinite(n) ? `${n.toFixed(2)}x` : 'n/a');

export const log = (msg: string): void => {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
};

export interface MachineInfo {
  cpus: number;
  cpuModel: string;
  node: string;
  redis: string;
  platform: string;
}

export function machineInfo(): MachineInfo {
  let redis = 'unknown';
  try {
    const out = execFileSync('redis-server', ['--version'], { encoding: 'utf8', timeout: 5_000 });
    redis = /v=([\d.]+)/.exec(out)?.[1] ?? out.trim();
  } catch {
    // reported as unknown
  }
  const c = cpus();
  return { cpus: c.length, cpuModel: c[0]?.model.trim() ?? 'unknown', node: process.version, redis, platform: `${process.platform} ${process.arch}` };
}

/** Redis INFO memory used_memory, in bytes. */
export async function usedMemory(redis: { info(section: string): Promise<string> }): Promise<number> {
  const m = /used_memory:(\d+)/.exec(await redis.info('memory'));
  if (!m) throw new Error('INFO memory has no used_memory');
  return Number(m[1]);
}

/** The redis-server's own pid (INFO server process_id), to read its CPU use. */
export async function redisPid(redis: { info(section: string): Promise<string> }): Promise<number> {
  const m = /process_id:(\d+)/.exec(await redis.info('server'));
  return m ? Number(m[1]) : NaN;
}

export const fmtCpu = (cpu: Record<string, number>): string =>
  Object.entries(cpu)
    .map(([k, v]) => `${k} ${Number.isFinite(v) ? Math.round(v) : '?'}%`)
    .join(', ');

/** Busy share of the whole machine (100% = one core) over `ms`, from /proc/stat. */
export async function machineBusyPct(ms = 1_000): Promise<number> {
  const read = (): number[] => readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const busy = (v: number[]): number => v[0]! + v[1]! + v[2]! + v[5]! + v[6]! + v[7]!;
  const a = read();
  await sleep(ms);
  const b = read();
  return (100 * (busy(b) - busy(a))) / 100 / (ms / 1000);
}

/**
 * The machine is shared (other people's tests run on it): before a timed section wait, bounded,
 * until the rest of the machine uses less than `maxPct` of one core. Returns the last reading.
 */
export async function waitForQuiet(maxWaitMs: number, maxPct = 30): Promise<number> {
  const deadline = Date.now() + maxWaitMs;
  let pct = await machineBusyPct(500);
  let said = false;
  while (pct > maxPct && Date.now() < deadline) {
    if (!said) log(`the machine is busy (${Math.round(pct)}% of a core used by other processes); waiting up to ${Math.round(maxWaitMs / 1000)} s for it to calm down`);
    said = true;
    pct = await machineBusyPct(1_000);
  }
  if (said) log(pct > maxPct ? `still busy (${Math.round(pct)}%); measuring anyway` : `quiet now (${Math.round(pct)}%)`);
  return pct;
}
