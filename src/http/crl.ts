import { Hono } from 'hono';
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
  app.get('/crl', async (c) => {
    const deps = c.get('deps');
    if (!deps.ca) throw new LeashError('not_found', 'this broker has no certificate authority configured');
    const nowMs = deps.now();
    const now = Math.floor(nowMs / 1000);
    const entries = await deps.store.crlEntries(crlKeepsSince(now, deps.config.clockSkewSeconds));
    let crlNumber = BigInt(nowMs);
    if (crlNumber <= lastNumber) crlNumber = lastNumber + 1n;
    lastNumber = crlNumber;
    const der = deps.ca.buildCrl({
      entries: entries.map((e) => ({ serialHex: e.serial, revokedAt: e.revoked_at })),
      crlNumber,
      thisUpdate: now - deps.config.clockSkewSeconds,
      nextUpdate: now + CRL_VALIDITY_SECONDS,
    });
    return c.body(new Uint8Array(der), 200, { 'Content-Type': 'application/pkix-crl', 'Cache-Control': 'no-cache' });
  });
  return app;
}
