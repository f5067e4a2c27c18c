/**
 * `leash/verify`: verification of Leash access tokens for resource servers.
 *
 *   const verifier = createLeashVerifier({ issuer: 'https://leash.example.com', audience: 'https://deploy.acme.internal' });
 *   app.use('/deploy/*', leashAuth(verifier, { scopes: ['deploy:write'] }));
 */
export { createLeashVerifier } from './verifier.ts';
export type { LeashClaims, LeashVerifier, LeashVerifierOptions, VerifyOptions } from './verifier.ts';
export type { IntrospectionOptions } from './introspection.ts';
export { leashAuth } from './leash-auth.ts';
export type { LeashAuthOptions } from './leash-auth.ts';
export {
  LeashVerifyError,
  LeashTokenInvalidError,
  LeashTokenExpiredError,
  LeashScopeError,
  LeashRevokedError,
  LeashUnavailableError,
} from './errors.ts';
export type { LeashVerifyCode } from './errors.ts';
