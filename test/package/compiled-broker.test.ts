import { spawn, type ChildProcess } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { getPriority, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startRedis, freePort, type TestRedis } from '../helpers/redis-server.ts';
import { startFakeIssuer, type FakeIssuer } from '../helpers/fake-issuer.ts';
import { testKeysDir } from '../helpers/broker.ts';
import { ROOT } from '../helpers/build.ts';
import { e2ePolicy } from '../helpers/policies.ts';
import { generateSigningKey } from '../../src/mint/jwt/generate-key.ts';
import { waitFor } from '../helpers/wait.ts';
import { WALK_CONNECTION_NAME } from '../../src/revocation/walk-process-wire.ts';
import { createRedisLeaseStore } from '../../src/leases/redis-store.ts';
import { makeLease, nowSeconds } from '../contract/lease-fixtures.ts';

/** The nice value of each thread of a process (field 19 of /proc/<pid>/task/<tid>/stat). */
function threadNices(pid: number): number[] {
  return readdirSync(`/proc/${pid}/task`).map((tid) => {
    const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]);
  });
}

// The production start command, exactly: `node dist/main.js`. The pid an operator signals is the
// broker's own, so SIGHUP reloads it (through npm or tsx it would kill a wrapper instead).
let redis: TestRedis;
let issuers: FakeIssuer[];
let child: ChildProcess;
let url: string;
let dir: string;
let stderr = '';

beforeAll(async () => {
  redis = await startRedis();
  issuers = [await startFakeIssuer(), await startFakeIssuer(), await startFakeIssuer(), await startFakeIssuer()];
  dir = mkdtempSync(join(tmpdir(), 'leash-compiled-'));
  cpSync(await testKeysDir(), join(dir, 'keys'), { recursive: true });
  const [github, gitlab, k8s, spiffe] = issuers as [FakeIssuer, FakeIssuer, FakeIssuer, FakeIssuer];
  writeFileSync(join(dir, 'policy.yaml'), e2ePolicy({ github, gitlab, k8s, spiffe }));
  const port = await freePort();
  url = `http://127.0.0.1:${port}`;
  child = spawn(process.execPath, [join(ROOT, 'dist/main.js')], {
    cwd: dir,
    env: { PATH: process.env.PATH ?? '', PORT: String(port), REDIS_URL: redis.url, LEASH_POLICY: join(dir, 'policy.yaml'), LEASH_KEYS_DIR: join(dir, 'keys'), LEASH_LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  await waitFor('the compiled broker to be ready', async () => (await fetch(`${url}/readyz`).catch(() => null))?.status === 200, 30_000, 100)
    .catch((err: Error) => { throw new Error(`${err.message}; stderr: ${stderr}`); });
}, 60_000);

afterAll(async () => {
  if (child && child.exitCode === null) {
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
  }
  for (const i of issuers ?? []) await i.close();
  await redis?.destroy();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const jwksKids = async (): Promise<string[]> =>
  ((await (await fetch(`${url}/.well-known/jwks.json`)).json()) as { keys: { kid: string }[] }).keys.map((k) => k.kid);

it('SIGHUP to the `node dist/main.js` process loads a new signing key into the JWKS, and the broker keeps serving', async () => {
  const before = await jwksKids();
  const kid = await generateSigningKey(join(dir, 'keys'));
  expect(before).not.toContain(kid);
  child.kill('SIGHUP');
  await waitFor('the new key in the JWKS', async () => (await jwksKids()).includes(kid), 10_000, 50);
  expect(child.exitCode).toBeNull();
  expect((await fetch(`${url}/healthz`)).status).toBe(200);
});

it('forks its bulk-revocation walker from dist/, which connects to Redis under its own name', async () => {
  const observer = new Redis(redis.url);
  try {
    const walkerConnected = async (): Promise<boolean> => ((await observer.client('LIST')) as string).includes(` name=${WALK_CONNECTION_NAME} `);
    await waitFor('the walker\'s connection', walkerConnected, 10_000, 100);
  } finally {
    observer.disconnect();
  }
});

it('a dedicated worker started as the compose files start it (`node --v8-pool-size=1 --no-memory-reducer dist/main.js`) ends an expired lease, on every thread at nice 10', async () => {
  // A Redis of its own, so that only this worker can end the lease.
  const own = await startRedis();
  const client = new Redis(own.url);
  let worker: ChildProcess | undefined;
  let workerErr = '';
  try {
    const store = createRedisLeaseStore({ redis: client });
    const now = nowSeconds();
    const lease = makeLease({ issued_at: now - 60, expires_at: now + 1 });
    await store.create(lease);
    worker = spawn(process.execPath, ['--v8-pool-size=1', '--no-memory-reducer', join(ROOT, 'dist/main.js')], {
      cwd: dir,
      env: { PATH: process.env.PATH ?? '', LEASH_ROLE: 'worker', REDIS_URL: own.url, LEASH_POLICY: join(dir, 'policy.yaml'), LEASH_KEYS_DIR: join(dir, 'keys'), LEASH_LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    worker.stderr!.setEncoding('utf8').on('data', (d: string) => (workerErr += d));
    await waitFor('the worker to end the lease', async () => (await store.get(lease.id))?.status === 'expired', 20_000, 100)
      .catch((err: Error) => { throw new Error(`${err.message}; worker stderr: ${workerErr}`); });
    expect(worker.exitCode).toBeNull();
    // It runs below the API and Redis beside it (LEASH_WORKER_NICE, 10 unless set) on every thread:
    // Linux keeps a priority per thread.
    const nices = threadNices(worker.pid!);
    expect(nices.length).toBeGreaterThan(1);
    // A test run started below nice 10 already (a niced CI runner) passes its own on: left as is.
    expect(new Set(nices)).toEqual(new Set([Math.max(10, getPriority())]));
  } finally {
    if (worker && worker.exitCode === null) {
      const exited = new Promise((r) => worker!.once('exit', r));
      worker.kill('SIGTERM');
      await exited;
    }
    client.disconnect();
    await own.destroy();
  }
}, 40_000);
