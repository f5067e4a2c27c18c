import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBroker, testKeysDir, type TestBroker } from '../helpers/broker.ts';
import { ROOT } from '../helpers/build.ts';
import { fixtureClaims } from '../helpers/claim-fixtures.ts';
import { startFakeIssuer, type FakeIssuer } from '../helpers/fake-issuer.ts';
import { freePort, startRedis, type TestRedis } from '../helpers/redis-server.ts';
import { waitFor } from '../helpers/wait.ts';
import { block, readmeBlocks } from './readme-blocks.ts';

/**
 * Runs the README's quickstart, production start and recipes as written, against real brokers.
 * What stands in for the world, and the only text substituted in a block:
 * - `https://leash.example.com` and `http://127.0.0.1:8080` become the test broker's URL, and
 *   issuer URLs (GitHub, GitLab, the cluster, SPIRE) the local issuers standing in for them;
 * - GitHub's ID token endpoint is a local server; `npm install --global leash` steps are skipped,
 *   `leash` on PATH being this checkout's compiled command;
 * - fixed paths (`/tmp/token`, the pod's token mount) move into a temp dir; `./deploy.sh` and
 *   `app` are stubs that record what they were given.
 */
const blocks = readmeBlocks();
const EXAMPLE = 'https://leash.example.com';
let redis: TestRedis;
let gh: FakeIssuer;
let gitlab: FakeIssuer;
let k8s: FakeIssuer;
let spire: FakeIssuer;
let broker: TestBroker;
let ghTokens: Server;
let ghTokenUrl: string;
let tmp: string;
let bin: string;
let seq = 0;

const sub = (text: string): string => text.replaceAll(EXAMPLE, broker.url).replaceAll('http://127.0.0.1:8080', broker.url);
const jti = (): string => `readme-${process.pid}-${++seq}`;

/** The recipes' policy blocks, merged, with the stand-in issuers' URLs. */
function recipePolicy(): string {
  const issuers: Record<string, unknown>[] = [];
  const rules: Record<string, unknown>[] = [];
  for (const name of ['github-actions-policy', 'gitlab-ci-policy', 'kubernetes-policy', 'spire-policy', 'certificate-policy']) {
    const text = block(blocks, name)
      .replaceAll('https://token.actions.githubusercontent.com', gh.url)
      .replaceAll('https://gitlab.com', gitlab.url)
      .replaceAll('https://kubernetes.default.svc.cluster.local', k8s.url)
      .replaceAll('https://spire-bundle.acme.internal/keys', spire.jwksUri)
      .replaceAll(EXAMPLE, '"${LEASH_ISSUER}"');
    const doc = parse(text) as { issuers?: Record<string, unknown>[]; rules?: Record<string, unknown>[] };
    issuers.push(...(doc.issuers ?? []));
    rules.push(...(doc.rules ?? []));
  }
  return stringify({ issuers, rules });
}

/**
 * Runs a shell script as a job would: bash, errexit, in the temp dir, `leash` on PATH. Async: the
 * broker answering it runs in this process.
 */
function sh(script: string, env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn('bash', ['-eo', 'pipefail', '-c', script], { cwd: tmp, env: { PATH: `${bin}:${process.env.PATH}`, HOME: tmp, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

const expectOk = (r: { code: number; stdout: string; stderr: string }): void => expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);

const claimsOf = (jwt: string): Record<string, unknown> => JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString('utf8'));

beforeAll(async () => {
  redis = await startRedis();
  gh = await startFakeIssuer({ alg: 'RS256' });
  gitlab = await startFakeIssuer({ alg: 'RS256' });
  k8s = await startFakeIssuer({ alg: 'RS256' });
  spire = await startFakeIssuer();
  // The recipes' audience becomes ${LEASH_ISSUER}: the broker's own URL, known once it listens.
  broker = await startBroker({ policy: recipePolicy(), redisUrl: redis.url });

  // GitHub's runner endpoint: an ID token of an `environment: production` job of acme/app.
  ghTokens = createServer((req, res) => {
    const audience = new URL(req.url!, 'http://x').searchParams.get('audience');
    const claims = { ...fixtureClaims('github-actions', 'environment-production'), iss: gh.url, aud: audience, jti: jti(),
      sub: 'repo:acme/app:environment:production', repository: 'acme/app', repository_owner: 'acme', environment: 'production', ref: 'refs/heads/main' };
    void gh.mint(claims).then((value) => res.end(JSON.stringify({ value })));
  });
  await new Promise<void>((r) => ghTokens.listen(0, '127.0.0.1', () => r()));
  ghTokenUrl = `http://127.0.0.1:${(ghTokens.address() as { port: number }).port}/token?api-version=2.0`;

  tmp = mkdtempSync(join(tmpdir(), 'leash-readme-'));
  bin = join(tmp, 'bin');
  mkdirSync(bin);
  const stub = (name: string, body: string): void => {
    writeFileSync(join(bin, name), `#!/bin/sh\n${body}\n`);
    chmodSync(join(bin, name), 0o755);
  };
  stub('leash', `exec "${process.execPath}" "${ROOT}/bin/leash.js" "$@"`);
  stub('app', `test -s "${tmp}/token" && echo app started`);
  writeFileSync(join(tmp, 'deploy.sh'), `#!/bin/sh\nprintf %s "$DEPLOY_TOKEN" > "${tmp}/deployed-with"\n`);
  chmodSync(join(tmp, 'deploy.sh'), 0o755);
}, 60_000);

afterAll(async () => {
  ghTokens?.close();
  await broker?.close();
  for (const i of [gh, gitlab, k8s, spire]) await i?.close();
  await redis?.destroy();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

/** A broker process started the way the README says; stopped with its whole process group. */
function startProcess(command: string, args: string[], cwd: string, env: Record<string, string>): { child: ChildProcess; output: () => string } {
  let out = '';
  const child = spawn(command, args, { cwd, env: { PATH: process.env.PATH ?? '', HOME: cwd, ...env }, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  return { child, output: () => out };
}
const stopProcess = (child: ChildProcess): void => {
  try {
    process.kill(-child.pid!, 'SIGTERM');
  } catch {
    // already gone
  }
};

// curl, where the machine has it; else the stand-in in test/helpers/bin (the suite needs only Node,
// redis-server and openssl). The second case runs the stand-in either way, so it is tested too.
const hasCurl = spawnSync('curl', ['--version'], { stdio: 'ignore' }).error === undefined;
const standIn = join(ROOT, 'test/helpers/bin');

describe('Quickstart and production start', () => {
  const withStandIn: Record<string, string> = { PATH: `${standIn}:${process.env.PATH}` };
  it.each<[string, Record<string, string>]>([
    ['with curl', hasCurl ? {} : withStandIn],
    ['with the curl stand-in', withStandIn],
  ])('the dev-mode walk-through exchanges a dev proof and completes the task (%s)', async (_, env: Record<string, string>) => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const keys = join(tmp, `dev-keys-${port}`);
    const p = startProcess(process.execPath, [join(ROOT, 'dist/main.js')], ROOT, { PORT: String(port), LEASH_KEYS_DIR: keys });
    try {
      await waitFor('the dev broker', async () => (await fetch(`${url}/readyz`).catch(() => null))?.status === 200, 30_000, 100);
      const r = await sh(block(blocks, 'quickstart').replaceAll('http://127.0.0.1:8080', url), env);
      expectOk(r);
      expect(r.stdout).toMatch(/scope: 'artifacts:read'/);
      expect(r.stdout).toContain('"revoked":1');
    } finally {
      stopProcess(p.child);
    }
  });

  it('the production start runs the compiled broker on Redis with the example policy and generated keys', async () => {
    const dir = mkdtempSync(join(tmp, 'prod-'));
    for (const f of ['package.json', 'node_modules', 'dist', 'scripts', 'src', 'tsconfig.json']) symlinkSync(join(ROOT, f), join(dir, f));
    copyFileSync(join(ROOT, 'policy.example.yaml'), join(dir, 'policy.example.yaml'));
    const port = await freePort();
    const script = block(blocks, 'production').replaceAll('redis://127.0.0.1:6379', redis.url).replace('HOST=0.0.0.0', `HOST=127.0.0.1 PORT=${port}`);
    const p = startProcess('bash', ['-eo', 'pipefail', '-c', script], dir, {});
    try {
      await waitFor('the production broker', async () => (await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => null))?.status === 200, 60_000, 200)
        .catch((err: Error) => { throw new Error(`${err.message}: ${p.output()}`); });
      expect(existsSync(join(dir, 'policy.yaml'))).toBe(true);
      const meta = await (await fetch(`http://127.0.0.1:${port}/.well-known/oauth-authorization-server`)).json();
      expect(meta.issuer).toBe(EXAMPLE);
    } finally {
      stopProcess(p.child);
    }
  });
});

describe('Recipes', () => {
  it('GitHub Actions: the workflow gets a token, deploys with it, and completes its task', async () => {
    const job = (parse(block(blocks, 'github-actions')) as { jobs: { deploy: { env: Record<string, string>; steps: { run: string; id?: string; env?: Record<string, string> }[] } } }).jobs.deploy;
    const outputFile = join(tmp, 'github-output');
    writeFileSync(outputFile, '');
    const outputs: Record<string, string> = {};
    const expand = (s: string): string =>
      s.replaceAll('${{ github.run_id }}', '4242').replaceAll('${{ github.run_attempt }}', '1')
        .replace(/\$\{\{ steps\.leash\.outputs\.(\w+) \}\}/g, (_, k: string) => outputs[k] ?? '');
    const jobEnv = Object.fromEntries(Object.entries(job.env).map(([k, v]) => [k, sub(v)]));
    for (const step of job.steps) {
      if (step.run.startsWith('npm install --global leash')) continue;
      const env = { ...jobEnv, ACTIONS_ID_TOKEN_REQUEST_URL: ghTokenUrl, ACTIONS_ID_TOKEN_REQUEST_TOKEN: 'runner-token', GITHUB_OUTPUT: outputFile,
        ...Object.fromEntries(Object.entries(step.env ?? {}).map(([k, v]) => [k, expand(v)])) };
      expectOk(await sh(expand(step.run), env));
      for (const line of readFileSync(outputFile, 'utf8').split('\n')) {
        const m = /^(\w+)=(.*)$/.exec(line);
        if (m) outputs[m[1]!] = m[2]!;
      }
      if (step.id === 'leash') {
        const claims = claimsOf(outputs.token!);
        expect(claims).toMatchObject({ scope: 'deploy:write', aud: 'https://deploy.acme.internal', client_id: 'app-deploy', task_id: 'gh-4242-1' });
      }
    }
    expect(readFileSync(join(tmp, 'deployed-with'), 'utf8')).toBe(outputs.token);
    const lease = await broker.deps.store.get(claimsOf(outputs.token!).jti as string);
    expect(lease).toMatchObject({ status: 'revoked', task_id: 'gh-4242-1' });
  });

  it('GitLab CI: script and after_script (a shell of its own) get, use and end the token', async () => {
    const job = (parse(block(blocks, 'gitlab-ci')) as { deploy: { variables: Record<string, string>; script: string[]; after_script: string[]; before_script: string[] } }).deploy;
    expect(job.before_script).toEqual(['npm install --global leash']);
    const proof = await gitlab.mint({ ...fixtureClaims('gitlab-ci', 'branch-main'), iss: gitlab.url, aud: broker.url, jti: jti(),
      project_path: 'acme/app', sub: 'project_path:acme/app:ref_type:branch:ref:main' });
    const env = { ...Object.fromEntries(Object.entries(job.variables).map(([k, v]) => [k, sub(v)])), LEASH_ID_TOKEN: proof, CI_JOB_ID: '777' };
    expectOk(await sh(job.script.join('\n'), env));
    const token = readFileSync(join(tmp, 'deployed-with'), 'utf8');
    expect(claimsOf(token)).toMatchObject({ scope: 'artifacts:read', client_id: 'gitlab-artifacts', task_id: 'gl-777' });
    expectOk(await sh(job.after_script.join('\n'), env));
    expect(await broker.deps.store.get(claimsOf(token).jti as string)).toMatchObject({ status: 'revoked' });
  });

  it('Kubernetes: the container command exchanges its projected token', async () => {
    const spec = (parse(block(blocks, 'kubernetes')) as { spec: { volumes: { projected: { sources: { serviceAccountToken: { path: string } }[] } }[];
      containers: { env: { name: string; value: string }[]; command: string[]; volumeMounts: { mountPath: string }[] }[] } }).spec;
    const c = spec.containers[0]!;
    const mount = join(tmp, 'tokens');
    mkdirSync(mount, { recursive: true });
    const file = join(mount, spec.volumes[0]!.projected.sources[0]!.serviceAccountToken.path);
    const base = fixtureClaims('kubernetes-sa', 'pod-bound-default-projected') as { 'kubernetes.io': Record<string, unknown> };
    writeFileSync(file, await k8s.mint({ ...base, iss: k8s.url, aud: [broker.url], sub: 'system:serviceaccount:payments:api',
      'kubernetes.io': { ...base['kubernetes.io'], namespace: 'payments' } }));
    expect(c.command.slice(0, 2)).toEqual(['sh', '-c']);
    const cmd = c.command[2]!.replace('--from kubernetes', `--from kubernetes --proof-file ${file}`).replaceAll('/tmp/token', join(tmp, 'token'));
    const r = await sh(cmd, Object.fromEntries(c.env.map((e) => [e.name, sub(e.value)])));
    expectOk(r);
    expect(r.stdout).toContain('app started');
    expect(claimsOf(readFileSync(join(tmp, 'token'), 'utf8').trim())).toMatchObject({ scope: 'db:read', client_id: 'payments-db' });
  });

  const svid = (path: string): Promise<string> =>
    spire.mint({ ...fixtureClaims('spiffe-jwt-svid', 'es256-list-audience'), sub: `spiffe://acme.internal${path}`, aud: [broker.url] }, { omit: ['iss'] });

  it('SPIRE: a JWT-SVID from a file', async () => {
    writeFileSync(join(tmp, 'svid.jwt'), await svid('/ns/payments/web'));
    expectOk(await sh(block(blocks, 'spire').replaceAll('/tmp/token', join(tmp, 'token')), { LEASH_URL: broker.url }));
    expect(claimsOf(readFileSync(join(tmp, 'token'), 'utf8').trim())).toMatchObject({ scope: 'db:read', client_id: 'spire-db' });
  });

  it('an AI agent: a per-task token, then the task completes', async () => {
    writeFileSync(join(tmp, 'agent.jwt'), await svid('/agents/triage'));
    const r = await sh(block(blocks, 'agent'), { LEASH_URL: broker.url, AGENT_PROOF: join(tmp, 'agent.jwt') });
    expectOk(r);
    expect(r.stdout).toMatch(/task agent-[0-9a-f-]{36} complete: 1 lease revoked/);
  });

  it('a SPIFFE certificate for mutual TLS: issued to a key made in the job, verified by openssl', async () => {
    cpSync(join(await testKeysDir(), 'ca', 'root.pem'), join(tmp, 'root.pem'));
    const proof = await gh.mint({ ...fixtureClaims('github-actions', 'environment-production'), iss: gh.url, aud: broker.url, jti: jti(),
      sub: 'repo:acme/app:environment:production', repository: 'acme/app', ref: 'refs/heads/main' });
    writeFileSync(join(tmp, 'proof.jwt'), proof);
    const r = await sh(block(blocks, 'certificate'), { LEASH_URL: broker.url, PROOF_FILE: join(tmp, 'proof.jwt') });
    expectOk(r);
    expect(r.stdout).toContain('svc.pem: OK');
    const text = spawnSync('openssl', ['x509', '-in', join(tmp, 'svc.pem'), '-noout', '-ext', 'subjectAltName'], { encoding: 'utf8' }).stdout;
    expect(text).toContain('URI:spiffe://acme.internal/gh/acme/app');
  });
});
