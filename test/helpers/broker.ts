import 'reflect-metadata';
import { serve, type ServerType } from '@hono/node-server';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { loadConfig, type Config } from '../../src/config.ts';
import { createDeps } from '../../src/create-deps.ts';
import { connectRedis } from '../../src/redis/connect.ts';
import { createApp } from '../../src/app.ts';
import type { Deps } from '../../src/deps.ts';
import { generateSigningKey } from '../../src/mint/jwt/generate-key.ts';
import { generateDevCa } from '../../src/mint/x509/generate-ca.ts';
import { startRevocationWorker } from '../../src/revocation/bullmq-queue.ts';
import { httpServerOptions } from '../../src/http/server-options.ts';
import { freePort } from './redis-server.ts';

export interface TestBroker {
  url: string;
  deps: Deps;
  config: Config;
  keysDir: string;
  policyPath: string;
  /** Stops HTTP, worker and connections; removes the temp dir unless keepDir. */
  close(): Promise<void>;
}

export interface BrokerOptions {
  policy: string;
  redisUrl?: string;
  /** Extra environment (LEASH_*) for loadConfig. */
  env?: Record<string, string>;
  /** Reuse a keys dir (e.g. to run two replicas with the same keys). */
  keysDir?: string;
  worker?: boolean;
  now?: () => number;
  /** Capture log lines (JSON strings) instead of discarding them. */
  logLines?: string[];
}

let sharedKeysDir: string | undefined;

/**
 * The signing key and dev CA the test run shares (made once by test/global-setup.ts); a private
 * one when a file runs outside that setup.
 */
export async function testKeysDir(): Promise<string> {
  sharedKeysDir ??= process.env.LEASH_TEST_KEYS_DIR;
  if (!sharedKeysDir) {
    const dir = mkdtempSync(join(tmpdir(), 'leash-keys-'));
    await generateSigningKey(dir);
    await generateDevCa(dir);
    sharedKeysDir = dir;
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  }
  return sharedKeysDir;
}

/** Starts the real app over real HTTP on a free loopback port, with its own policy file. */
export async function startBroker(opts: BrokerOptions): Promise<TestBroker> {
  const dir = mkdtempSync(join(tmpdir(), 'leash-broker-'));
  const policyPath = join(dir, 'policy.yaml');
  writeFileSync(policyPath, opts.policy);
  const keysDir = opts.keysDir ?? (await testKeysDir());
  const port = await freePort();
  const config = loadConfig({
    PORT: String(port),
    HOST: '127.0.0.1',
    LEASH_POLICY: policyPath,
    LEASH_KEYS_DIR: keysDir,
    LEASH_SWEEP_INTERVAL_MS: '100',
    REDIS_PREFIX: `t${Math.random().toString(36).slice(2, 8)}:`,
    ...(opts.redisUrl ? { REDIS_URL: opts.redisUrl } : {}),
    ...opts.env,
  });
  const lines = opts.logLines;
  // One write may hold several lines (a script's audit lines go out together): kept a line each.
  const log = pino({ level: 'info' }, { write: (s: string) => { if (lines) for (const line of s.split(/(?<=\n)/)) lines.push(line); } });
  const deps = await createDeps(config, { log, ...(opts.now ? { now: opts.now } : {}) });
  const app = createApp(deps);
  const server: ServerType = await new Promise((resolve) => {
    const s = serve({ fetch: app.fetch, port, hostname: '127.0.0.1', serverOptions: httpServerOptions(config) }, () => resolve(s));
  });
  let worker: { close(): Promise<void> } | undefined;
  if (opts.redisUrl && opts.worker !== false && config.role !== 'api') {
    worker = await startRevocationWorker(connectRedis(opts.redisUrl, { forBullmq: true }), config.redisPrefix, deps, { sweepIntervalMs: config.sweepIntervalMs });
  }
  return {
    url: `http://127.0.0.1:${port}`,
    deps,
    config,
    keysDir,
    policyPath,
    async close() {
      await new Promise((r) => server.close(() => r(undefined)));
      await worker?.close();
      await deps.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export const GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
export const ID_TOKEN = 'urn:ietf:params:oauth:token-type:id_token';
export const JWT_TYPE = 'urn:ietf:params:oauth:token-type:jwt';
export const X509_TYPE = 'urn:leash:params:oauth:token-type:x509-certificate';

/** POST /token with form fields; arrays become repeated parameters. */
export async function postToken(url: string, fields: Record<string, string | string[] | undefined>): Promise<{ status: number; body: any; headers: Headers }> {
  const form = new URLSearchParams();
  for (const [k, v] of Object.entries(fields)) {
    if (v === undefined) continue;
    for (const one of Array.isArray(v) ? v : [v]) form.append(k, one);
  }
  const res = await fetch(`${url}/token`, { method: 'POST', body: form, headers: { 'content-type': 'application/x-www-form-urlencoded' } });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null, headers: res.headers };
}

export async function exchangeProof(url: string, proof: string, extra: Record<string, string | string[] | undefined> = {}) {
  return postToken(url, { grant_type: GRANT, subject_token: proof, subject_token_type: ID_TOKEN, ...extra });
}
