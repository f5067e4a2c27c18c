/**
 * Section 5: certificates per second. The full exchange (proof verification, replay guard,
 * policy, lease write, audit) with requested_token_type x509-certificate and an EC P-256 CSR, so
 * each answer is a leaf certificate signed by the dev intermediate CA. 64 in flight, distinct
 * proofs; the CSR (only its public key is used) is the same for every request.
 */
import { Redis } from 'ioredis';
import { makeCsr } from '../test/helpers/csr.ts';
import { loadCertificateAuthority } from '../src/mint/x509/ca-store.ts';
import { checkCsrAgainstGrant, parseCsr } from '../src/mint/x509/csr.ts';
import { X509_TYPE, benchKeysDir, benchPolicy, firstExchange, startBroker, startRedis } from './env.ts';
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { RESULTS_DIR } from './child.ts';
import { mintProofs, proofLoad, proofsFor, type ExchangeProfile, type LoadConfig } from './exchange-load.ts';
import { summarizeProfile } from './profile.ts';
import type { LoadResult } from './load-generator.ts';
import { startProofIssuer } from './proof-issuer.ts';
import { log, redisPid } from './util.ts';

export function isCertificateAnswer(body: string): boolean {
  try {
    const j = JSON.parse(body) as { access_token?: string; token_type?: string; certificate_chain?: unknown };
    return j.token_type === 'N_A' && typeof j.access_token === 'string' && j.access_token.startsWith('-----BEGIN CERTIFICATE-----') && Array.isArray(j.certificate_chain);
  } catch {
    return false;
  }
}

export interface CertsResult {
  load: LoadResult;
  /** With BENCH_PROFILE=1: a second run on the same broker under the CPU profiler. */
  profile: ExchangeProfile | null;
  /** CSR parse + grant check + leaf issue alone, in this process: CPU microseconds per certificate. */
  issueOnlyCpuUs: number;
}

/** The certificate step alone (what bench/x509-issue.ts measures), as CPU time so other load does not skew it. */
async function issueOnlyCpuUs(csrPem: string, seconds: number): Promise<number> {
  const ca = await loadCertificateAuthority(await benchKeysDir(), { crlUrl: 'http://127.0.0.1:8080/crl' });
  const grant = { uri_sans: ['spiffe://acme.internal/gh/octo-org/app-1'], dns_sans: [], key_types: ['ec-p256' as const] };
  const once = (): void => {
    const csr = parseCsr(csrPem);
    checkCsrAgainstGrant(csr, grant);
    const now = Math.floor(Date.now() / 1000);
    ca.issue({ spkiDer: csr.spkiDer, keyType: csr.keyType, uriSans: grant.uri_sans, dnsSans: grant.dns_sans, notBefore: now - 30, notAfter: now + 600, serverAuth: false });
  };
  for (let i = 0; i < 200; i++) once();
  const c0 = process.cpuUsage();
  const deadline = performance.now() + seconds * 1000;
  let n = 0;
  while (performance.now() < deadline && n < 200_000) {
    for (let i = 0; i < 20; i++) once();
    n += 20;
  }
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / n;
}

export async function benchCerts(cfg: LoadConfig, opts: { expectedRps: number; profile?: boolean }): Promise<CertsResult> {
  const redisServer = await startRedis();
  const issuer = await startProofIssuer();
  const redis = new Redis(redisServer.url);
  let broker: Awaited<ReturnType<typeof startBroker>> | undefined;
  try {
    const { csrPem } = await makeCsr({ keyType: 'ec-p256' });
    const extra = `&requested_token_type=${encodeURIComponent(X509_TYPE)}&csr=${encodeURIComponent(csrPem)}`;
    broker = await startBroker({ name: 'leash-certs', redisUrl: redisServer.url, policyPath: benchPolicy(issuer.url), role: 'all' });
    const warm = await issuer.mint(100, { repoPrefix: 'warm' });
    let w = 0;
    const first = await firstExchange(broker.url, () => warm[w++ % warm.length]!, extra);
    if (!isCertificateAnswer(JSON.stringify(first))) throw new Error(`the certificate exchange did not answer a certificate: ${JSON.stringify(first).slice(0, 300)}`);
    const proofs = await mintProofs(issuer, proofsFor(cfg, opts.expectedRps), { repoPrefix: 'cert' });
    const load = await proofLoad('Leash certificate exchange (P-256 CSR)', [broker.url], proofs, cfg, {
      extra,
      check: isCertificateAnswer,
      cpuOf: { broker: broker.pid, redis: await redisPid(redis) },
    });
    let profile: ExchangeProfile | null = null;
    if (opts.profile) {
      const more = await mintProofs(issuer, proofsFor(cfg, opts.expectedRps), { repoPrefix: 'certprof' });
      const file = join(RESULTS_DIR, 'profiles', 'certificates.cpuprofile');
      mkdirSync(dirname(file), { recursive: true });
      const b = broker;
      let started: Promise<void> = Promise.reject(new Error('the measured window never opened'));
      started.catch(() => undefined);
      const profLoad = await proofLoad('Leash certificate exchange under the CPU profiler', [b.url], more, { ...cfg, warmupMs: 1_000, durationMs: Math.min(cfg.durationMs, 8_000) }, {
        extra,
        check: isCertificateAnswer,
        cpuOf: { broker: b.pid },
        onWindowStart: () => {
          started = b.profileStart();
          started.catch(() => undefined);
        },
      });
      await started;
      await b.profileStop(file);
      profile = { file, load: profLoad, summary: summarizeProfile(file) };
    }
    await broker.stop();
    broker = undefined;
    const issueUs = await issueOnlyCpuUs(csrPem, 2);
    log(`certificate issue alone (CSR parse + checks + leaf signed by the P-256 CA): ${issueUs.toFixed(0)} us CPU each`);
    return { load, issueOnlyCpuUs: issueUs, profile };
  } finally {
    await broker?.stop();
    redis.disconnect();
    await issuer.close();
    await redisServer.destroy();
  }
}
