import { createPrivateKey, createPublicKey, generateKeyPairSync, randomUUID, type KeyObject } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { JWK } from 'jose';
import { signJwt } from '../mint/jwt/sign.ts';
import type { SigningKey } from '../mint/jwt/keystore.ts';

/** Audience the dev issuer puts in its proofs and the example policy accepts. */
export const DEV_PROOF_AUDIENCE = 'leash-dev';

/**
 * A tiny OIDC issuer for dev mode only: it signs whatever claims it is given, which is exactly
 * why it never runs with Redis (unless LEASH_DEV=1) or on a non-loopback host.
 */
export interface DevIssuer {
  url: string;
  jwks(): { keys: JWK[] };
  mint(claims: Record<string, unknown>): string;
}

export const DEFAULT_DEV_CLAIMS = {
  sub: 'repo:acme/app:ref:refs/heads/main',
  repository: 'acme/app',
  repository_owner: 'acme',
  ref: 'refs/heads/main',
  ref_type: 'branch',
  workflow: 'deploy',
  event_name: 'push',
  job_workflow_ref: 'acme/app/.github/workflows/deploy.yml@refs/heads/main',
  runner_environment: 'github-hosted',
};

export function createDevIssuer(url: string, keyFile: string, now: () => number = Date.now): DevIssuer {
  const privateKey = loadOrCreateKey(keyFile);
  const publicKey = createPublicKey(privateKey);
  const kid = 'dev-issuer-1';
  const publicJwk: JWK = { ...(publicKey.export({ format: 'jwk' }) as JWK), kid, alg: 'ES256', use: 'sig' };
  const key: SigningKey = { kid, alg: 'ES256', privateKey, publicKey, publicJwk, createdMs: 0 };
  return {
    url,
    jwks: () => ({ keys: [publicJwk] }),
    mint: (claims) => {
      const iat = Math.floor(now() / 1000);
      return signJwt(key, { ...DEFAULT_DEV_CLAIMS, aud: DEV_PROOF_AUDIENCE, iat, nbf: iat, exp: iat + 300, jti: randomUUID(), ...claims, iss: url }, 'JWT');
    },
  };
}

function loadOrCreateKey(file: string): KeyObject {
  if (existsSync(file)) return createPrivateKey(readFileSync(file, 'utf8'));
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  writeFileSync(file, privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 });
  return privateKey;
}
