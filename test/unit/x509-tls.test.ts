import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { afterAll, describe, expect, it } from 'vitest';
import { loadCertificateAuthority } from '../../src/mint/x509/ca-store.ts';
import type { CertificateAuthority } from '../../src/mint/x509/ca-store.ts';
import { checkCsrAgainstGrant, parseCsr } from '../../src/mint/x509/csr.ts';
import { generateDevCa } from '../../src/mint/x509/generate-ca.ts';
import type { CaGenerationKeyType } from '../../src/mint/x509/generate-ca.ts';
import { makeCsr } from '../helpers/csr.ts';
import type { TestCsrKeyType } from '../helpers/csr.ts';

const dir = mkdtempSync(join(tmpdir(), 'leash-x509-tls-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const CLIENT_ID = 'spiffe://acme.internal/agent/42';

async function devCa(name: string, keyType: CaGenerationKeyType): Promise<CertificateAuthority> {
  await generateDevCa(join(dir, name), { keyType });
  return loadCertificateAuthority(join(dir, name), { crlUrl: 'http://127.0.0.1:8080/crl' });
}

/** A key and a certificate chain from the full CSR path, as a TLS peer would use them. */
async function credential(ca: CertificateAuthority, keyType: TestCsrKeyType, sans: { uri: string[]; dns: string[] }, serverAuth: boolean) {
  const { csrPem, privateKeyPem } = await makeCsr({ keyType, uriSans: sans.uri, dnsSans: sans.dns });
  const csr = parseCsr(csrPem);
  checkCsrAgainstGrant(csr, { uri_sans: sans.uri, dns_sans: sans.dns, key_types: ['ec-p256', 'ed25519', 'rsa-2048'] });
  const now = Math.floor(Date.now() / 1000);
  const leaf = ca.issue({ spkiDer: csr.spkiDer, keyType: csr.keyType, uriSans: sans.uri, dnsSans: sans.dns, notBefore: now - 60, notAfter: now + 600, serverAuth });
  return { key: privateKeyPem, cert: leaf.pem + ca.chainPem.join('') };
}

interface Outcome {
  /** What the server saw of the client, if the handshake was accepted. */
  peer?: { authorized: boolean; san: string | undefined };
  serverRejected: boolean;
}

/** One mutual-TLS exchange: the server trusts only `ca`'s root and demands a client certificate. */
async function handshake(ca: CertificateAuthority, client?: { key: string; cert: string }): Promise<Outcome> {
  const serverCred = await credential(ca, 'ec-p256', { uri: ['spiffe://acme.internal/server'], dns: ['localhost'] }, true);
  let serverRejected = false;
  const server = tls.createServer({ ...serverCred, ca: [ca.rootPem], requestCert: true, rejectUnauthorized: true }, (socket) => {
    const san = socket.getPeerCertificate().subjectaltname;
    socket.end(JSON.stringify({ authorized: socket.authorized, san }));
  });
  server.on('tlsClientError', () => {
    serverRejected = true;
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  try {
    const body = await new Promise<string>((resolve) => {
      const socket = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: [ca.rootPem], ...(client ?? {}) });
      let data = '';
      socket.setEncoding('utf8');
      socket.on('data', (chunk: string) => (data += chunk));
      socket.on('error', () => undefined); // a rejected client sees an alert; the outcome is judged by what arrived
      socket.on('close', () => resolve(data));
    });
    return body ? { peer: JSON.parse(body) as Outcome['peer'] & object, serverRejected } : { serverRejected };
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

describe('mutual TLS with issued certificates', () => {
  it.each([
    ['ec-p256', 'ec-p256'],
    ['ec-p256', 'rsa-2048'],
    ['ed25519', 'ed25519'],
  ] as const)('a server trusting the %s dev root accepts a %s client certificate', async (caType, clientKey) => {
    const ca = await devCa(`ok-${caType}-${clientKey}`, caType);
    const client = await credential(ca, clientKey, { uri: [CLIENT_ID], dns: [] }, false);
    const outcome = await handshake(ca, client);
    expect(outcome.serverRejected).toBe(false);
    expect(outcome.peer).toEqual({ authorized: true, san: `URI:${CLIENT_ID}` });
  });

  it('rejects a client certificate from another CA, and a client without one', async () => {
    const ca = await devCa('trusted', 'ec-p256');
    const other = await devCa('other', 'ec-p256');
    const stranger = await credential(other, 'ec-p256', { uri: [CLIENT_ID], dns: [] }, false);
    const foreign = await handshake(ca, stranger);
    expect(foreign.peer).toBeUndefined();
    expect(foreign.serverRejected).toBe(true);
    const anonymous = await handshake(ca);
    expect(anonymous.peer).toBeUndefined();
    expect(anonymous.serverRejected).toBe(true);
  });
});
