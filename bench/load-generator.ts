/**
 * Closed-loop HTTP load: `concurrency` requests in flight at all times, each loop on its own
 * keep-alive connection (http-connection.ts), the loops spread evenly over the targets. A warm-up phase runs first and is not counted; then every response that completes
 * inside the measured window counts, with its latency. Bounded in time (warm-up + duration, plus
 * a drain capped by the request timeout) and in count (`next()` returns null when the bodies, e.g.
 * single-use proofs, run out: the window then ends early and says so).
 */
import { readFileSync } from 'node:fs';
import { HttpConnection, type Reply } from './http-connection.ts';
import { summarize, waitForQuiet, type Summary } from './util.ts';

export interface LoadRequest {
  path: string;
  body: string;
  headers?: Record<string, string>;
}

export interface LoadOptions {
  name: string;
  targets: string[];
  concurrency: number;
  warmupMs: number;
  durationMs: number;
  /** The i-th request (0-based over the whole run); null ends the run (bodies exhausted). */
  next(i: number): LoadRequest | null;
  /** Checks a sampled response body (every `checkEvery`-th 200 answer); false counts as an error. */
  check?(body: string): boolean;
  checkEvery?: number;
  requestTimeoutMs?: number;
  /** Processes whose CPU use over the measured window is reported (pid by name); the load generator is always. */
  cpuOf?: Record<string, number>;
  /** Called when the measured window opens (after warm-up), e.g. to start a profiler. */
  onWindowStart?: () => void;
  /** Before starting, wait up to this long for other processes on the machine to go quiet (BENCH_QUIET_WAIT_S). */
  quietWaitMs?: number;
}

export interface LoadResult {
  name: string;
  concurrency: number;
  targets: number;
  /** Completed in the measured window. */
  requests: number;
  ok: number;
  errors: number;
  statuses: Record<string, number>;
  firstError: string | null;
  /** Measured window actually used, seconds. */
  seconds: number;
  /** Successful responses per second in the window. */
  rps: number;
  latencyMs: Summary;
  /** The bodies ran out before the window ended. */
  exhausted: boolean;
  /** Requests issued in total (warm-up included). */
  issued: number;
  /** 200 answers in total (warm-up included): what the server did, e.g. leases written. */
  okTotal: number;
  /** CPU used over the measured window, in % of one core, by process name. */
  cpuPct: Record<string, number>;
  /** CPU milliseconds per successful request, by process name (steadier than req/s on a shared machine). */
  cpuMsPerRequest: Record<string, number>;
  /** CPU the machine was using (in % of one core) just before the run started. */
  machineBusyBeforePct: number;
}

export async function runLoad(opts: LoadOptions): Promise<LoadResult> {
  const timeoutMs = opts.requestTimeoutMs ?? 10_000;
  const checkEvery = opts.checkEvery ?? 200;
  const targets = opts.targets.map((t) => new URL(t));
  const connections = Array.from({ length: opts.concurrency }, (_, c) => {
    const t = targets[c % targets.length]!;
    return new HttpConnection(t.hostname, Number(t.port), timeoutMs);
  });

  const quietWaitMs = opts.quietWaitMs ?? Number(process.env.BENCH_QUIET_WAIT_S ?? 10) * 1000;
  const machineBusyBeforePct = quietWaitMs > 0 ? await waitForQuiet(quietWaitMs) : NaN;

  const start = performance.now();
  const measureFrom = start + opts.warmupMs;
  let measureTo = measureFrom + opts.durationMs;
  let issued = 0;
  let exhausted = false;
  let exhaustedAt = Infinity;
  let okCount = 0;
  let okTotal = 0;
  let errors = 0;
  let firstError: string | null = null;
  const statuses: Record<string, number> = {};
  let latencies = new Float64Array(1 << 16);
  let n = 0;

  const record = (startedAt: number, endedAt: number, reply: Reply, checked: boolean): void => {
    if (startedAt < measureFrom || endedAt > measureTo) return;
    const good = reply.status === 200 && (!checked || !opts.check || opts.check(reply.body));
    const key = reply.status === 0 ? 'network' : String(reply.status);
    statuses[key] = (statuses[key] ?? 0) + 1;
    if (good) {
      okCount++;
      if (n === latencies.length) {
        const bigger = new Float64Array(latencies.length * 2);
        bigger.set(latencies);
        latencies = bigger;
      }
      latencies[n++] = endedAt - startedAt;
    } else {
      errors++;
      firstError ??= `${reply.status} ${reply.error ?? reply.body.slice(0, 300)}`;
    }
  };

  const loop = async (conn: HttpConnection): Promise<void> => {
    for (;;) {
      const now = performance.now();
      if (now >= measureTo) return;
      const i = issued;
      const req = opts.next(i);
      if (!req) {
        if (!exhausted) {
          exhausted = true;
          exhaustedAt = now;
          // The window ends here: answers still in flight would otherwise inflate the rate.
          if (now < measureTo) measureTo = Math.max(measureFrom, now);
        }
        return;
      }
      issued++;
      const checked = opts.check !== undefined && i % checkEvery === 0;
      const startedAt = performance.now();
      const reply = await conn.post(req.path, req.body, req.headers ?? {}, checked);
      const endedAt = performance.now();
      if (reply.status === 200) okTotal++;
      if (startedAt < measureFrom && endedAt >= measureFrom) {
        // Straddles the start of the window: neither warm-up nor measured.
        continue;
      }
      if (startedAt < measureFrom) {
        if (reply.status !== 200 && !firstError) firstError = `(warm-up) ${reply.status} ${reply.error ?? reply.body.slice(0, 300)}`;
        continue;
      }
      record(startedAt, endedAt, reply, checked);
    }
  };

  const pids = { ...opts.cpuOf, 'load generator': process.pid };
  let cpuStart: Record<string, number> | undefined;
  let cpuEnd: Record<string, number> | undefined;
  const startTimer = setTimeout(() => {
    cpuStart = cpuSeconds(pids);
    opts.onWindowStart?.();
  }, Math.max(0, measureFrom - performance.now()));
  const endTimer = setTimeout(() => { cpuEnd = cpuSeconds(pids); }, Math.max(0, measureTo - performance.now()));
  await Promise.all(connections.map((conn) => loop(conn)));
  clearTimeout(startTimer);
  clearTimeout(endTimer);
  cpuEnd ??= cpuSeconds(pids);
  const cpuPct: Record<string, number> = {};
  const windowS = (Math.min(measureTo, performance.now()) - measureFrom) / 1000;
  if (cpuStart && windowS > 0) {
    let known = 0;
    for (const k of Object.keys(pids)) {
      cpuPct[k] = (100 * ((cpuEnd[k] ?? NaN) - (cpuStart[k] ?? NaN))) / windowS;
      if (Number.isFinite(cpuPct[k])) known += cpuPct[k]!;
    }
    // Everything else on the machine (other people's jobs skew a shared 2-core box).
    const machine = (100 * ((cpuEnd[MACHINE] ?? NaN) - (cpuStart[MACHINE] ?? NaN))) / windowS;
    if (Number.isFinite(machine)) cpuPct['rest of machine'] = Math.max(0, machine - known);
  }
  for (const conn of connections) conn.close();

  const seconds = Math.max(0, (measureTo - measureFrom) / 1000);
  return {
    name: opts.name,
    concurrency: opts.concurrency,
    targets: targets.length,
    requests: okCount + errors,
    ok: okCount,
    errors,
    statuses,
    firstError,
    seconds,
    rps: seconds > 0 ? okCount / seconds : NaN,
    latencyMs: summarize(latencies.subarray(0, n)),
    exhausted: exhausted && exhaustedAt < measureFrom + opts.durationMs,
    issued,
    okTotal,
    cpuPct,
    cpuMsPerRequest: Object.fromEntries(Object.entries(cpuPct).map(([k, v]) => [k, okCount > 0 ? (v / 100) * seconds * 1000 / okCount : NaN])),
    machineBusyBeforePct,
  };
}

const CLK_TCK = 100; // Linux USER_HZ

/** Key of the whole machine's busy CPU seconds in cpuSeconds() results. */
export const MACHINE = '\0machine';

/** user+system CPU seconds of each process (and of the whole machine), from /proc (Linux); NaN where unreadable. */
export function cpuSeconds(pids: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal: busy = all but idle and iowait.
    out[MACHINE] = (line[0]! + line[1]! + line[2]! + line[5]! + line[6]! + line[7]!) / CLK_TCK;
  } catch {
    out[MACHINE] = NaN;
  }
  for (const [name, pid] of Object.entries(pids)) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      // fields[0] is field 3 (state); utime and stime are fields 14 and 15.
      out[name] = (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
    } catch {
      out[name] = NaN;
    }
  }
  return out;
}
