/**
 * Child-process entry for baseline B: panva's oidc-provider 8 issuing JWT access tokens by
 * client_credentials. features.clientCredentials and features.resourceIndicators are on; the one
 * resource server has accessTokenFormat 'jwt' signed ES256 with a key from `jwks`; the one client
 * authenticates with client_secret_basic. JWT access tokens are not stored (stateless endpoint).
 */
import { createServer, type Server } from 'node:http';
import { generateKeyPairSync } from 'node:crypto';
// @ts-expect-error oidc-provider 8 ships no type declarations
import Provider, { errors } from 'oidc-provider';
import { freePort } from '../../test/helpers/redis-server.ts';
import { serveChild } from '../child.ts';
import { OIDC_CLIENT_ID, OIDC_CLIENT_SECRET, OIDC_RESOURCE, OIDC_SCOPE } from './oidc-constants.ts';

serveChild(async () => {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = { ...(privateKey.export({ format: 'jwk' }) as Record<string, unknown>), kid: 'bench-es256', alg: 'ES256', use: 'sig' };
  const provider = new Provider(url, {
    clients: [
      {
        client_id: OIDC_CLIENT_ID,
        client_secret: OIDC_CLIENT_SECRET,
        grant_types: ['client_credentials'],
        redirect_uris: [],
        response_types: [],
        token_endpoint_auth_method: 'client_secret_basic',
        id_token_signed_response_alg: 'ES256',
        scope: OIDC_SCOPE,
      },
    ],
    jwks: { keys: [jwk] },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => OIDC_RESOURCE,
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx: unknown, resourceIndicator: string) => {
          if (resourceIndicator !== OIDC_RESOURCE) throw new errors.InvalidTarget();
          return { scope: OIDC_SCOPE, audience: OIDC_RESOURCE, accessTokenTTL: 600, accessTokenFormat: 'jwt', jwt: { sign: { alg: 'ES256' } } };
        },
      },
    },
    scopes: OIDC_SCOPE.split(' '),
    cookies: { keys: ['bench-cookie-key-0123456789abcdef'] },
    ttl: { ClientCredentials: 600 },
  });
  provider.proxy = false;
  const server: Server = createServer(provider.callback());
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  return { url, close: () => new Promise<void>((r) => server.close(() => r())) };
});
