/**
 * How long a revoked certificate waits for its CRL entry while exchanges keep the host busy. The
 * entry is one of the revocation's effects, which the worker writes, and a `LEASH_ROLE=worker`
 * process runs at `LEASH_WORKER_NICE` (default 10): on a host whose cores are all taken, it gets the
 * CPU the API leaves. Beside one API process (LEASH_ROLE=api) that CRL_WAIT_CONCURRENCY (64)
 * exchanges in flight keep saturated, a worker at each nice value of CRL_WAIT_NICE ("10,0") is
 * started in turn, CRL_WAIT_ROUNDS (4) rounds. In each turn CRL_WAIT_SAMPLES (50) certificates are
 * issued and revoked through the operator API one at a time, and GET /crl is read every 5 ms until
 * it lists the revoked serial. Prints the wait from the revocation's answer to that CRL, per nice.
 * `npm run build && npx tsx bench/crl-wait.ts` (the brokers run the compiled build).
 */
import 'reflect-metadata';
import { X509Certificate, X509Crl } from '@peculiar/x509';
import { makeCsr } from '../test/helpers/csr.ts';
import { X509_TYPE, benchPolicy, exchangeBody, exchangeOnce, firstExchange, startBroker, startRedis } from './env.ts';
import { runLoad } from './load-generator.ts';
import { startProofIssuer } from './proof-issuer.ts';
import { envInt, log, sleep, summarize } from './util.ts';

const concurrency = envInt('CRL_WAIT_CONCURRENCY', 64);
const samples = envInt('CRL_WAIT_SAMPLES', 50);
const rounds = envInt('CRL_WAIT_ROUNDS', 4);
const nices = (process.env.CRL_WAIT_NICE ?? '10,0').split(',').map((s) => Number(s.trim()));
if (nices.some((n) => !Number.isInteger(n) || n < 0 || n > 19)) throw new Error('CRL_WAIT_NICE: a comma-separated list of nice values from 0 to 19');
/** Exchanges the background load may use per turn: more than a saturated API answers in one. */
const LOAD_PROOFS = envInt('CRL_WAIT_LOAD_PROOFS', 60_000);

/** A serial as hex without leading zeros, as the CRL and the certificate may pad it differently. */
const serialKey = (hex: string): string => hex.toLowerCase().replace(/^0+/, '');

async function crlSerials(url: string): Promise<Set<string>> {
  const res = await fetch(`${url}/crl`);
  if (res.status !== 200) throw new Error(`GET /crl answered ${res.status}`);
  const crl = new X509Crl(new Uint8Array(await res.arrayBuffer()));
  return new Set(crl.entries.map((e) => serialKey(e.serialNumber)));
}

const redisServer = await startRedis();
const issuer = await startProofIssuer('RS256');
const policyPath = benchPolicy(issuer.url, { maxActive: 100_000 });
const api = await startBroker({ name: 'leash-crl-api', redisUrl: redisServer.url, policyPath, role: 'api' });
const { csrPem } = await makeCsr({ keyType: 'ec-p256' });
const certExtra = `&requested_token_type=${encodeURIComponent(X509_TYPE)}&csr=${encodeURIComponent(csrPem)}`;
const [opsProof] = await issuer.mint(1, { repo: 'ops' });
const operator = (await firstExchange(api.url, () => opsProof!)) as { access_token: string };
const waits = new Map<number, number[]>(nices.map((n) => [n, []]));
let worker: Awaited<ReturnType<typeof startBroker>> | undefined;
try {
  for (let round = 0; round < rounds; round++) {
    for (const nice of nices) {
      worker = await startBroker({ name: `leash-crl-worker-${nice}`, redisUrl: redisServer.url, policyPath, role: 'worker', issuer: api.issuer, env: { LEASH_WORKER_NICE: String(nice) } });
      const loadProofs = await issuer.mint(LOAD_PROOFS, { repoPrefix: `load-${round}-${nice}` });
      const certProofs = await issuer.mint(samples, { repoPrefix: `crl-${round}-${nice}` });
      let sampling = true;
      const load = runLoad({
        name: `exchanges beside the nice ${nice} worker`,
        targets: [api.url],
        concurrency,
        warmupMs: 2_000,
        durationMs: 600_000,
        quietWaitMs: 0,
        next: (i) => (sampling && i < loadProofs.length ? { path: '/token', body: exchangeBody(loadProofs[i]!) } : null),
      });
      await sleep(2_000);
      const got: number[] = [];
      for (const proof of certProofs) {
        const cert = await exchangeOnce(api.url, proof, certExtra);
        if (cert.status !== 200) throw new Error(`certificate exchange answered ${cert.status}: ${JSON.stringify(cert.body).slice(0, 200)}`);
        const serial = serialKey(new X509Certificate(cert.body.access_token as string).serialNumber);
        const res = await fetch(`${api.url}/v1/leases/${cert.body.lease_id as string}/revoke`, {
          method: 'POST',
          headers: { authorization: `Bearer ${operator.access_token}`, 'content-type': 'application/json' },
          body: JSON.stringify({ reason: 'crl-wait bench' }),
        });
        if (res.status !== 200) throw new Error(`revoke answered ${res.status}: ${await res.text()}`);
        await res.arrayBuffer();
        const revokedAt = performance.now();
        while (!(await crlSerials(api.url)).has(serial)) {
          if (performance.now() - revokedAt > 60_000) throw new Error(`serial ${serial} not on the CRL after 60 s`);
          await sleep(5);
        }
        got.push(performance.now() - revokedAt);
      }
      sampling = false;
      const r = await load;
      waits.get(nice)!.push(...got);
      const s = summarize(got);
      log(`round ${round + 1}, worker at nice ${nice}: CRL entry after p50 ${s.p50.toFixed(0)} ms, p99 ${s.p99.toFixed(0)} ms, max ${s.max.toFixed(0)} ms; exchanges beside it ${r.rps.toFixed(0)}/s, p99 ${r.latencyMs.p99.toFixed(1)} ms, ${r.errors} errors${r.issued >= loadProofs.length ? " (the load's proofs ran out)" : ""}`);
      await worker.stop();
      worker = undefined;
    }
  }
  for (const [nice, all] of waits) {
    const s = summarize(all);
    process.stdout.write(`worker at nice ${nice}: ${all.length} revocations, CRL entry after p50 ${s.p50.toFixed(0)} ms, p99 ${s.p99.toFixed(0)} ms, max ${s.max.toFixed(0)} ms\n`);
  }
} finally {
  await worker?.stop();
  await api.stop();
  await issuer.close();
  await redisServer.destroy();
}
process.exit(0);
