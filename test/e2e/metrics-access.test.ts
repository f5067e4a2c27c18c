/**
 * Who may read /metrics: the metrics name the policy's rules and issuers
 * with per-rule counts. On the API port they need a token with leash:metrics or leash:admin unless
 * LEASH_METRICS_PUBLIC=true (the default in dev mode); the LEASH_METRICS_PORT listener serves them
 * without one, bound to LEASH_METRICS_HOST. The token checks themselves are in
 * test/security/operator-api.test.ts.
 */
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedis, freePort, type TestRedis } from '../helpers/redis-server.ts';
import { startBroker, testKeysDir } from '../helpers/broker.ts';
import { e2ePolicy, type IssuerSet } from '../helpers/policies.ts';
import { startFakeIssuer } from '../helpers/fake-issuer.ts';

let redis: TestRedis;
let issuers: IssuerSet;
beforeAll(async () => {
  redis = await startRedis();
  issuers = { github: await startFakeIssuer(), gitlab: await startFakeIssuer(), k8s: await startFakeIssuer(), spiffe: await startFakeIssuer() };
});
afterAll(async () => {
  for (const i of Object.values(issuers ?? {})) await i.close();
  await redis?.destroy();
});

async function waitReady(base: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    if ((await fetch(`${base}/readyz`).catch(() => undefined))?.status === 200) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${base} never became ready`);
}

describe('the real process with Redis', () => {
  it('API port: 401 without a token; metrics port: open, on LEASH_METRICS_HOST only', async () => {
    const [port, metricsPort] = [await freePort(), await freePort()];
    // 127.0.0.2 is loopback too on Linux: a listener bound there is not reachable at 127.0.0.1.
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
      env: {
        ...process.env, REDIS_URL: redis.url, PORT: String(port), LEASH_KEYS_DIR: await testKeysDir(), LEASH_LOG_LEVEL: 'warn',
        LEASH_METRICS_PORT: String(metricsPort), LEASH_METRICS_HOST: '127.0.0.2',
      },
      stdio: 'ignore',
    });
    try {
      const api = `http://127.0.0.1:${port}`;
      const ops = `http://127.0.0.2:${metricsPort}`;
      await waitReady(api);
      await waitReady(ops);

      const refused = await fetch(`${api}/metrics`);
      expect(refused.status).toBe(401);
      expect(refused.headers.get('www-authenticate')).toBe('Bearer realm="leash"');
      expect((await refused.json()).error).toBe('invalid_token');

      const scraped = await fetch(`${ops}/metrics`);
      expect(scraped.status).toBe(200);
      expect(await scraped.text()).toContain('leash_exchanges_total');
      // Every answer names its request, on this port as on the API's.
      expect(scraped.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
      const missing = await fetch(`${ops}/token`, { method: 'POST' });
      expect(missing.status).toBe(404);
      expect(missing.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
      const elsewhere = await fetch(`http://127.0.0.1:${metricsPort}/metrics`).then((r) => r.status, (e: Error) => (e.cause as { code?: string } | undefined)?.code);
      expect(elsewhere).toBe('ECONNREFUSED');
    } finally {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }
  });
});

describe('LEASH_METRICS_PUBLIC', () => {
  it('true: the API port serves /metrics without a token', async () => {
    const broker = await startBroker({ policy: e2ePolicy(issuers), redisUrl: redis.url, env: { LEASH_METRICS_PUBLIC: 'true' } });
    try {
      const r = await fetch(`${broker.url}/metrics`);
      expect(r.status).toBe(200);
      expect(await r.text()).toContain('leash_exchanges_total');
    } finally {
      await broker.close();
    }
  });

  it('dev mode (no Redis) serves it without a token by default, and LEASH_METRICS_PUBLIC=false shuts it', async () => {
    for (const [env, status] of [[{}, 200], [{ LEASH_METRICS_PUBLIC: 'false' }, 401]] as const) {
      const broker = await startBroker({ policy: e2ePolicy(issuers), env });
      try {
        expect(broker.config.dev).toBe(true);
        expect((await fetch(`${broker.url}/metrics`)).status).toBe(status);
      } finally {
        await broker.close();
      }
    }
  });
});
