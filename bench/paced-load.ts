/**
 * Open-loop load at a steady rate (the "~200 exchanges/s" of the scale targets): a request is sent
 * every 1/rate seconds whatever the answers do, on a pool of keep-alive connections, so a stall
 * shows as latency (and queued requests) instead of as a lower rate. Every answer is kept with its
 * send and answer times, so a section can cut windows (quiet, storm, failover) out of one run.
 */
import { HttpConnection } from './http-connection.ts';
import { summarize, type Summary } from './util.ts';

export interface PacedSample {
  /** performance.now() when sent and when answered. */
  sentAt: number;
  doneAt: number;
  status: number;
  /** The answer's body when kept (`keepBody`), else ''. */
  body: string;
}

export interface PacedOptions {
  target: string;
  rate: number;
  /** Connections in the pool; a request waits for a free one (so a stall shows as latency). */
  connections?: number;
  next(i: number): { path: string; body: string; headers?: Record<string, string> } | null;
  keepBody?: (i: number) => boolean;
  onAnswer?: (s: PacedSample, i: number) => void;
  requestTimeoutMs?: number;
}

export interface PacedLoad {
  samples: PacedSample[];
  /** Stops sending, waits for the answers in flight. */
  stop(): Promise<PacedSample[]>;
}

export function startPacedLoad(opts: PacedOptions): PacedLoad {
  const url = new URL(opts.target);
  const idle = Array.from({ length: opts.connections ?? 64 }, () => new HttpConnection(url.hostname, Number(url.port), opts.requestTimeoutMs ?? 10_000));
  const waiting: ((c: HttpConnection) => void)[] = [];
  const samples: PacedSample[] = [];
  const inFlight = new Set<Promise<void>>();
  const t0 = performance.now();
  let i = 0;
  let stopped = false;
  const acquire = (): Promise<HttpConnection> => (idle.length > 0 ? Promise.resolve(idle.pop()!) : new Promise((r) => waiting.push(r)));
  const release = (c: HttpConnection): void => {
    const w = waiting.shift();
    if (w) w(c);
    else idle.push(c);
  };
  const fire = (n: number, sentAt: number): void => {
    const req = opts.next(n);
    if (!req) {
      stopped = true;
      return;
    }
    const p = (async () => {
      const conn = await acquire();
      const reply = await conn.post(req.path, req.body, req.headers ?? {}, opts.keepBody?.(n) ?? false);
      release(conn);
      const s: PacedSample = { sentAt, doneAt: performance.now(), status: reply.status, body: reply.status === 200 ? reply.body : reply.body || reply.error || '' };
      samples.push(s);
      opts.onAnswer?.(s, n);
    })();
    inFlight.add(p);
    void p.finally(() => inFlight.delete(p));
  };
  // A timer tick sends every request that is due by now (timers are coarse; the schedule is not).
  // Latency counts from that send (a wait for a free connection included), not from the schedule:
  // the timer's own lateness is the load generator's, not the server's.
  const tick = (): void => {
    if (stopped) return;
    const due = Math.floor(((performance.now() - t0) / 1000) * opts.rate);
    while (i < due && !stopped) fire(i++, performance.now());
    if (!stopped) timer = setTimeout(tick, Math.max(1, Math.floor(1000 / opts.rate)));
  };
  let timer = setTimeout(tick, 0);
  return {
    samples,
    async stop() {
      stopped = true;
      clearTimeout(timer);
      while (inFlight.size > 0) await Promise.all([...inFlight]);
      for (const c of [...idle, ...waiting.map(() => null)]) c?.close();
      return samples;
    },
  };
}

export interface WindowStats {
  seconds: number;
  sent: number;
  ok: number;
  errors: number;
  statuses: Record<string, number>;
  /** Latency from the send (a wait for a free connection included) of the 200 answers in the window. */
  latencyMs: Summary;
}

/** The answers to requests sent within [from, to). */
export function windowStats(samples: readonly PacedSample[], from: number, to: number): WindowStats {
  const inside = samples.filter((s) => s.sentAt >= from && s.sentAt < to);
  const statuses: Record<string, number> = {};
  for (const s of inside) statuses[String(s.status)] = (statuses[String(s.status)] ?? 0) + 1;
  const ok = inside.filter((s) => s.status === 200);
  return {
    seconds: (to - from) / 1000,
    sent: inside.length,
    ok: ok.length,
    errors: inside.length - ok.length,
    statuses,
    latencyMs: summarize(ok.map((s) => s.doneAt - s.sentAt)),
  };
}
