/**
 * `leash/verify` keeps Leash's JWKS no longer than the max-age Leash sends with it: after an emergency key removal, a resource server stops trusting the removed key
 * when Leash said it would, not after jose's default 10 minutes. Real broker, real HTTP; a small
 * pass-through proxy in front of the JWKS counts fetches and, like a shared cache that has held
 * the answer a while, adds an Age header, so Leash's own max-age=300 runs out in seconds.
 */
import { cpSync, mkdtempSync, rmSync, utimesSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeProtectedHeader, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedis, type TestRedis } from '../helpers/redis-server.ts';
import { startFakeIssuer, fixtureClaims } from '../helpers/fake-issuer.ts';
import { startBroker, exchangeProof, testKeysDir, type TestBroker } from '../helpers/broker.ts';
import { e2ePolicy, AUD, type IssuerSet } from '../helpers/policies.ts';
import { generateSigningKey } from '../../src/mint/jwt/generate-key.ts';
import { createLeashVerifier, LeashVerifyError } from '../../src/verify/index.ts';
import { createLeashJwks, freshnessSeconds, KID_MISS_COOLDOWN_MS } from '../../src/verify/jwks.ts';

const DEPLOY = 'https://deploy.acme.internal';

let redis: TestRedis;
let issuers: IssuerSet;
let broker: TestBroker;
let keysDir: string;
let seq = 0;

interface Proxy {
  url: string;
  /** Times (ms) the JWKS was fetched through the proxy. */
  fetches: number[];
  /** When set, answers carry `Age: max-age - leftSeconds`: that much freshness is left. */
  leftSeconds: number | undefined;
  close(): Promise<void>;
}

async function startJwksProxy(upstream: string): Promise<Proxy> {
  const proxy: Proxy = { url: '', fetches: [], leftSeconds: undefined, close: async () => undefined };
  const server: Server = createServer((req, res) => {
    proxy.fetches.push(Date.now());
    void (async () => {
      const r = await fetch(`${upstream}${req.url}`);
      const cacheControl = r.headers.get('cache-control') ?? '';
      const headers: Record<string, string> = { 'content-type': r.headers.get('content-type') ?? 'application/json', 'cache-control': cacheControl };
      if (proxy.leftSeconds !== undefined) {
        const maxAge = Number(/max-age=(\d+)/.exec(cacheControl)![1]);
        headers.age = String(maxAge - proxy.leftSeconds);
      }
      res.writeHead(r.status, headers).end(Buffer.from(await r.arrayBuffer()));
    })();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  proxy.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/.well-known/jwks.json`;
  proxy.close = () => new Promise((r) => server.close(() => r()));
  return proxy;
}

beforeAll(async () => {
  redis = await startRedis();
  issuers = { github: await startFakeIssuer({ alg: 'RS256' }), gitlab: await startFakeIssuer(), k8s: await startFakeIssuer(), spiffe: await startFakeIssuer() };
  // A private copy of the keys: these tests rotate and remove keys.
  keysDir = mkdtempSync(join(tmpdir(), 'leash-verify-keys-'));
  cpSync(await testKeysDir(), keysDir, { recursive: true });
  broker = await startBroker({ policy: e2ePolicy(issuers), redisUrl: redis.url, keysDir });
});
afterAll(async () => {
  await broker?.close();
  for (const i of Object.values(issuers ?? {})) await i.close();
  await redis?.destroy();
  if (keysDir) rmSync(keysDir, { recursive: true, force: true });
});

async function workloadToken(): Promise<string> {
  const proof = await issuers.github.mint({ ...fixtureClaims('github-actions', 'push-main'), iss: issuers.github.url, aud: AUD, jti: `jwks-${++seq}`, sub: `repo:octo-org/octo-repo:jwks-${seq}` });
  const res = await exchangeProof(broker.url, proof);
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body.access_token;
}

/** Rotates to a fresh key and deletes the active one's file, as an operator would after a leak. */
async function removeActiveKey(): Promise<string> {
  const removed = broker.deps.keys.active().kid;
  const next = await generateSigningKey(keysDir);
  const future = new Date(Date.now() + 5_000 * ++seq);
  utimesSync(join(keysDir, 'jwt', `${next}.pem`), future, future);
  rmSync(join(keysDir, 'jwt', `${removed}.pem`));
  broker.deps.keys.reload(); // what SIGHUP does in main.ts
  expect(broker.deps.keys.byKid(removed)).toBeUndefined();
  const published = (await (await fetch(`${broker.url}/.well-known/jwks.json`)).json()) as { keys: { kid: string }[] };
  expect(published.keys.map((k) => k.kid)).not.toContain(removed);
  return removed;
}

describe('freshnessSeconds (RFC 9111, as a private cache)', () => {
  it.each([
    ['public, max-age=300', null, 300],
    ['max-age=300', '298', 2],
    ['max-age=300', '400', 0],
    ['Max-Age="60", public', null, 60],
    ['no-store', null, 0],
    ['max-age=300, no-cache', null, 0],
    ['max-age=300, max-age=10', null, 0],
    ['max-age=-1', null, 0],
    ['max-age=soon', null, 0],
    [null, null, 300],
  ] as const)('Cache-Control %o, Age %o: %i s', (cacheControl, age, want) => {
    expect(freshnessSeconds(cacheControl, age)).toBe(want);
  });

  it("Leash's JWKS answer says max-age=300", async () => {
    const res = await fetch(`${broker.url}/.well-known/jwks.json`);
    expect(freshnessSeconds(res.headers.get('cache-control'), res.headers.get('age'))).toBe(300);
  });
});

describe('createLeashVerifier after an emergency key removal', () => {
  it('accepts tokens of the removed key only until the max-age Leash sent runs out, then refuses them', async () => {
    const proxy = await startJwksProxy(broker.url);
    try {
      proxy.leftSeconds = 3;
      const verifier = createLeashVerifier({ issuer: broker.config.issuer, audience: DEPLOY, jwksUri: proxy.url });
      const token = await workloadToken();
      await verifier.verify(token);
      expect(proxy.fetches).toHaveLength(1);
      const fetchedAt = proxy.fetches[0]!;

      const removedKid = await removeActiveKey();
      expect(decodeProtectedHeader(token).kid).toBe(removedKid);

      // Polled until refused: the cached set serves every call until its freshness is spent.
      let refusedAt: number | undefined;
      let error: unknown;
      while (refusedAt === undefined && Date.now() < fetchedAt + 10_000) {
        error = await verifier.verify(token).then(() => undefined, (e: unknown) => e);
        if (error) refusedAt = Date.now();
        else await new Promise((r) => setTimeout(r, 50));
      }
      expect(error).toBeInstanceOf(LeashVerifyError);
      expect((error as LeashVerifyError).code).toBe('ERR_LEASH_TOKEN_INVALID');
      expect(refusedAt! - fetchedAt).toBeGreaterThanOrEqual(3_000 - 50);
      // Refused once the max-age runs out, not at some later default refresh; slack for a loaded machine.
      expect(refusedAt! - fetchedAt).toBeLessThan(3_000 + 5_000);
      // One fetch when the freshness ran out; the kid then missing is not fetched again (cooldown).
      expect(proxy.fetches).toHaveLength(2);

      // The successor key's tokens verify with the refetched set.
      await verifier.verify(await workloadToken());
      expect(proxy.fetches).toHaveLength(2);
    } finally {
      await proxy.close();
    }
  });
});

describe('createLeashJwks with a controlled clock and Leash max-age=300', () => {
  /** A JWKS behind a counting proxy whose clock the test sets, and a first token verified at `start`. */
  async function controlledJwks() {
    const proxy = await startJwksProxy(broker.url);
    const clock = { now: Date.now() };
    const jwks = createLeashJwks(new URL(proxy.url), { now: () => clock.now });
    const verify = (token: string) => jwtVerify(token, jwks, { issuer: broker.config.issuer, audience: DEPLOY });
    const token = await workloadToken();
    const start = clock.now;
    await verify(token);
    return { proxy, clock, verify, token, start };
  }
  /** The token with another kid in its header (its signature no longer matters: no key is found). */
  const withKid = (token: string, kid: string): string => {
    const [h, p, s] = token.split('.') as [string, string, string];
    const header = JSON.parse(Buffer.from(h, 'base64url').toString());
    return `${Buffer.from(JSON.stringify({ ...header, kid })).toString('base64url')}.${p}.${s}`;
  };

  it('an unknown kid soon after a fetch (a key just rotated in) refetches once 5 s have passed, not 30', async () => {
    expect(KID_MISS_COOLDOWN_MS).toBe(5_000);
    const { proxy, clock, verify, token, start } = await controlledJwks();
    try {
      const unknown = withKid(token, 'rotated-in');
      clock.now = start + 4_999;
      await expect(verify(unknown)).rejects.toMatchObject({ code: 'ERR_JWKS_NO_MATCHING_KEY' });
      expect(proxy.fetches).toHaveLength(1);
      clock.now = start + 5_000;
      await expect(verify(unknown)).rejects.toMatchObject({ code: 'ERR_JWKS_NO_MATCHING_KEY' });
      expect(proxy.fetches).toHaveLength(2);
    } finally {
      await proxy.close();
    }
  });

  it('refetches when 300 s have passed, not before; an unknown kid refetches at most once per cooldown', async () => {
    const { proxy, clock, verify, token, start } = await controlledJwks();
    try {
      expect(proxy.fetches).toHaveLength(1);

      clock.now = start + 299_000;
      await verify(token);
      expect(proxy.fetches).toHaveLength(1);

      // A kid Leash never had, repeated: one refetch once the cooldown allows, then none.
      const forged = withKid(token, 'forged');
      for (let i = 0; i < 5; i++) await expect(verify(forged)).rejects.toMatchObject({ code: 'ERR_JWKS_NO_MATCHING_KEY' });
      expect(proxy.fetches).toHaveLength(2); // 299 s after the last fetch: out of cooldown once

      clock.now = start + 299_000 + 300_000 - 1;
      await verify(token);
      expect(proxy.fetches).toHaveLength(2);
      clock.now += 1;
      await verify(token);
      expect(proxy.fetches).toHaveLength(3);
    } finally {
      await proxy.close();
    }
  });
});
