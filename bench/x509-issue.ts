/**
 * Certificates per second on one core: parse + verify a P-256 CSR, check it against a grant, and
 * issue a leaf signed by a dev CA. Prints one line per CA key type.
 *   tsx bench/x509-issue.ts [seconds]
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadCertificateAuthority } from '../src/mint/x509/ca-store.ts';
import { checkCsrAgainstGrant, parseCsr } from '../src/mint/x509/csr.ts';
import { generateDevCa } from '../src/mint/x509/generate-ca.ts';
import type { CaGenerationKeyType } from '../src/mint/x509/generate-ca.ts';
import { makeCsr } from '../test/helpers/csr.ts';

const seconds = Number(process.argv[2] ?? 2);
const SPIFFE = 'spiffe://acme.internal/gh/acme/app';
const grant = { uri_sans: [SPIFFE], dns_sans: ['app.acme.internal'], key_types: ['ec-p256' as const] };

async function measure(caKeyType: CaGenerationKeyType, csrPem: string): Promise<number> {
  const dir = await mkdtemp(join(tmpdir(), 'leash-bench-x509-'));
  try {
    await generateDevCa(dir, { keyType: caKeyType });
    const ca = await loadCertificateAuthority(dir, { crlUrl: 'http://127.0.0.1:8080/crl' });
    const issueOnce = (): void => {
      const csr = parseCsr(csrPem);
      checkCsrAgainstGrant(csr, grant);
      const now = Math.floor(Date.now() / 1000);
      ca.issue({
        spkiDer: csr.spkiDer,
        keyType: csr.keyType,
        uriSans: grant.uri_sans,
        dnsSans: grant.dns_sans,
        notBefore: now - 60,
        notAfter: now + 600,
        serverAuth: false,
      });
    };
    for (let i = 0; i < 200; i++) issueOnce(); // warm-up for the JIT
    let count = 0;
    const start = process.hrtime.bigint();
    const budget = BigInt(Math.round(seconds * 1e9));
    let elapsed = 0n;
    while (elapsed < budget) {
      for (let i = 0; i < 50; i++) issueOnce();
      count += 50;
      elapsed = process.hrtime.bigint() - start;
    }
    return count / (Number(elapsed) / 1e9);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const { csrPem } = await makeCsr({ keyType: 'ec-p256', uriSans: [SPIFFE] });
for (const caKeyType of ['ec-p256', 'ec-p384', 'ed25519'] as const) {
  const rate = await measure(caKeyType, csrPem);
  console.log(`x509 issue (P-256 CSR, ${caKeyType} CA): ${Math.round(rate)} certificates/s (${(1e3 / rate).toFixed(3)} ms each)`);
}
