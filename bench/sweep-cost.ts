/**
 * What one expiry costs the sweep, away from any other load: N leases (SWEEP_COST_LEASES, 50,000)
 * of SWEEP_COST_SUBJECTS subjects (1,000) due at once, read ahead, then swept through sweepOnce
 * with the audit lines logged to /dev/null. Prints the worker's and Redis's CPU an ending.
 *
 * `--callgrind` runs redis-server under `valgrind --tool=callgrind` and counts its instructions
 * over the sweep alone: timings on a shared VM swing by a third between runs, the instruction
 * count of one build repeats to a few hundredths of a per cent, so script changes are compared by
 * it (bench/README.md, eighth pass). Run it with fewer leases (valgrind is ~50x slower), e.g.
 * `SWEEP_COST_LEASES=10000 SWEEP_COST_SUBJECTS=100 npx tsx bench/sweep-cost.ts --callgrind`.
 * `--profile FILE` writes the worker's CPU profile of the sweep to FILE and prints its hot spots.
 * `--alloc` prints the bytes the worker allocated an ending over the sweep, and where: a figure that
 * repeats from run to run where the CPU an ending swings by a fifth (the sampling slows the sweep,
 * so its CPU figures are then not comparable).
 * Run by `node --expose-gc --import tsx` it also prints the heap the read-ahead holds.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Session } from 'node:inspector/promises';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { createRedisLeaseStore } from '../src/leases/redis-store.ts';
import { logAuditEvents } from '../src/observability/audit-line.ts';
import { createMetrics } from '../src/observability/metrics.ts';
import { sweepOnce } from '../src/revocation/endings.ts';
import { freePort, startRedis } from './env.ts';
import { benchLease, createMany } from './leases.ts';
import { allocationSites, formatProfile, summarizeProfile, type AllocationNode } from './profile.ts';
import { envInt, sleep, waitUntil } from './util.ts';

const leases = envInt('SWEEP_COST_LEASES', 50_000);
const subjects = envInt('SWEEP_COST_SUBJECTS', 1_000);
const callgrind = process.argv.includes('--callgrind');
/** A file to write the worker's CPU profile of the sweep to (`--profile FILE`). */
const profileFile = process.argv.includes('--profile') ? process.argv[process.argv.indexOf('--profile') + 1] : undefined;
if (process.argv.includes('--profile') && (profileFile === undefined || profileFile.startsWith('--'))) throw new Error('--profile needs a file to write the profile to');
const allocations = process.argv.includes('--alloc');

/** A redis-server under callgrind, instrumenting nothing until told to. */
async function startUnderCallgrind(): Promise<{ url: string; pid: number; dir: string; stop(): Promise<void> }> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'leash-callgrind-'));
  const child = spawn('valgrind', ['--tool=callgrind', '--instr-atstart=no', `--callgrind-out-file=${join(dir, 'callgrind.out')}`,
    'redis-server', '--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  const url = `redis://127.0.0.1:${port}`;
  const probe = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  probe.on('error', () => undefined); // refused until valgrind has started it
  const up = await waitUntil(async () => (await probe.connect().then(() => probe.ping(), () => null)) === 'PONG', 30_000, 200);
  probe.disconnect();
  if (!up) throw new Error('redis-server under valgrind did not start (is valgrind installed?)');
  return {
    url,
    pid: child.pid!,
    dir,
    async stop() {
      child.kill('SIGTERM');
      await new Promise((resolve) => child.once('exit', resolve));
    },
  };
}

/** Instructions callgrind counted, over every dump in `dir`. */
function instructions(dir: string): number {
  let total = 0;
  for (const f of readdirSync(dir).filter((n) => n.startsWith('callgrind.out'))) {
    const m = /^totals:\s+(\d+)/m.exec(readFileSync(join(dir, f), 'utf8'));
    if (m) total += Number(m[1]);
  }
  return total;
}

const server = callgrind ? await startUnderCallgrind() : await startRedis();
const redis = new Redis(server.url);
const log = pino({ level: 'info' }, pino.destination({ dest: '/dev/null', sync: true }));
const store = createRedisLeaseStore({ redis, onAuditEvents: (events) => logAuditEvents(log, events) });
const now = Math.floor(Date.now() / 1000);
const expiresAt = now + Math.ceil(leases / 2_000) + 5;
await createMany(store, leases, (i) => benchLease({ subject: `repo:octo-org/app-${i % subjects}:ref:refs/heads/main`, issuedAt: now, expiresAt }));
// With --expose-gc (`node --expose-gc --import tsx bench/sweep-cost.ts`), the heap the read-ahead holds.
const gc = (globalThis as { gc?: () => void }).gc;
const heapNow = (): number => {
  gc?.();
  gc?.();
  return process.memoryUsage().heapUsed;
};
const heapBefore = heapNow();
let held = 0;
for (let got = -1; got !== 0; held += got) got = await store.readAhead!(Date.now());
if (gc) {
  const bytes = heapNow() - heapBefore;
  process.stdout.write(`read ahead: ${held} expiries hold ${(bytes / 1e6).toFixed(1)} MB of heap, ${Math.round(bytes / held)} bytes each\n`);
}
await sleep(expiresAt * 1000 - Date.now() + 5);

const redisCpuUs = async (): Promise<number> => {
  const info = await redis.info('cpu');
  const field = (k: string): number => Number(new RegExp(`${k}:([\\d.]+)`).exec(info)?.[1] ?? NaN);
  return (field('used_cpu_user') + field('used_cpu_sys')) * 1e6;
};
const instrument = (on: boolean): void => {
  if (callgrind && 'pid' in server) execFileSync('callgrind_control', ['-i', on ? 'on' : 'off', String(server.pid)], { stdio: 'ignore' });
};
const deps = { store, metrics: createMetrics(), log: pino({ level: 'silent' }), now: () => Date.now() };
const redisBefore = await redisCpuUs();
const session = profileFile === undefined ? undefined : new Session();
if (session) {
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 100 });
  await session.post('Profiler.start');
}
const heapSession = allocations ? new Session() : undefined;
if (heapSession) {
  heapSession.connect();
  await heapSession.post('HeapProfiler.enable');
  // Objects a scavenge collects count too: they are most of what the sweep allocates.
  await heapSession.post('HeapProfiler.startSampling', { samplingInterval: 4096, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
}
instrument(true);
const cpu0 = process.cpuUsage();
const t0 = performance.now();
let ended = 0;
while (ended < held) ended += await sweepOnce(deps);
const wallMs = performance.now() - t0;
const cpu = process.cpuUsage(cpu0);
instrument(false);
if (heapSession) {
  const { profile } = await heapSession.post('HeapProfiler.stopSampling');
  heapSession.disconnect();
  const { total, sites } = allocationSites(profile.head as unknown as AllocationNode, 25);
  const perEnding = (bytes: number): string => (bytes / ended).toFixed(0).padStart(6);
  process.stderr.write(`allocated over the sweep: ${(total / 1e6).toFixed(0)} MB, ${perEnding(total).trim()} bytes an ending; by site (bytes an ending):\n`);
  for (const { site, bytes } of sites) process.stderr.write(`${perEnding(bytes)}  ${site}\n`);
}
if (session && profileFile !== undefined) {
  const { profile } = await session.post('Profiler.stop');
  session.disconnect();
  writeFileSync(profileFile, JSON.stringify(profile));
  process.stderr.write(`${formatProfile(summarizeProfile(profileFile, 40))}\n`);
}
const redisUs = (await redisCpuUs()) - redisBefore;
const perEnding = (us: number): string => (us / ended).toFixed(1);
let line = `${ended} endings (${leases} leases of ${subjects} subjects, ${held} read ahead) in ${wallMs.toFixed(0)} ms; CPU an ending: worker ${perEnding(cpu.user + cpu.system)} µs, Redis ${perEnding(redisUs)} µs`;
redis.disconnect();
if ('pid' in server) {
  execFileSync('callgrind_control', ['-d', String(server.pid)], { stdio: 'ignore' });
  await server.stop();
  line += `; Redis instructions an ending: ${Math.round(instructions(server.dir) / ended).toLocaleString('en-US')}`;
  if (!process.env.SWEEP_COST_KEEP) rmSync(server.dir, { recursive: true, force: true });
} else {
  await server.destroy();
}
process.stdout.write(`${line}\n`);
process.exit(0);
