/**
 * A workload-proof issuer for the bench: OIDC discovery and a JWKS over real HTTP on 127.0.0.1
 * (the broker fetches them once, then verifies from its warm cache), and bulk minting of
 * GitHub-Actions-shaped ID tokens (claims of test/fixtures/claims/github-actions.json, example
 * push-main), each with its own jti so the single-use replay guard accepts every one. They are
 * signed RS256 with a 2048-bit key, as GitHub's (and every CI issuer's in the fixtures) are;
 * `ES256` is there for issuers that sign with P-256 (SPIRE, some Kubernetes clusters).
 *
 * Unlike test/helpers/fake-issuer.ts it mints on worker threads (one per core): the bench needs
 * tens of thousands of proofs before each timed run and should not spend most of its time there.
 */
import { generateKeyPairSync, randomUUID, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { cpus } from 'node:os';
import { Worker } from 'node:worker_threads';

export const BENCH_AUDIENCE = 'https://leash.bench';

export type ProofAlg = 'RS256' | 'ES256';

export interface MintOptions {
  /** Distinct subjects (repositories `<repoPrefix>-0` ..); default 1000. */
  subjects?: number;
  repoPrefix?: string;
  /** One fixed repository name instead (every proof has the same subject). */
  repo?: string;
  org?: string;
}

export interface ProofIssuer {
  url: string;
  jwksHits(): number;
  /**
   * Mints `count` distinct proofs. Proof i is for repository `octo-org/<repoPrefix>-<i % subjects>`
   * (so `subjects` distinct `sub` values), ref refs/heads/main, iat now, nbf now-600, exp now+300
   * (the fixture's spacing).
   */
  mint(count: number, opts?: MintOptions): Promise<string[]>;
  close(): Promise<void>;
}

const FIXTURE = new URL('../test/fixtures/claims/github-actions.json', import.meta.url);

function fixtureClaims(): Record<string, unknown> {
  const doc = JSON.parse(readFileSync(FIXTURE, 'utf8')) as { examples: { name: string; claims: Record<string, unknown> }[] };
  const ex = doc.examples.find((e) => e.name === 'push-main');
  if (!ex) throw new Error('fixture push-main not found in test/fixtures/claims/github-actions.json');
  return structuredClone(ex.claims);
}

// Plain JS (workers evaluate it directly). Replaces __N__ with the subject number and __JTI__ with
// a fresh UUID in a JSON template, then signs RS256 or ES256 (JOSE r||s encoding).
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createPrivateKey, sign, randomUUID } = require('node:crypto');
parentPort.on('message', ({ pem, header, template, start, count, subjects }) => {
  const key = createPrivateKey(pem);
  const h = Buffer.from(JSON.stringify(header)).toString('base64url');
  const out = new Array(count);
  for (let k = 0; k < count; k++) {
    const n = String((start + k) % subjects);
    const payload = template.replaceAll('__N__', n).replace('__JTI__', randomUUID());
    const input = h + '.' + Buffer.from(payload).toString('base64url');
    const options = header.alg === 'ES256' ? { key, dsaEncoding: 'ieee-p1363' } : key;
    out[k] = input + '.' + sign('sha256', Buffer.from(input), options).toString('base64url');
  }
  parentPort.postMessage(out);
});
`;

export async function startProofIssuer(alg: ProofAlg = 'RS256'): Promise<ProofIssuer> {
  const { privateKey, publicKey } = alg === 'ES256' ? generateKeyPairSync('ec', { namedCurve: 'P-256' }) : generateKeyPairSync('rsa', { modulusLength: 2048 });
  const kid = randomUUID();
  const jwk = { ...(publicKey.export({ format: 'jwk' }) as Record<string, unknown>), kid, alg, use: 'sig' };
  let hits = 0;
  let url = '';
  const server: Server = createServer((req, res) => {
    const send = (body: unknown): void => {
      const text = JSON.stringify(body);
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    };
    if (req.url === '/.well-known/openid-configuration') return send({ issuer: url, jwks_uri: `${url}/.well-known/jwks`, id_token_signing_alg_values_supported: [alg] });
    if (req.url === '/.well-known/jwks') {
      hits++;
      return send({ keys: [jwk] });
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const pem = (privateKey as KeyObject).export({ format: 'pem', type: 'pkcs8' }) as string;
  const threads = Math.max(1, Math.min(4, cpus().length));
  const workers = Array.from({ length: threads }, () => new Worker(WORKER_SOURCE, { eval: true }));

  const run = (w: Worker, msg: unknown): Promise<string[]> =>
    new Promise((resolve, reject) => {
      const onMessage = (out: string[]): void => { w.off('error', onError); resolve(out); };
      const onError = (err: Error): void => { w.off('message', onMessage); reject(err); };
      w.once('message', onMessage);
      w.once('error', onError);
      w.postMessage(msg);
    });

  return {
    url,
    jwksHits: () => hits,
    async mint(count, opts = {}) {
      const subjects = Math.max(1, opts.subjects ?? 1000);
      const repoPrefix = opts.repoPrefix ?? 'app';
      const org = opts.org ?? 'octo-org';
      const now = Math.floor(Date.now() / 1000);
      const repo = opts.repo !== undefined ? `${org}/${opts.repo}` : `${org}/${repoPrefix}-__N__`;
      const claims = {
        ...fixtureClaims(),
        jti: '__JTI__',
        iss: url,
        aud: BENCH_AUDIENCE,
        sub: `repo:${repo}:ref:refs/heads/main`,
        repository: repo,
        repository_owner: org,
        workflow_ref: `${repo}/.github/workflows/deploy.yml@refs/heads/main`,
        job_workflow_ref: `${repo}/.github/workflows/deploy.yml@refs/heads/main`,
        iat: now,
        nbf: now - 600,
        exp: now + 300,
      };
      const template = JSON.stringify(claims);
      const header = { alg, typ: 'JWT', kid };
      const per = Math.ceil(count / workers.length);
      const parts = await Promise.all(
        workers.map((w, i) => {
          const start = i * per;
          const n = Math.max(0, Math.min(per, count - start));
          return n === 0 ? Promise.resolve([]) : run(w, { pem, header, template, start, count: n, subjects });
        }),
      );
      return parts.flat();
    },
    async close() {
      await Promise.all(workers.map((w) => w.terminate()));
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
