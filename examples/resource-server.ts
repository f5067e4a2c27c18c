/**
 * A resource server protected by Leash tokens: GET /deploy needs scope deploy:write.
 *
 *   LEASH_ISSUER=http://127.0.0.1:8080 AUDIENCE=https://deploy.acme.internal \
 *   LEASH_INTROSPECT_TOKEN=<a token with leash:introspect> npx tsx examples/resource-server.ts
 *
 * Without LEASH_INTROSPECT_TOKEN it trusts signatures and expiry alone (revocation then takes
 * effect only when the token expires).
 */
import { Hono } from 'hono';
import { serve } from '@hono/node-server';
import { pathToFileURL } from 'node:url';
import { createLeashVerifier, leashAuth, type LeashVerifier } from 'leash/verify';

export function createResourceServer(verifier: LeashVerifier): Hono {
  const app = new Hono();
  app.get('/healthz', (c) => c.json({ status: 'ok' }));
  app.get('/deploy', leashAuth(verifier, { scopes: ['deploy:write'] }), (c) => {
    const claims = c.var.leash;
    // The lease id (jti) lets the operator trace this action back to the exchange that allowed it.
    return c.json({ deploying: true, for: claims.sub, lease_id: claims.jti, task_id: claims.task_id ?? null });
  });
  return app;
}

function startFromEnvironment(): void {
  const issuer = process.env.LEASH_ISSUER ?? 'http://127.0.0.1:8080';
  const introspectToken = process.env.LEASH_INTROSPECT_TOKEN;
  const verifier = createLeashVerifier({
    issuer,
    audience: process.env.AUDIENCE ?? 'https://deploy.acme.internal',
    ...(introspectToken ? { introspection: { token: introspectToken } } : {}),
  });
  const port = Number(process.env.PORT ?? 9090);
  serve({ fetch: createResourceServer(verifier).fetch, port, hostname: '127.0.0.1' }, () => {
    console.log(`resource server on http://127.0.0.1:${port}/deploy, trusting ${issuer}`);
  });
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) startFromEnvironment();
