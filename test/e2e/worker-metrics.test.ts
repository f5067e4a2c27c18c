import { spawn } from 'node:child_process';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startRedis, freePort, type TestRedis } from '../helpers/redis-server.ts';
import { testKeysDir } from '../helpers/broker.ts';

let redis: TestRedis;
beforeAll(async () => { redis = await startRedis(); });
afterAll(async () => redis?.destroy());

it('a LEASH_ROLE=worker process serves /metrics and health on LEASH_METRICS_PORT, and nothing else', async () => {
  const metricsPort = await freePort();
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    env: { ...process.env, LEASH_ROLE: 'worker', REDIS_URL: redis.url, LEASH_KEYS_DIR: await testKeysDir(), LEASH_METRICS_PORT: String(metricsPort), LEASH_LOG_LEVEL: 'warn' },
    stdio: 'ignore',
  });
  try {
    const base = `http://127.0.0.1:${metricsPort}`;
    const deadline = Date.now() + 20_000;
    let ready: Response | undefined;
    while (Date.now() < deadline) {
      ready = await fetch(`${base}/readyz`).catch(() => undefined);
      if (ready?.status === 200) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(ready?.status).toBe(200);
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toContain('leash_lease_endings_total');
    expect(metrics).toContain('leash_expiry_lag_seconds');
    expect(metrics).toMatch(/^leash_sweeps_total \d+/m);
    expect(metrics).toContain('process_cpu_seconds_total');
    expect((await fetch(`${base}/token`, { method: 'POST' })).status).toBe(404);
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
  }
});
