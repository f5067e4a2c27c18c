import { execFileSync } from 'node:child_process';
import { createPublicKey, createPrivateKey } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startE2E, type E2E } from '../helpers/e2e-env.ts';
import type { TestBroker } from '../helpers/broker.ts';
import { fixtureClaims } from '../helpers/fake-issuer.ts';
import { AUD, type IssuerSet } from '../helpers/policies.ts';
import { freePort } from '../helpers/redis-server.ts';
import { jwtPayload, runCli } from './run-cli.ts';

let e2e: E2E;
let issuers: IssuerSet;
let broker: TestBroker;
let dir: string;
let env: Record<string, string>;
let seq = 0;

beforeAll(async () => {
  e2e = await startE2E();
  ({ issuers, broker } = e2e);
  dir = mkdtempSync(join(tmpdir(), 'leash-cli-exchange-'));
  env = { LEASH_URL: broker.url };
});
afterAll(async () => {
  await e2e?.close();
  rmSync(dir, { recursive: true, force: true });
});

/**
 * A fresh single-use GitHub-shaped proof for the gh-deploy rule. Each has its own `sub`: the rule
 * allows 3 active leases per subject.
 */
const ghProof = (extra: Record<string, unknown> = {}): Promise<string> => {
  const n = ++seq;
  return issuers.github.mint({ ...fixtureClaims('github-actions', 'push-main'), iss: issuers.github.url, aud: AUD, jti: `cli-${n}`, sub: `repo:octo-org/octo-repo:job:${n}`, ...extra });
};

describe('leash exchange', { timeout: 120_000 }, () => {
  it('--proof: prints the access token and nothing else; the lease is recorded', async () => {
    const proof = await ghProof();
    const r = await runCli(['exchange', '--proof', proof, '--scope', 'artifacts:read', '--audience', 'https://artifacts.acme.internal', '--ttl', '2m', '--task-id', 'run-1'], { env });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+\n$/);
    const claims = jwtPayload(r.stdout.trim());
    expect(claims).toMatchObject({ scope: 'artifacts:read', aud: 'https://artifacts.acme.internal', task_id: 'run-1', client_id: 'gh-deploy' });
    expect((claims.exp as number) - (claims.iat as number)).toBe(120);
    expect(await broker.deps.store.get(claims.jti as string)).toMatchObject({ status: 'active', task_id: 'run-1', rule: 'gh-deploy' });
  });

  it('--proof-file - reads stdin; --json prints the whole response', async () => {
    const r = await runCli(['exchange', '--proof-file', '-', '--json', '--subject-token-type', 'jwt'], { env, input: `${await ghProof()}\n` });
    expect(r.code).toBe(0);
    const body = JSON.parse(r.stdout);
    expect(body).toMatchObject({ token_type: 'Bearer', scope: 'deploy:write artifacts:read', expires_in: 600 });
    expect(body.lease_id).toBe(jwtPayload(body.access_token).jti);
  });

  it('--from github asks the runner\'s ID token endpoint with the audience; --from auto detects it', async () => {
    const asked: { auth?: string; audience: string | null; apiVersion: string | null }[] = [];
    const gh: Server = createServer(async (req, res) => {
      const url = new URL(req.url ?? '/', 'http://x');
      asked.push({ auth: req.headers.authorization, audience: url.searchParams.get('audience'), apiVersion: url.searchParams.get('api-version') });
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ value: await ghProof() }));
    });
    await new Promise<void>((r) => gh.listen(0, '127.0.0.1', r));
    const ghEnv = {
      ...env,
      ACTIONS_ID_TOKEN_REQUEST_URL: `http://127.0.0.1:${(gh.address() as AddressInfo).port}/idtoken?api-version=2.0`,
      ACTIONS_ID_TOKEN_REQUEST_TOKEN: 'runner-request-token',
    };
    try {
      const r = await runCli(['exchange', '--from', 'github', '--proof-audience', AUD, '--scope', 'deploy:write'], { env: ghEnv });
      expect(r.code, r.stderr).toBe(0);
      expect(jwtPayload(r.stdout.trim())).toMatchObject({ scope: 'deploy:write', client_id: 'gh-deploy' });
      const auto = await runCli(['exchange', '--from', 'auto'], { env: { ...ghEnv, LEASH_PROOF_AUDIENCE: AUD } });
      expect(auto.code, auto.stderr).toBe(0);
      expect(asked).toEqual([
        { auth: 'bearer runner-request-token', audience: AUD, apiVersion: '2.0' },
        { auth: 'bearer runner-request-token', audience: AUD, apiVersion: '2.0' },
      ]);
    } finally {
      await new Promise((r) => gh.close(r));
    }
  });

  it('--from github outside a job with id-token permission is a usage error', async () => {
    const r = await runCli(['exchange', '--from', 'github'], { env });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('id-token: write');
  });

  it('--from gitlab reads the id_tokens variable', async () => {
    const proof = await issuers.gitlab.mint({ ...fixtureClaims('gitlab-ci', 'branch-main'), iss: issuers.gitlab.url, aud: AUD, jti: `gl-${++seq}` });
    const r = await runCli(['exchange', '--from', 'gitlab'], { env: { ...env, LEASH_ID_TOKEN: proof } });
    expect(r.code, r.stderr).toBe(0);
    expect(jwtPayload(r.stdout.trim())).toMatchObject({ client_id: 'gl-build' });
  });

  it('--from kubernetes reads the projected token file; --from auto finds it too', async () => {
    const file = join(dir, 'k8s-token');
    const mint = () => issuers.k8s.mint({ ...fixtureClaims('kubernetes-sa', 'pod-bound-default-projected'), iss: issuers.k8s.url, aud: [AUD], jti: `k8s-${++seq}` });
    writeFileSync(file, await mint());
    const r = await runCli(['exchange', '--from', 'kubernetes', '--proof-file', file], { env });
    expect(r.code, r.stderr).toBe(0);
    expect(jwtPayload(r.stdout.trim())).toMatchObject({ client_id: 'k8s-payments', ns: 'kube-system' });
    writeFileSync(file, await mint());
    const auto = await runCli(['exchange', '--from', 'auto', '--proof-file', file], { env });
    expect(auto.code, auto.stderr).toBe(0);
    const missing = await runCli(['exchange', '--from', 'kubernetes', '--proof-file', join(dir, 'nope')], { env });
    expect(missing.code).toBe(2);
  });

  for (const keyType of ['ec-p256', 'ed25519'] as const) {
    it(`--cert (${keyType}): key made locally (0600), certificate and chain verify up to the root`, async () => {
      const prefix = join(dir, `svc-${keyType}`);
      const r = await runCli(['exchange', '--proof', await ghProof(), '--cert', prefix, '--key-type', keyType, '--ttl', '5m'], { env });
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout.trim().split('\n')).toEqual([`${prefix}.key.pem`, `${prefix}.pem`, `${prefix}.chain.pem`]);
      expect(statSync(`${prefix}.key.pem`).mode & 0o777).toBe(0o600);
      const verify = execFileSync('openssl', ['verify', '-CAfile', join(broker.keysDir, 'ca', 'root.pem'), '-untrusted', join(broker.keysDir, 'ca', 'ca.pem'), `${prefix}.pem`]).toString();
      expect(verify).toContain(': OK');
      const chainVerify = execFileSync('openssl', ['verify', '-CAfile', join(broker.keysDir, 'ca', 'root.pem'), '-untrusted', `${prefix}.chain.pem`, `${prefix}.pem`]).toString();
      expect(chainVerify).toContain(': OK');
      // The certificate certifies the key that never left this machine.
      const certKey = execFileSync('openssl', ['x509', '-in', `${prefix}.pem`, '-noout', '-pubkey']).toString();
      const localKey = createPublicKey(createPrivateKey(readFileSync(`${prefix}.key.pem`))).export({ type: 'spki', format: 'pem' }).toString();
      expect(certKey.trim()).toBe(localKey.trim());
      const san = execFileSync('openssl', ['x509', '-in', `${prefix}.pem`, '-noout', '-ext', 'subjectAltName']).toString();
      expect(san).toContain('spiffe://acme.internal/gh/octo-org/octo-repo');
    });
  }

  it('a refusal: exit 1 with the broker\'s error code, and the proof is never echoed', async () => {
    const proof = await ghProof();
    const r = await runCli(['exchange', '--proof', proof, '--scope', 'leash:admin'], { env });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('invalid_scope');
    for (const part of proof.split('.')) expect(r.stderr + r.stdout).not.toContain(part);
    const bad = await runCli(['exchange', '--proof', 'not-a-jwt'], { env });
    expect(bad.code).toBe(2);
    expect(bad.stderr).not.toContain('not-a-jwt');
  });

  it('usage errors (exit 2) are caught before any proof is spent', async () => {
    expect((await runCli(['exchange'], { env })).code).toBe(2);
    expect((await runCli(['exchange', '--proof', 'a.b.c', '--ttl', 'soon'], { env })).code).toBe(2);
    expect((await runCli(['exchange', '--proof', 'a.b.c', '--from', 'gitlab'], { env })).code).toBe(2);
    expect((await runCli(['exchange', '--proof', 'a.b.c', '--cert', join(dir, 'x'), '--key-type', 'rsa-1024'], { env })).code).toBe(2);
    expect((await runCli(['exchange', '--proof', 'a.b.c', '--key-type', 'ed25519'], { env })).code).toBe(2);
  });

  it('exit 3 when the broker is down', async () => {
    const down = `http://127.0.0.1:${await freePort()}`;
    const r = await runCli(['exchange', '--proof', await ghProof(), '--url', down], { env });
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('ECONNREFUSED');
    const ls = await runCli(['leases', 'ls'], { env: { LEASH_URL: down, LEASH_TOKEN: 'a.b.c' } });
    expect(ls.code).toBe(3);
  });
});
