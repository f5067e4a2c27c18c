import type { TrustedIssuer } from '../policy/types.ts';

/** Fetches one JSON document; errors propagate (the caller decides cold-vs-warm cache handling). */
export type GetJson = (url: string) => Promise<unknown>;

export type DiscoveryCode =
  | 'ERR_DISCOVERY_NOT_OBJECT'
  | 'ERR_DISCOVERY_ISSUER_MISMATCH'
  | 'ERR_DISCOVERY_NO_JWKS_URI'
  | 'ERR_DISCOVERY_JWKS_URI_INVALID'
  | 'ERR_DISCOVERY_JWKS_URI_SCHEME';

/** The issuer's discovery document cannot be used to find its keys. */
export class DiscoveryError extends Error {
  override readonly name = 'DiscoveryError';
  constructor(
    readonly code: DiscoveryCode,
    message: string,
  ) {
    super(message);
  }
}

/** OIDC Discovery 1.0 section 4: strip one trailing slash from the issuer, then append the path. */
export function discoveryUrl(issuer: string): string {
  return `${issuer.replace(/\/$/, '')}/.well-known/openid-configuration`;
}

/**
 * Where the issuer's keys live: the configured `jwks_uri`, else the one its discovery document
 * names. The document's `issuer` must equal the configured one exactly (OIDC Discovery 4.3), or a
 * host could serve another issuer's configuration and we would trust keys meant for someone else.
 */
export async function resolveJwksUri(issuer: TrustedIssuer, getJson: GetJson): Promise<string> {
  if (issuer.jwks_uri) return issuer.jwks_uri;
  const doc = await getJson(discoveryUrl(issuer.issuer));
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
    throw new DiscoveryError('ERR_DISCOVERY_NOT_OBJECT', `discovery document of ${issuer.name} is not a JSON object`);
  }
  const { issuer: advertised, jwks_uri: jwksUri } = doc as Record<string, unknown>;
  if (advertised !== issuer.issuer) {
    throw new DiscoveryError('ERR_DISCOVERY_ISSUER_MISMATCH', `discovery document of ${issuer.name} names another issuer`);
  }
  if (typeof jwksUri !== 'string') {
    throw new DiscoveryError('ERR_DISCOVERY_NO_JWKS_URI', `discovery document of ${issuer.name} has no jwks_uri`);
  }
  let url: URL;
  try {
    url = new URL(jwksUri);
  } catch {
    throw new DiscoveryError('ERR_DISCOVERY_JWKS_URI_INVALID', `discovery document of ${issuer.name} has an invalid jwks_uri`);
  }
  // No downgrade: an https issuer must not send us to fetch its keys over plain http.
  const issuerIsHttps = issuer.issuer.startsWith('https:');
  if (url.protocol !== 'https:' && (issuerIsHttps || url.protocol !== 'http:')) {
    throw new DiscoveryError('ERR_DISCOVERY_JWKS_URI_SCHEME', `discovery document of ${issuer.name} has a jwks_uri with a disallowed scheme`);
  }
  return url.href;
}
