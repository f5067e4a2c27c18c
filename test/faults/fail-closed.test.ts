import { createPrivateKey, generateKeyPairSync } from 'node:crypto';
/**
 * Fail-closed matrix: when Redis, an issuer's JWKS, the keys or the policy
 * are missing or broken, the answer is a clear error and no credential; when they come back,
 * issuing resumes without a restart and nothing from the outage is left half-done.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, copyFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { createDeps } from '../../src/create-deps.ts';
import { exchangeProof, startBroker, testKeysDir, type TestBroker } from '../helpers/broker.ts';
import { startFakeIssuer, type FakeIssuer } from '../helpers/fake-issuer.ts';
import { startRedis, type TestRedis } from '../helpers/redis-server.ts';
import { AUD } from '../helpers/policies.ts';
import { waitFor } from '../helpers/wait.ts';
import type { ProofFailure } from '../../src/proofs/proof-error.ts';

let main: FakeIssuer;
let cold: FakeIssuer;
let redis: TestRedis;
let seq = 0;
const tmp = mkdtempSync(join(tmpdir(), 'leash-faults-'));

const policyFor = (extraRules = ''): string => `
issuers:
  - { name: main, issuer: "${main.url}", audiences: ["${AUD}"], max_proof_age: 10m }
  - { name: cold, issuer: "${cold.url}", audiences: ["${AUD}"], max_proof_age: 10m }
rules:
  - { name: main-rule, issuer: main, match: { sub: "w:*" }, grant: { scopes: [x:read], audiences: [https://svc.example] } }
  - { name: cold-rule, issuer: cold, match: { sub: "w:*" }, grant: { scopes: [x:read], audiences: [https://svc.example] } }
  - { name: ops, issuer: main, match: { sub: "ops:*" }, grant: { scopes: [leash:admin], audiences: ["\${LEASH_ISSUER}"] } }
${extraRules}`;

const claims = (issuer: FakeIssuer, sub = 'w:1', extra: Record<string, unknown> = {}) => ({ iss: issuer.url, aud: AUD, sub, jti: `fc-${process.pid}-${++seq}`, ...extra });
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function waitUntil(what: string, check: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await sleep(100);
  }
}
const readyz = async (b: TestBroker): Promise<number> => (await fetch(`${b.url}/readyz`)).status;
const timed = async <T>(f: () => Promise<T>): Promise<[T, number]> => {
  const t = Date.now();
  const v = await f();
  return [v, Date.now() - t];
};

beforeAll(async () => {
  main = await startFakeIssuer();
  cold = await startFakeIssuer();
  redis = await startRedis();
});
afterAll(async () => {
  await main?.close();
  await cold?.close();
  await redis?.destroy();
  rmSync(tmp, { recursive: true, force: true });
});

describe('Redis', () => {
  it('up but unable to take a write (out of memory): PING answers, yet /readyz is 503 naming it, like /token', async () => {
    const own = await startRedis();
    const b = await startBroker({ policy: policyFor(), redisUrl: own.url, worker: false });
    const admin = new Redis(own.url);
    try {
      await waitUntil('readyz once connected', async () => (await readyz(b)) === 200);
      await admin.config('SET', 'maxmemory', '1');
      expect(await admin.ping()).toBe('PONG');
      const ready = await fetch(`${b.url}/readyz`);
      expect(ready.status).toBe(503);
      expect((await ready.json()).checks.store).toMatch(/^cannot write a lease: .*OOM/);
      const res = await exchangeProof(b.url, await main.mint(claims(main)));
      expect([res.status, res.body.error]).toEqual([503, 'temporarily_unavailable']);
      await admin.config('SET', 'maxmemory', '0');
      await waitUntil('readyz once Redis takes writes', async () => (await readyz(b)) === 200);
    } finally {
      admin.disconnect();
      await b.close();
      await own.destroy();
    }
  });

  it('down at start: /readyz 503 and /token 503 temporarily_unavailable, fast; back up: issuing resumes', async () => {
    const own = await startRedis({ persist: true });
    await own.stop();
    const b = await startBroker({ policy: policyFor(), redisUrl: own.url, worker: false });
    try {
      const [ready, readyMs] = await timed(() => fetch(`${b.url}/readyz`));
      expect(ready.status).toBe(503);
      expect((await ready.json()).checks.store).toMatch(/^cannot write a lease: /);
      expect(readyMs).toBeLessThan(10_000); // fails fast, not after Redis reconnects: a hang bound, not a performance claim
      const proof = await main.mint(claims(main));
      const [res, tokenMs] = await timed(() => exchangeProof(b.url, proof));
      expect([res.status, res.body.error]).toEqual([503, 'temporarily_unavailable']);
      expect(res.headers.get('retry-after')).toBe('2');
      expect(res.body.access_token).toBeUndefined();
      expect(tokenMs).toBeLessThan(10_000); // likewise

      await own.start();
      await waitUntil('readyz after Redis came up', async () => (await readyz(b)) === 200);
      const again = await exchangeProof(b.url, proof); // the refused attempt recorded no replay
      expect(again.status).toBe(200);
      expect(await b.deps.store.countActive()).toBe(1);
      expect((await exchangeProof(b.url, proof)).body.error).toBe('invalid_request');
    } finally {
      await b.close();
      await own.destroy();
    }
  });

  // Its own bounded waits (the slow JWKS, Redis stopping and starting, readiness) add up to more
  // than the default 30 s on a machine loaded by the other suites.
  it('lost in the middle of an exchange and back: 503, nothing recorded; persisted state survives', { timeout: 60_000 }, async () => {
    const own = await startRedis({ persist: true });
    const b = await startBroker({ policy: policyFor(), redisUrl: own.url });
    const form = { 'content-type': 'application/x-www-form-urlencoded' };
    try {
      const op = await exchangeProof(b.url, await main.mint(claims(main, 'ops:1')));
      const live = await exchangeProof(b.url, await main.mint(claims(main)));
      const gone = await exchangeProof(b.url, await main.mint(claims(main)));
      expect([op.status, live.status, gone.status]).toEqual([200, 200, 200]);
      expect((await fetch(`${b.url}/revoke`, { method: 'POST', headers: form, body: `token=${gone.body.access_token}` })).status).toBe(200);
      const before = await b.deps.store.countActive();

      // The cold issuer's JWKS answers slowly: Redis goes away while the request waits on it.
      cold.setDelayMs(1_500);
      const proof = await cold.mint(claims(cold));
      const asked = cold.requestCount();
      const inFlight = exchangeProof(b.url, proof);
      // Stopped once the request is certainly in flight: its JWKS fetch has reached the issuer.
      await waitUntil('the exchange to fetch the cold JWKS', async () => cold.requestCount() > asked);
      await own.stop();
      const res = await inFlight;
      cold.setDelayMs(0);
      expect([res.status, res.body.error]).toEqual([503, 'temporarily_unavailable']);
      expect(res.body.error_description).toBe('the lease store is unavailable; no credential was issued');
      expect(res.body.access_token).toBeUndefined();

      // While it is down, nothing answers from guesswork: introspection and revocation are 503 too,
      // each saying what the outage means for it.
      const bearer = { ...form, authorization: `Bearer ${op.body.access_token}` };
      const introspected = await fetch(`${b.url}/introspect`, { method: 'POST', headers: bearer, body: `token=${live.body.access_token}` });
      expect([introspected.status, (await introspected.json()).error_description]).toEqual([503, 'the lease store is unavailable; try again']);
      const revoked = await fetch(`${b.url}/revoke`, { method: 'POST', headers: form, body: `token=${live.body.access_token}` });
      expect([revoked.status, (await revoked.json()).error_description]).toEqual([503, 'the lease store is unavailable; the revocation is not confirmed, retry it']);
      const listed = await fetch(`${b.url}/v1/leases`, { headers: { authorization: bearer.authorization } });
      expect([listed.status, (await listed.json()).message]).toEqual([503, 'the lease store is unavailable; try again']);
      expect(await readyz(b)).toBe(503);

      await own.start();
      await waitUntil('readyz after Redis came back', async () => (await readyz(b)) === 200);
      expect(await b.deps.store.countActive()).toBe(before);
      const introspect = async (token: string) =>
        (await (await fetch(`${b.url}/introspect`, { method: 'POST', headers: bearer, body: `token=${token}` })).json()).active;
      expect(await introspect(live.body.access_token)).toBe(true);
      expect(await introspect(gone.body.access_token)).toBe(false);
      const retry = await exchangeProof(b.url, proof); // not burnt by the failed attempt
      expect(retry.status).toBe(200);
      expect(await b.deps.store.countActive()).toBe(before + 1);
      // Single use again at once, though Redis was just lost.
      expect((await exchangeProof(b.url, proof)).body.error).toBe('invalid_request');
    } finally {
      cold.setDelayMs(0);
      await b.close();
      await own.destroy();
    }
  });
});

it('Redis restarted at once: an exchange made as soon as it is back is single use at once', async () => {
  const own = await startRedis({ persist: true });
  const b = await startBroker({ policy: policyFor(), redisUrl: own.url, worker: false });
  try {
    await waitUntil('readyz once connected', async () => (await readyz(b)) === 200);
    await own.restart();
    const proof = await main.mint(claims(main));
    // Exchanged the moment the broker is back, to land as close to the outage as it can.
    const first = await waitFor('an exchange once Redis is back', async () => {
      const r = await exchangeProof(b.url, proof);
      return r.status === 503 ? null : r;
    }, 10_000, 10);
    expect(first.status).toBe(200);
    const replay = await exchangeProof(b.url, proof);
    expect([replay.status, replay.body.error]).toEqual([400, 'invalid_request']);
  } finally {
    await b.close();
    await own.destroy();
  }
});

describe('issuer JWKS', () => {
  it('unreachable with a cold cache: 503, no lease; reachable again: issuing resumes', async () => {
    const issuer = await startFakeIssuer();
    const b = await startBroker({ redisUrl: redis.url, policy: `issuers: [{ name: i, issuer: "${issuer.url}", audiences: ["${AUD}"] }]\nrules: [{ name: r, issuer: i, grant: { scopes: [a] } }]\n` });
    try {
      issuer.setDown(true);
      const proof = await issuer.mint(claims(issuer));
      const res = await exchangeProof(b.url, proof);
      expect([res.status, res.body.error]).toEqual([503, 'temporarily_unavailable']);
      expect(await b.deps.store.countActive()).toBe(0);
      const denied = await b.deps.audit.list({ type: 'exchange.denied', limit: 10 });
      expect(denied.events.some((e) => e.request_id === res.body.request_id)).toBe(true);
      issuer.setDown(false);
      await sleep(1_100); // the cold-cache retry interval
      expect((await exchangeProof(b.url, proof)).status).toBe(200);
    } finally {
      await b.close();
      await issuer.close();
    }
  });

  it('unreachable with a warm cache: known keys still verify; an unknown kid is refused, not trusted', async () => {
    const issuer = await startFakeIssuer();
    const b = await startBroker({ redisUrl: redis.url, policy: `issuers: [{ name: i, issuer: "${issuer.url}", audiences: ["${AUD}"] }]\nrules: [{ name: r, issuer: i, grant: { scopes: [a] } }]\n` });
    try {
      expect((await exchangeProof(b.url, await issuer.mint(claims(issuer)))).status).toBe(200);
      issuer.setDown(true);
      expect((await exchangeProof(b.url, await issuer.mint(claims(issuer)))).status).toBe(200);
      issuer.rotate();
      const res = await exchangeProof(b.url, await issuer.mint(claims(issuer)));
      expect([res.status, res.body.error]).toEqual([400, 'invalid_request']);
      expect(await b.deps.store.countActive()).toBe(2);
    } finally {
      await b.close();
      await issuer.close();
    }
  });
});

describe('keys at start', () => {
  const policyPath = join(tmp, 'policy.yaml');
  const x509Rule = `  - { name: certs, issuer: main, match: { sub: "c:*" }, grant: { scopes: [], credentials: [x509], x509: { uri_sans: ["spiffe://t/x"] } } }\n`;
  const start = (keysDir: string, extra: Record<string, string> = {}) =>
    createDeps(loadConfig({ REDIS_URL: redis.url, HOST: '127.0.0.1', LEASH_POLICY: policyPath, LEASH_KEYS_DIR: keysDir, ...extra }));

  async function keysCopy(name: string, withCa: boolean): Promise<string> {
    const src = await testKeysDir();
    const dir = join(tmp, name);
    mkdirSync(join(dir, 'jwt'), { recursive: true });
    for (const f of readdirSync(join(src, 'jwt'))) copyFileSync(join(src, 'jwt', f), join(dir, 'jwt', f));
    if (withCa) {
      mkdirSync(join(dir, 'ca'));
      for (const f of readdirSync(join(src, 'ca'))) copyFileSync(join(src, 'ca', f), join(dir, 'ca', f));
    }
    return dir;
  }

  beforeAll(() => writeFileSync(policyPath, policyFor(x509Rule)));

  it('a missing keys directory stops the start, naming the directory', async () => {
    const missing = join(tmp, 'no-such-keys');
    await expect(start(missing)).rejects.toMatchObject({ code: 'ERR_KEYS', message: expect.stringMatching(new RegExp(`${join(missing, 'jwt')}.*ENOENT`)) });
  });

  it('an unreadable key file stops the start, naming the file', async () => {
    const dir = await keysCopy('unreadable', true);
    mkdirSync(join(dir, 'jwt', 'broken.pem')); // a directory where a key should be: EISDIR even for root
    await expect(start(dir)).rejects.toMatchObject({ code: 'ERR_KEYS', message: expect.stringMatching(new RegExp(`${join(dir, 'jwt', 'broken.pem')}.*EISDIR`)) });
  });

  it('a SEC1 EC key, as `openssl ecparam -genkey` writes it, is read and signs like a PKCS#8 one', async () => {
    const dir = await keysCopy('sec1', true);
    const sec1 = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'pem', type: 'sec1' }).toString();
    expect(sec1).toContain('BEGIN EC PRIVATE KEY');
    writeFileSync(join(dir, 'jwt', 'sec1.pem'), sec1);
    const deps = await start(dir, { LEASH_SIGNING_KID: 'sec1' });
    try {
      expect(deps.keys.active()).toMatchObject({ kid: 'sec1', alg: 'ES256' });
      expect(deps.keys.jwks().keys.map((k) => k.kid)).toContain('sec1');
    } finally {
      await deps.close();
    }
  });

  it('an encrypted signing key stops the start, naming the file and saying why', async () => {
    const dir = await keysCopy('encrypted', true);
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    writeFileSync(join(dir, 'jwt', 'locked.pem'), privateKey.export({ format: 'pem', type: 'pkcs8', cipher: 'aes-256-cbc', passphrase: 'x' }).toString());
    await expect(start(dir)).rejects.toMatchObject({ code: 'ERR_KEYS', message: expect.stringMatching(new RegExp(`${join(dir, 'jwt', 'locked.pem')}.*encrypted`)) });
  });

  it('a CA key in SEC1 form is read too; an encrypted one stops the start, naming the file', async () => {
    const dir = await keysCopy('ca-sec1', true);
    const caKey = join(dir, 'ca', 'ca.key.pem');
    const sec1 = createPrivateKey(readFileSync(caKey)).export({ format: 'pem', type: 'sec1' }).toString();
    expect(sec1).toContain('BEGIN EC PRIVATE KEY');
    writeFileSync(caKey, sec1);
    const deps = await start(dir);
    await deps.close();
    writeFileSync(caKey, createPrivateKey(sec1).export({ format: 'pem', type: 'pkcs8', cipher: 'aes-256-cbc', passphrase: 'x' }).toString());
    await expect(start(dir)).rejects.toMatchObject({ message: expect.stringContaining(`${caKey} is encrypted`) });
  });

  it('a key file that is not a private key stops the start, naming the file', async () => {
    const dir = await keysCopy('garbage', true);
    writeFileSync(join(dir, 'jwt', 'garbage.pem'), 'not a key');
    await expect(start(dir)).rejects.toMatchObject({ code: 'ERR_KEYS', message: expect.stringContaining(join(dir, 'jwt', 'garbage.pem')) });
  });

  it('LEASH_SIGNING_KID naming a missing key stops the start, naming the file', async () => {
    const dir = await keysCopy('kid', true);
    await expect(start(dir, { LEASH_SIGNING_KID: 'nope' })).rejects.toMatchObject({ code: 'ERR_KEYS', message: expect.stringContaining(join(dir, 'jwt', 'nope.pem')) });
  });

  it('a missing CA, when a rule issues certificates, stops the start, naming the file', async () => {
    const dir = await keysCopy('no-ca', false);
    await expect(start(dir)).rejects.toMatchObject({ code: 'ERR_CA', message: expect.stringMatching(/ca\/ca\.(key\.)?pem/) });
  });
});

describe('policy at start', () => {
  it('without LEASH_POLICY outside dev mode the example policy is served, never quietly: a warning says so', async () => {
    const keysDir = await testKeysDir();
    const lines: string[] = [];
    const log = pino({ level: 'info' }, { write: (line: string) => void lines.push(line) });
    const env = { REDIS_URL: redis.url, HOST: '127.0.0.1', LEASH_KEYS_DIR: keysDir };
    const deps = await createDeps(loadConfig(env), { log });
    await deps.close();
    expect(lines.filter((l) => /LEASH_POLICY is not set: serving the example policy/.test(l))).toHaveLength(1);
    lines.length = 0;
    const named = await createDeps(loadConfig({ ...env, LEASH_POLICY: 'policy.example.yaml' }), { log });
    await named.close();
    expect(lines.join('')).not.toMatch(/LEASH_POLICY is not set/);
  });
});

describe('policy reload', () => {
  it('an invalid replacement is refused and the last good policy keeps working', async () => {
    const b = await startBroker({ redisUrl: redis.url, policy: policyFor() });
    try {
      expect((await exchangeProof(b.url, await main.mint(claims(main)))).status).toBe(200);
      const broken: [string, string, RegExp][] = [
        ['YAML syntax error', 'rules: [\n  - {', /.*/],
        ['an unknown issuer reference', policyFor('  - { name: bad, issuer: nobody, grant: { scopes: [a] } }\n'), /rules.*issuer|unknown issuer/],
        ['an empty file', '', /.*/],
        ['a misspelt key', policyFor('  - { name: typo, issuer: main, grant: { scopes: [a], max_tll: 1h } }\n'), /max_tll|unrecognized|Unrecognized/],
      ];
      for (const [what, text, why] of broken) {
        writeFileSync(b.policyPath, text);
        const r = b.deps.reloadPolicy();
        expect(r.ok, what).toBe(false);
        if (!r.ok) {
          expect(r.error, what).toContain(b.policyPath);
          expect(r.error, what).toMatch(why);
        }
        const res = await exchangeProof(b.url, await main.mint(claims(main)));
        expect(res.status, `${what}: the last good policy still issues`).toBe(200);
      }
      rmSync(b.policyPath);
      expect(b.deps.reloadPolicy().ok).toBe(false);
      expect((await exchangeProof(b.url, await main.mint(claims(main)))).status).toBe(200);

      // Control: a valid replacement does take effect (main-rule removed).
      writeFileSync(b.policyPath, `issuers: [{ name: main, issuer: "${main.url}", audiences: ["${AUD}"] }]\nrules: [{ name: other, issuer: main, match: { sub: "z:*" }, grant: { scopes: [a] } }]\n`);
      expect(b.deps.reloadPolicy()).toEqual({ ok: true });
      const after = await exchangeProof(b.url, await main.mint(claims(main)));
      expect([after.status, after.body.error_description]).toEqual([400, 'no policy rule matches this proof']);
    } finally {
      await b.close();
    }
  });
});

describe('clock skew at the edges (LEASH_CLOCK_SKEW=5, max_proof_age 10m, frozen broker clock)', () => {
  const T = Math.floor(Date.now() / 1000);
  let b: TestBroker;
  beforeAll(async () => {
    b = await startBroker({ redisUrl: redis.url, policy: policyFor(), env: { LEASH_CLOCK_SKEW: '5' }, now: () => T * 1000, worker: false });
    await waitUntil('broker ready', async () => (await readyz(b)) === 200);
  });
  afterAll(async () => b?.close());

  it.each<[string, { iat?: number; nbf?: number; exp?: number }, number, ProofFailure | null]>([
    ['exp = now - skew: expired', { iat: T - 60, exp: T - 5 }, 400, 'expired'],
    ['exp = now - skew + 1: accepted', { iat: T - 60, exp: T - 4 }, 200, null],
    ['nbf = now + skew: accepted', { iat: T, nbf: T + 5, exp: T + 300 }, 200, null],
    ['nbf = now + skew + 1: not yet valid', { iat: T, nbf: T + 6, exp: T + 300 }, 400, 'not_yet_valid'],
    ['iat = now + skew: accepted', { iat: T + 5, exp: T + 300 }, 200, null],
    ['iat = now + skew + 1: issued in the future', { iat: T + 6, exp: T + 300 }, 400, 'iat_in_future'],
    ['iat = now - max_proof_age - skew: accepted', { iat: T - 605, exp: T + 300 }, 200, null],
    ['iat = now - max_proof_age - skew - 1: too old', { iat: T - 606, exp: T + 300 }, 400, 'too_old'],
  ])('%s', async (_name, times, status, why) => {
    const before = await b.deps.store.countActive();
    const res = await exchangeProof(b.url, await main.mint(claims(main), { times }));
    expect(res.status, JSON.stringify(res.body)).toBe(status);
    if (why) {
      // The fixed reason is never sent; its exchange.denied event records it.
      const { events } = await b.deps.audit.list({ type: 'exchange.denied', limit: 200 });
      expect(events.find((e) => e.request_id === res.body.request_id)?.reason).toMatch(new RegExp(`^invalid_request: ${why}: `));
    }
    expect(await b.deps.store.countActive()).toBe(before + (status === 200 ? 1 : 0));
  });
});
