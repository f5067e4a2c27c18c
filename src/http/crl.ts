import { Hono, type Context } from 'hono';
import type { CrlInput } from '../mint/x509/ca-store.ts';
import { LeashError } from '../errors.ts';

/** How long relying parties may cache the CRL; short, because certificates are short-lived too. */
export const CRL_VALIDITY_SECONDS = 300;

/**
 * The oldest notAfter a CRL built at `nowSeconds` still lists. thisUpdate is backdated by the skew,
 * so a CRL lists every revoked certificate whose notAfter is at or after its thisUpdate (a relying
 * party whose clock lags within the skew still finds it), and keeps it one CRL lifetime more, so
 * CRLs issued after the certificate expired list it too (RFC 5280 3.3).
 */
export function crlKeepsSince(nowSeconds: number, clockSkewSeconds: number): number {
  return nowSeconds - clockSkewSeconds - CRL_VALIDITY_SECONDS;
}

/**
 * GET /crl: DER CRL of revoked certificates, kept past their expiry (crlKeepsSince), signed by the issuing CA.
 * The CRL number is the signing time in milliseconds: it increases across replicas and
 * restarts without shared state.
 */
export function crlRoutes(): Hono {
  const app = new Hono();
  let lastNumber = 0n;
  const serve = async (c: Context, build: ((input: CrlInput) => Buffer) | undefined): Promise<Response> => {
    const deps = c.get('deps');
    if (!build) throw new LeashError('not_found', deps.ca ? 'no CA of this broker has this key id' : 'this broker has no certificate authority configured');
    const nowMs = deps.now();
    const now = Math.floor(nowMs / 1000);
    const entries = await deps.store.crlEntries(crlKeepsSince(now, deps.config.clockSkewSeconds));
    let crlNumber = BigInt(nowMs);
    if (crlNumber <= lastNumber) crlNumber = lastNumber + 1n;
    lastNumber = crlNumber;
    // Every CA's CRL lists every revoked serial: serials are 126 random bits, so one CA's never
    // names a certificate of another, and no lease has to remember which CA signed it.
    const der = build({
      entries: entries.map((e) => ({ serialHex: e.serial, revokedAt: e.revoked_at })),
      crlNumber,
      thisUpdate: now - deps.config.clockSkewSeconds,
      nextUpdate: now + CRL_VALIDITY_SECONDS,
    });
    return c.body(new Uint8Array(der), 200, { 'Content-Type': 'application/pkix-crl', 'Cache-Control': 'no-cache' });
  };
  app.get('/crl', (c) => serve(c, c.get('deps').ca?.buildCrl));
  // The URL each certificate names: its own CA's CRL, served while that CA is current or retired.
  app.get('/crl/:keyId', (c) => {
    const deps = c.get('deps');
    const keyId = c.req.param('keyId').toLowerCase();
    const ca = deps.ca?.keyIdHex === keyId ? deps.ca : deps.retiredCas.find((r) => r.keyIdHex === keyId && r.notAfter * 1000 > deps.now());
    return serve(c, ca?.buildCrl);
  });
  return app;
}
