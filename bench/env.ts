/**
 * What every Leash section needs: a keys dir (signing key and dev CA, made once per run), a policy
 * trusting the bench's proof issuer, a private redis-server, and broker child processes.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateSigningKey } from '../src/mint/jwt/generate-key.ts';
import { generateDevCa } from '../src/mint/x509/generate-ca.ts';
import { freePort, startRedis, type TestRedis } from '../test/helpers/redis-server.ts';
import { startChild, type ChildServer } from './child.ts';
import { BENCH_AUDIENCE } from './proof-issuer.ts';

export const GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
export const ID_TOKEN = 'urn:ietf:params:oauth:token-type:id_token';
export const X509_TYPE = 'urn:leash:params:oauth:token-type:x509-certificate';
export const BENCH_RULE = 'gh-deploy';
export const REDIS_PREFIX = 'leash:';

let workDir: string | undefined;
let keysDir: string | undefined;

/** A temp dir for this run (policy files, keys); removed by cleanupEnv(). */
export function benchDir(): string {
  workDir ??= mkdtempSync(join(tmpdir(), 'leash-bench-'));
  return workDir;
}

export async function benchKeysDir(): Promise<string> {
  if (!keysDir) {
    keysDir = join(benchDir(), 'keys');
    await generateSigningKey(keysDir);
    await generateDevCa(keysDir);
  }
  return keysDir;
}

export function cleanupEnv(): void {
  if (workDir) rmSync(workDir, { recursive: true, force: true });
  workDir = undefined;
  keysDir = undefined;
}

/**
 * One GitHub issuer (the bench proof issuer, discovered over HTTP), an operator rule, and the
 * deploy rule every load section exercises: repository glob, ref, templated claim, JWT and x509,
 * a per-subject active lease limit (so the limit check is on the measured path).
 */
export function benchPolicy(issuerUrl: string, opts: { maxActive?: number } = {}): string {
  const path = join(benchDir(), `policy-${Math.random().toString(36).slice(2, 8)}.yaml`);
  writeFileSync(
    path,
    `
issuers:
  - name: github
    issuer: "${issuerUrl}"
    audiences: ["${BENCH_AUDIENCE}"]
    max_proof_age: 10m
    replay: single_use
rules:
  - name: operators
    issuer: github
    match: { sub: "repo:octo-org/ops:*" }
    grant:
      scopes: [leash:admin, leash:introspect]
      audiences: ["\${LEASH_ISSUER}"]
      ttl: 10m
      max_ttl: 1h
  - name: ${BENCH_RULE}
    issuer: github
    match:
      repository: "octo-org/*"
      ref: refs/heads/main
      event_name: [push, workflow_dispatch]
    grant:
      scopes: [deploy:write, artifacts:read]
      audiences: [https://deploy.acme.internal]
      ttl: 10m
      max_ttl: 1h
      credentials: [jwt, x509]
      claims: { repo: "{{ claims.repository }}", workflow: "{{ claims.workflow }}" }
      x509:
        uri_sans: ["spiffe://acme.internal/gh/{{ claims.repository }}"]
        key_types: [ec-p256, ed25519]
    limits: { max_active_leases: ${opts.maxActive ?? 1000} }
`,
  );
  return path;
}

export { startRedis, freePort, type TestRedis };

export interface BrokerSpec {
  name: string;
  redisUrl: string;
  policyPath: string;
  /** Shared LEASH_ISSUER when several replicas serve one deployment. */
  issuer?: string;
  role?: 'all' | 'api' | 'worker';
  env?: Record<string, string>;
}

/**
 * The node flags the README has a dedicated worker (LEASH_ROLE=worker) run with, as the compose
 * files run it: one V8 helper thread, so that its GC and compiler do not take helper threads on
 * every core (in a storm of expiries that took CPU from Redis and the API beside it) while its
 * sweeping still runs off the worker's thread; and V8's memory reducer, which collects a heap gone
 * quiet, does not leave its limit so tight that a burst of expiries read ahead starts with, or runs
 * into, a full collection of the ~190 MB it holds.
 */
export const WORKER_NODE_FLAGS = ['--v8-pool-size=1', '--no-memory-reducer'];

/** A broker child process on a free loopback port. */
export async function startBroker(spec: BrokerSpec): Promise<ChildServer & { issuer: string }> {
  const port = await freePort();
  const issuer = spec.issuer ?? `http://127.0.0.1:${port}`;
  const child = await startChild({
    entry: 'broker-process.ts',
    name: spec.name,
    nodeFlags: spec.role === 'worker' ? WORKER_NODE_FLAGS : [],
    env: {
      PORT: String(port),
      HOST: '127.0.0.1',
      REDIS_URL: spec.redisUrl,
      REDIS_PREFIX: REDIS_PREFIX,
      LEASH_ISSUER: issuer,
      LEASH_POLICY: spec.policyPath,
      LEASH_KEYS_DIR: await benchKeysDir(),
      LEASH_ROLE: spec.role ?? 'all',
      LEASH_LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'info',
      ...spec.env,
    },
  });
  return { ...child, issuer };
}

/** Form body of a token exchange. JWTs and base64url need no escaping; the rest is fixed text. */
export function exchangeBody(proof: string, extra = ''): string {
  return `grant_type=${encodeURIComponent(GRANT)}&subject_token_type=${encodeURIComponent(ID_TOKEN)}&subject_token=${proof}${extra}`;
}

/** One exchange over HTTP (fetch), for setup and checks, not for load. */
export async function exchangeOnce(url: string, proof: string, extra = ''): Promise<{ status: number; body: any }> {
  const res = await fetch(`${url}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: exchangeBody(proof, extra),
  });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // keep the text
  }
  return { status: res.status, body };
}

/**
 * The first exchange warms the JWKS cache (discovery + JWKS fetch). While another engineer's
 * lease store is still being finished it may answer 503; retry for a bounded time.
 */
export async function firstExchange(url: string, proof: () => string, extra = '', timeoutMs = 240_000): Promise<any> {
  const deadline = Date.now() + timeoutMs;
  let last: { status: number; body: any } | undefined;
  for (let attempt = 0; Date.now() < deadline; attempt++) {
    last = await exchangeOnce(url, proof(), extra);
    if (last.status === 200) return last.body;
    if (last.status !== 503) break;
    if (attempt === 0) process.stderr.write(`[bench] exchange answered 503 (${JSON.stringify(last.body).slice(0, 200)}); retrying for up to ${timeoutMs / 1000} s\n`);
    await new Promise((r) => setTimeout(r, 5_000));
  }
  throw new Error(`warm-up exchange failed: ${last?.status} ${JSON.stringify(last?.body).slice(0, 500)}`);
}
