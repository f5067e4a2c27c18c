/**
 * Baseline B: oidc-provider 8 issuing ES256 JWT access tokens by client_credentials
 * (client_secret_basic, resource indicator), same load as the exchange.
 */
import { startChild, type ChildServer } from '../child.ts';
import { describeLoad, type LoadConfig } from '../exchange-load.ts';
import { runLoad, type LoadRequest, type LoadResult } from '../load-generator.ts';
import { OIDC_CLIENT_ID, OIDC_CLIENT_SECRET, OIDC_RESOURCE, OIDC_SCOPE } from './oidc-constants.ts';

export function isJwtAccessToken(body: string): boolean {
  try {
    const j = JSON.parse(body) as { access_token?: string; token_type?: string };
    if (j.token_type !== 'Bearer' || typeof j.access_token !== 'string') return false;
    const parts = j.access_token.split('.');
    if (parts.length !== 3) return false;
    const header = JSON.parse(Buffer.from(parts[0]!, 'base64url').toString('utf8')) as { alg?: string };
    return header.alg === 'ES256';
  } catch {
    return false;
  }
}

/** The client_credentials request every oidc-provider load run sends. */
export function oidcTokenRequest(): LoadRequest {
  const body = `grant_type=client_credentials&resource=${encodeURIComponent(OIDC_RESOURCE)}&scope=${encodeURIComponent(OIDC_SCOPE)}`;
  const headers = { authorization: `Basic ${Buffer.from(`${encodeURIComponent(OIDC_CLIENT_ID)}:${encodeURIComponent(OIDC_CLIENT_SECRET)}`).toString('base64')}` };
  return { path: '/token', body, headers };
}

/** oidc-provider in its own child process, checked once: its answer must be an ES256 JWT access token. */
export async function startOidcProvider(): Promise<ChildServer> {
  const child = await startChild({ entry: 'baselines/oidc-provider-server.ts', name: 'baseline-oidc-provider' });
  try {
    const req = oidcTokenRequest();
    const res = await fetch(`${child.url}${req.path}`, { method: 'POST', headers: { ...req.headers, 'content-type': 'application/x-www-form-urlencoded' }, body: req.body });
    const text = await res.text();
    if (res.status !== 200 || !isJwtAccessToken(text)) throw new Error(`oidc-provider did not issue a JWT access token: ${res.status} ${text.slice(0, 300)}`);
    return child;
  } catch (err) {
    await child.stop();
    throw err;
  }
}

export async function benchOidcProvider(cfg: LoadConfig): Promise<LoadResult> {
  const child = await startOidcProvider();
  try {
    const req = oidcTokenRequest();
    const r = await runLoad({ name: 'baseline B: oidc-provider 8 client_credentials (JWT AT)', targets: [child.url], ...cfg, next: () => req, check: isJwtAccessToken, cpuOf: { server: child.pid } });
    describeLoad(r);
    return r;
  } finally {
    await child.stop();
  }
}
