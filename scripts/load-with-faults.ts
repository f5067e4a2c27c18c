/**
 * Load with faults: a private redis-server (AOF on), two API processes and two worker processes
 * of the production entry (src/main.ts, LEASH_ROLE=api / worker) over that one Redis, a steady
 * token-exchange load with short TTLs (2-5 s) and holder revocations, and meanwhile: a worker
 * SIGKILLed (and later restarted), Redis restarted, an API process SIGKILLed and restarted.
 * Afterwards it checks, straight from Redis:
 *   - every issued credential has exactly one lease (its jti), and one exchange.allowed event;
 *     a lease without a delivered credential can only come from a request that failed;
 *   - every lease has ended, or is live with its expiry pending in the due index (never both);
 *   - every ended lease has exactly one ending audit event, of the kind matching its status;
 *   - no revoked lease was ever introspected active after POST /revoke answered 200.
 * Usage: tsx scripts/load-with-faults.ts [--seconds 12]. test/faults/load-with-faults.test.ts
 * runs a bounded version.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Redis } from 'ioredis';
import { decodeJwt, exportJWK, generateKeyPair, SignJWT } from 'jose';
import { generateSigningKey } from '../src/mint/jwt/generate-key.ts';
import { SHARD_COUNT } from '../src/redis/keys.ts';
import { shardOfLeaseId } from '../src/leases/lease-id.ts';
import { createRedisLeaseStore } from '../src/leases/redis-store.ts';
import type { Lease } from '../src/leases/lease.ts';
import { freePort, startRedis, type TestRedis } from '../test/helpers/redis-server.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const AUD = 'https://leash.load.test';
const LEASH_ISSUER = 'http://leash.load.test';
const PREFIX = 'load:';
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface LoadOptions {
  /** How long the load runs; the faults are spread over it. */
  loadMs?: number;
  concurrency?: number;
  /** Share of issued tokens revoked by their holder at once. */
  revokeRatio?: number;
  /** Longest wait after the load for every short lease to end. */
  drainMs?: number;
  log?: (line: string) => void;
}

export interface LoadReport {
  requests: number;
  issued: number;
  outcomes: Record<string, number>;
  revocations: number;
  introspectedAfterRevoke: number;
  faults: string[];
  leases: number;
  orphanLeases: number;
  endedLeases: number;
  liveLeases: number;
  drainMs: number;
  violations: string[];
}

/** A minimal OIDC issuer: one ES256 key, served as a JWKS over HTTP. */
async function startIssuer(): Promise<{ url: string; mint(sub: string, jti: string): Promise<string>; close(): Promise<void> }> {
  const { publicKey, privateKey } = await generateKeyPair('ES256');
  const jwk = { ...(await exportJWK(publicKey)), kid: 'load-1', alg: 'ES256', use: 'sig' };
  const server: Server = createServer((req, res) => {
    res.writeHead(req.url === '/jwks' ? 200 : 404, { 'content-type': 'application/json' });
    res.end(JSON.stringify(req.url === '/jwks' ? { keys: [jwk] } : { error: 'not_found' }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    mint: (sub, jti) =>
      new SignJWT({ sub, jti }).setProtectedHeader({ alg: 'ES256', kid: 'load-1' }).setIssuer(url).setAudience(AUD).setIssuedAt().setExpirationTime('5m').sign(privateKey),
    close: () => new Promise((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
}

interface Proc { name: string; child: ChildProcess; tail: string[]; started: Promise<void> }

// If this process goes away first (a killed test run), take the children with it.
const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of live) if (c.exitCode === null) c.kill('SIGKILL');
});

function spawnLeash(name: string, env: Record<string, string>): Proc {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(LEASH_|REDIS_|PORT$|HOST$|NODE_OPTIONS$|VITEST)/.test(k)));
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], { cwd: ROOT, env: { ...clean, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(child);
  child.once('exit', () => live.delete(child));
  const tail: string[] = [];
  let onStarted: () => void = () => undefined;
  const started = new Promise<void>((r) => (onStarted = r));
  const take = (chunk: Buffer): void => {
    for (const line of chunk.toString().split('\n').filter(Boolean)) {
      tail.push(line);
      if (tail.length > 40) tail.shift();
      if (line.includes('revocation worker started') || line.includes('leash listening')) onStarted();
    }
  };
  child.stdout!.on('data', take);
  child.stderr!.on('data', take);
  return { name, child, tail, started };
}

async function waitStarted(p: Proc, url: string | null, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  const exited = new Promise<never>((_, reject) => p.child.once('exit', (code) => reject(new Error(`${p.name} exited (${code}): ${p.tail.join('\n')}`))));
  await Promise.race([p.started, exited, sleep(ms).then(() => { throw new Error(`${p.name} did not start: ${p.tail.join('\n')}`); })]);
  while (url) {
    const ok = await fetch(`${url}/readyz`).then((r) => r.status === 200, () => false);
    if (ok) break;
    if (Date.now() > deadline) throw new Error(`${p.name} never became ready`);
    await sleep(100);
  }
}

async function stop(p: Proc, signal: NodeJS.Signals): Promise<void> {
  if (p.child.exitCode !== null || p.child.signalCode !== null) return;
  const exited = new Promise<void>((r) => p.child.once('exit', () => r()));
  p.child.kill(signal);
  await Promise.race([exited, sleep(5_000).then(() => p.child.kill('SIGKILL'))]);
  await exited;
}

export async function runLoadWithFaults(opts: LoadOptions = {}): Promise<LoadReport> {
  const loadMs = opts.loadMs ?? 12_000;
  const concurrency = opts.concurrency ?? 4;
  const revokeRatio = opts.revokeRatio ?? 0.25;
  const log = opts.log ?? ((l: string) => console.log(l));
  const dir = mkdtempSync(join(tmpdir(), 'leash-load-faults-'));
  const procs = new Map<string, Proc>();
  let redis: TestRedis | undefined;
  let issuer: Awaited<ReturnType<typeof startIssuer>> | undefined;
  let r: Redis | undefined;
  try {
    redis = await startRedis({ persist: true });
    issuer = await startIssuer();
    await generateSigningKey(join(dir, 'keys'));
    writeFileSync(join(dir, 'policy.yaml'), `
issuers:
  - { name: load, issuer: "${issuer.url}", audiences: ["${AUD}"], jwks_uri: "${issuer.url}/jwks", max_proof_age: 10m }
rules:
  - name: introspector
    issuer: load
    match: { sub: introspector }
    grant: { scopes: [leash:introspect, leash:leases:read], audiences: ["\${LEASH_ISSUER}"], ttl: 10m, max_ttl: 1h }
  - name: work
    issuer: load
    match: { sub: "load:*" }
    grant: { scopes: [work:do], audiences: [https://svc.load.test], ttl: 3s, max_ttl: 5s }
`);
    const base = {
      HOST: '127.0.0.1', REDIS_URL: redis.url, REDIS_PREFIX: PREFIX, LEASH_ISSUER, LEASH_POLICY: join(dir, 'policy.yaml'),
      LEASH_KEYS_DIR: join(dir, 'keys'), LEASH_SWEEP_INTERVAL_MS: '200',
    };
    const apiPorts = [await freePort(), await freePort()];
    const apiUrls = apiPorts.map((p) => `http://127.0.0.1:${p}`);
    const startApi = (i: number): Proc => spawnLeash(`api${i + 1}`, { ...base, PORT: String(apiPorts[i]), LEASH_ROLE: 'api', LEASH_LOG_LEVEL: 'info' });
    const startWorker = async (i: number): Promise<Proc> => spawnLeash(`worker${i + 1}`, { ...base, PORT: String(await freePort()), LEASH_ROLE: 'worker', LEASH_LOG_LEVEL: 'info' });
    for (const p of [startApi(0), startApi(1), await startWorker(0), await startWorker(1)]) procs.set(p.name, p);
    await Promise.all([...procs.values()].map((p) => waitStarted(p, p.name.startsWith('api') ? apiUrls[Number(p.name.slice(3)) - 1]! : null)));
    log(`started ${[...procs.keys()].join(', ')} over ${redis.url}`);

    const form = { 'content-type': 'application/x-www-form-urlencoded' };
    const post = (url: string, body: string, headers: Record<string, string> = form) =>
      fetch(url, { method: 'POST', body, headers, signal: AbortSignal.timeout(5_000) });
    const exchange = (api: string, proof: string, ttl: number) =>
      post(`${api}/token`, new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange', subject_token: proof, subject_token_type: 'urn:ietf:params:oauth:token-type:jwt', ttl: String(ttl) }).toString());

    const intro = await exchange(apiUrls[1]!, await issuer.mint('introspector', 'introspector-1'), 3600);
    if (intro.status !== 200) throw new Error(`introspector token: ${intro.status} ${await intro.text()}`);
    const introspector = (await intro.json()) as { access_token: string; lease_id: string };

    const issued = new Map<string, { token: string; exp: number }>();
    const outcomes: Record<string, number> = {};
    const afterRevoke: { lease: string; active: boolean | 'unknown' }[] = [];
    const violations: string[] = [];
    const faults: string[] = [];
    let requests = 0;
    let failedRequests = 0;
    let running = true;
    let seq = 0;
    const count = (k: string) => (outcomes[k] = (outcomes[k] ?? 0) + 1);

    async function loop(n: number): Promise<void> {
      while (running) {
        const i = seq++;
        const api = apiUrls[i % 2]!;
        const ttl = 2 + (i % 4);
        requests++;
        try {
          const res = await exchange(api, await issuer!.mint(`load:${n}:${i % 7}`, `j-${i}`), ttl);
          count(String(res.status));
          if (res.status !== 200) {
            if (res.status >= 500) failedRequests++;
            await res.body?.cancel();
          } else {
            const body = (await res.json()) as { access_token: string; lease_id: string };
            if (issued.has(body.lease_id)) violations.push(`lease ${body.lease_id} backs two credentials`);
            const claims = decodeJwt(body.access_token);
            if (claims.jti !== body.lease_id) violations.push(`token jti ${claims.jti} is not its lease ${body.lease_id}`);
            issued.set(body.lease_id, { token: body.access_token, exp: claims.exp! });
            if (Math.random() < revokeRatio) {
              const rev = await post(`${apiUrls[(i + 1) % 2]}/revoke`, `token=${body.access_token}`).catch(() => null);
              count(`revoke:${rev?.status ?? 'network'}`);
              if (rev?.status === 200) {
                const check = await post(`${api}/introspect`, `token=${body.access_token}`, { ...form, authorization: `Bearer ${introspector.access_token}` }).catch(() => null);
                const active = check?.status === 200 ? ((await check.json()) as { active: boolean }).active : 'unknown';
                afterRevoke.push({ lease: body.lease_id, active });
                if (active === true) violations.push(`lease ${body.lease_id} introspected active after its revocation answered 200`);
              }
            }
          }
        } catch {
          count('network');
          failedRequests++;
        }
        await sleep(20);
      }
    }

    const fault = async (at: number, what: string, act: () => Promise<void>, t0: number): Promise<void> => {
      await sleep(Math.max(0, t0 + at - Date.now()));
      const started = Date.now();
      await act();
      faults.push(`${what} at ${Math.round((started - t0) / 100) / 10}s (${Date.now() - started} ms)`);
      log(`fault: ${faults[faults.length - 1]}`);
    };
    const t0 = Date.now();
    const loops = Array.from({ length: concurrency }, (_, n) => loop(n));
    const schedule = (async () => {
      await fault(loadMs * 0.2, 'SIGKILL worker1', () => stop(procs.get('worker1')!, 'SIGKILL'), t0);
      await fault(loadMs * 0.35, 'restart Redis', async () => { await redis!.stop(); await sleep(500); await redis!.start(); }, t0);
      await fault(loadMs * 0.6, 'SIGKILL and restart api1', async () => {
        await stop(procs.get('api1')!, 'SIGKILL');
        const p = startApi(0);
        procs.set('api1', p);
        await waitStarted(p, apiUrls[0]!);
      }, t0);
      await fault(loadMs * 0.75, 'restart worker1', async () => {
        const p = await startWorker(0);
        procs.set('worker1', p);
        await waitStarted(p, null);
      }, t0);
    })();
    await sleep(loadMs);
    await schedule;
    running = false;
    await Promise.all(loops);
    log(`load done: ${requests} requests, ${issued.size} issued, ${JSON.stringify(outcomes)}`);

    // Drain: every short lease must end on its own (expiry, or revocation effects) via the workers.
    r = new Redis(redis.url);
    const store = createRedisLeaseStore({ redis: r, prefix: PREFIX });
    const allIds = async (): Promise<string[]> => {
      const ids: string[] = [];
      for (let s = 0; s < SHARD_COUNT; s++) ids.push(...(await r!.zrange(`${PREFIX}{s${s}}:all`, '0', '-1')));
      return ids;
    };
    const drainStart = Date.now();
    let leases: Lease[] = [];
    for (;;) {
      leases = (await Promise.all((await allIds()).map((id) => store.get(id)))).filter((l): l is Lease => l !== null);
      const pending = leases.filter((l) => l.id !== introspector.lease_id && l.ended_at === null);
      if (pending.length === 0 || Date.now() - drainStart > (opts.drainMs ?? 25_000)) break;
      await sleep(250);
    }
    const drainMs = Date.now() - drainStart;
    log(`drained in ${drainMs} ms`);

    // Invariants.
    const byId = new Map(leases.map((l) => [l.id, l]));
    for (const [id, cred] of issued) {
      const lease = byId.get(id);
      if (!lease) violations.push(`credential ${id} has no lease`);
      else if (lease.expires_at !== cred.exp) violations.push(`lease ${id} expires at ${lease.expires_at}, its token at ${cred.exp}`);
    }
    const orphans = leases.filter((l) => l.id !== introspector.lease_id && !issued.has(l.id));
    if (orphans.length > failedRequests) violations.push(`${orphans.length} leases without a credential, but only ${failedRequests} requests failed`);

    const endings = new Map<string, string[]>();
    const allowed = new Map<string, number>();
    for (let s = 0; s < SHARD_COUNT; s++) {
      for (const [, fields] of await r.xrange(`${PREFIX}{s${s}}:audit`, '-', '+')) {
        const e = JSON.parse(fields[fields.indexOf('e') + 1]!) as { type: string; lease_id?: string };
        if (!e.lease_id) continue;
        if (e.type === 'lease.expired' || e.type === 'lease.revoked') endings.set(e.lease_id, [...(endings.get(e.lease_id) ?? []), e.type]);
        if (e.type === 'exchange.allowed') allowed.set(e.lease_id, (allowed.get(e.lease_id) ?? 0) + 1);
      }
    }
    for (const id of issued.keys()) if (allowed.get(id) !== 1) violations.push(`credential ${id} has ${allowed.get(id) ?? 0} exchange.allowed events`);

    let ended = 0;
    let live = 0;
    const nowMs = Date.now();
    for (const l of leases) {
      const due = (await r.zscore(`${PREFIX}{s${shardOfLeaseId(l.id)}}:due`, l.id)) !== null;
      const evs = endings.get(l.id) ?? [];
      if (l.ended_at !== null) {
        ended++;
        if (l.status === 'active') violations.push(`lease ${l.id} ended but is still active`);
        if (due) violations.push(`lease ${l.id} ended but is still in the due index`);
        const want = l.status === 'expired' ? 'lease.expired' : 'lease.revoked';
        if (evs.length !== 1 || evs[0] !== want) violations.push(`lease ${l.id} (${l.status}) has ending events [${evs.join(', ')}], want exactly [${want}]`);
      } else {
        live++;
        if (!due) violations.push(`lease ${l.id} (${l.status}) has not ended and is not in the due index`);
        if (evs.length !== 0) violations.push(`lease ${l.id} has not ended but has ending events [${evs.join(', ')}]`);
        if (l.id !== introspector.lease_id && l.expires_at * 1000 < nowMs - 5_000) violations.push(`lease ${l.id} expired at ${l.expires_at} and never ended`);
      }
    }
    const report: LoadReport = {
      requests, issued: issued.size, outcomes, revocations: afterRevoke.length,
      introspectedAfterRevoke: afterRevoke.filter((a) => a.active !== 'unknown').length,
      faults, leases: leases.length, orphanLeases: orphans.length, endedLeases: ended, liveLeases: live, drainMs,
      violations: violations.slice(0, 50),
    };
    if (violations.length > 0) for (const p of procs.values()) log(`--- ${p.name} (last lines)\n${p.tail.join('\n')}`);
    return report;
  } finally {
    r?.disconnect();
    await Promise.all([...procs.values()].map((p) => stop(p, 'SIGTERM')));
    await issuer?.close();
    await redis?.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const i = process.argv.indexOf('--seconds');
  const seconds = i > 0 ? Number(process.argv[i + 1]) : 12;
  const report = await runLoadWithFaults({ loadMs: seconds * 1000 });
  console.log(JSON.stringify(report, null, 2));
  process.exitCode = report.violations.length === 0 ? 0 : 1;
}
