/**
 * What an exchange costs in CPU at a steady rate well below saturation, where most deployments run
 * and where the storm targets put the exchange (200/s): an API process (LEASH_ROLE=api) and a worker
 * over one Redis, PACED_RATE (200) exchanges a second for PACED_SECONDS (15) after a 3 s warm-up.
 * Prints the CPU milliseconds an exchange of each process (and of this load generator), the API's
 * threads, and the exchange's p50/p99. At such rates fixed costs per request (a thread's wake-up,
 * a socket write) weigh more than at saturation, which `npm run bench` measures.
 * `npm run build && npx tsx bench/paced-cpu.ts` (the brokers run the compiled build).
 */
import 'reflect-metadata';
import { readFileSync, readdirSync } from 'node:fs';
import { Redis } from 'ioredis';
import { benchPolicy, exchangeBody, firstExchange, startBroker, startRedis } from './env.ts';
import { cpuSeconds } from './load-generator.ts';
import { startPacedLoad } from './paced-load.ts';
import { startProofIssuer } from './proof-issuer.ts';
import { envInt, redisPid, sleep, summarize } from './util.ts';

const rate = envInt('PACED_RATE', 200);
const seconds = envInt('PACED_SECONDS', 15);

/** CPU milliseconds of each thread of `pid`, by name and thread id (Linux /proc). */
function threadCpuMs(pid: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out[`${stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'))} ${tid}`] = (Number(fields[11]) + Number(fields[12])) * 10;
    } catch {
      // A thread that ended meanwhile.
    }
  }
  return out;
}

const redisServer = await startRedis();
const issuer = await startProofIssuer('RS256');
const redis = new Redis(redisServer.url);
const policyPath = benchPolicy(issuer.url, { maxActive: 100_000 });
const api = await startBroker({ name: 'leash-paced-api', redisUrl: redisServer.url, policyPath, role: 'api' });
const worker = await startBroker({ name: 'leash-paced-worker', redisUrl: redisServer.url, policyPath, role: 'worker', issuer: api.issuer });
try {
  const [warm] = await issuer.mint(1, { repoPrefix: 'warm' });
  await firstExchange(api.url, () => warm!);
  const proofs = await issuer.mint(rate * (seconds + 5), { repoPrefix: 'paced' });
  const load = startPacedLoad({ target: api.url, rate, next: (i) => (i < proofs.length ? { path: '/token', body: exchangeBody(proofs[i]!) } : null) });
  await sleep(3_000);
  const pids = { api: api.pid, worker: worker.pid, redis: await redisPid(redis), 'load generator': process.pid };
  const cpu0 = cpuSeconds(pids);
  const threads0 = threadCpuMs(api.pid);
  const from = load.samples.length;
  await sleep(seconds * 1_000);
  const cpu1 = cpuSeconds(pids);
  const threads1 = threadCpuMs(api.pid);
  const window = load.samples.slice(from);
  await load.stop();
  const ok = window.filter((s) => s.status === 200);
  const latency = summarize(ok.map((s) => s.doneAt - s.sentAt));
  const perExchange = Object.entries(pids).map(([name]) => `${name} ${(((cpu1[name]! - cpu0[name]!) * 1_000) / window.length).toFixed(3)}`);
  const busyThreads = Object.entries(threads1).map(([t, ms]) => [t, ms - (threads0[t] ?? 0)] as const).filter(([, ms]) => ms > 0);
  process.stdout.write(
    `${rate}/s for ${seconds} s: ${window.length} exchanges, ${window.length - ok.length} not 200, p50 ${latency.p50.toFixed(2)} ms, p99 ${latency.p99.toFixed(2)} ms\n` +
      `CPU ms an exchange: ${perExchange.join(', ')}\n` +
      `API threads, CPU ms over the window: ${busyThreads.map(([t, ms]) => `${t} ${ms}`).join(', ')}\n`,
  );
} finally {
  await worker.stop();
  await api.stop();
  redis.disconnect();
  await issuer.close();
  await redisServer.destroy();
}
process.exit(0);
