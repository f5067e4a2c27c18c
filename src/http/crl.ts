import { Hono } from 'hono';
import { LeashError } from '../errors.ts';

/** How long relying parties may cache the CRL; short, because certificates are short-lived too. */
export const CRL_VALIDITY_SECONDS = 300;

/**
 * GET /crl: DER CRL of revoked certificates that have not expired, signed by the issuing CA.
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
    const entries = await deps.store.crlEntries(now);
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
