import { Hono } from 'hono';
import { GRANT_TYPE_TOKEN_EXCHANGE, SUBJECT_TOKEN_TYPES, REQUESTABLE_TOKEN_TYPES, TOKEN_TYPE_X509 } from '../exchange/request.ts';

/** JWKS and RFC 8414 metadata. */
export function wellKnownRoutes(): Hono {
  const app = new Hono();
  app.get('/.well-known/jwks.json', (c) =>
    c.json(c.get('deps').keys.jwks(), 200, { 'Cache-Control': 'public, max-age=300' }),
  );
  app.get('/.well-known/oauth-authorization-server', (c) => {
    const iss = c.get('deps').config.issuer;
    return c.json({
      issuer: iss,
      token_endpoint: `${iss}/token`,
      introspection_endpoint: `${iss}/introspect`,
      revocation_endpoint: `${iss}/revoke`,
      jwks_uri: `${iss}/.well-known/jwks.json`,
      grant_types_supported: [GRANT_TYPE_TOKEN_EXCHANGE],
      response_types_supported: [],
      token_endpoint_auth_methods_supported: ['none'],
      introspection_endpoint_auth_methods_supported: ['bearer'],
      revocation_endpoint_auth_methods_supported: ['none'],
      scopes_supported: ['leash:introspect', 'leash:leases:read', 'leash:leases:revoke', 'leash:audit:read', 'leash:metrics', 'leash:admin'],
      subject_token_types_supported: SUBJECT_TOKEN_TYPES,
      // Certificates only where a CA is loaded: a broker without one refuses them.
      requested_token_types_supported: c.get('deps').ca ? REQUESTABLE_TOKEN_TYPES : REQUESTABLE_TOKEN_TYPES.filter((t) => t !== TOKEN_TYPE_X509),
      token_endpoint_auth_signing_alg_values_supported: undefined,
      access_token_signing_alg_values_supported: [...new Set(c.get('deps').keys.all().map((k) => k.alg))],
      crl_uri: c.get('deps').ca ? `${iss}/crl` : undefined,
      service_documentation: `${iss}/docs`,
    });
  });
  return app;
}
