import { Hono } from 'hono';
import { LeashError } from '../errors.ts';
import { readBody } from '../request/read-body.ts';
import type { DevIssuer } from './dev-issuer.ts';

/** /dev: discovery, JWKS and POST /dev/proof for the dev issuer. */
export function devIssuerRoutes(issuer: DevIssuer): Hono {
  const app = new Hono();
  app.get('/.well-known/openid-configuration', (c) =>
    c.json({
      issuer: issuer.url,
      jwks_uri: `${issuer.url}/jwks.json`,
      id_token_signing_alg_values_supported: ['ES256'],
      response_types_supported: ['id_token'],
      subject_types_supported: ['public'],
    }),
  );
  app.get('/jwks.json', (c) => c.json(issuer.jwks()));
  app.post('/proof', async (c) => {
    const raw = await readBody(c, 16_384);
    let claims: unknown = {};
    if (raw.trim() !== '') {
      try {
        claims = JSON.parse(raw);
      } catch {
        throw new LeashError('bad_request', 'the body must be a JSON object of claims');
      }
    }
    if (typeof claims !== 'object' || claims === null || Array.isArray(claims)) {
      throw new LeashError('bad_request', 'the body must be a JSON object of claims');
    }
    const token = issuer.mint(claims as Record<string, unknown>);
    return c.json({ id_token: token, token_type: 'urn:ietf:params:oauth:token-type:id_token', issuer: issuer.url });
  });
  return app;
}
