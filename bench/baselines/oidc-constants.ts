/** Shared by the oidc-provider child and the load that drives it. */
export const OIDC_CLIENT_ID = 'bench-client';
export const OIDC_CLIENT_SECRET = 'bench-client-secret-0123456789abcdef0123456789abcdef';
export const OIDC_RESOURCE = 'https://deploy.acme.internal';
export const OIDC_SCOPE = 'deploy:write artifacts:read';
