import type { FakeIssuer } from './fake-issuer.ts';

export const AUD = 'https://leash.test';

export interface IssuerSet {
  github: FakeIssuer;
  gitlab: FakeIssuer;
  k8s: FakeIssuer;
  spiffe: FakeIssuer;
}

/**
 * A policy over four fake issuers shaped like GitHub Actions, GitLab CI, Kubernetes and SPIFFE,
 * with an operator rule, used by the end-to-end suites.
 */
export function e2ePolicy(i: IssuerSet, brokerIssuer = '${LEASH_ISSUER}'): string {
  return `
issuers:
  - { name: github, issuer: "${i.github.url}", audiences: ["${AUD}"], max_proof_age: 10m }
  - { name: gitlab, issuer: "${i.gitlab.url}", audiences: ["${AUD}"], max_proof_age: 10m }
  - { name: k8s, issuer: "${i.k8s.url}", audiences: ["${AUD}"], max_proof_age: 1h, jwks_uri: "${i.k8s.jwksUri}" }
  - { name: spiffe, issuer: "${i.spiffe.url}", audiences: ["${AUD}"], max_proof_age: 10m, replay: allow }
  - { name: spiffe-td, issuer: "spiffe://staging.example.com", audiences: ["${AUD}"], max_proof_age: 10m, jwks_uri: "${i.spiffe.jwksUri}" }
rules:
  - name: operators
    issuer: github
    match: { sub: "repo:octo-org/ops:*" }
    grant:
      scopes: [leash:admin, leash:introspect]
      audiences: ["${brokerIssuer}"]
      ttl: 10m
      max_ttl: 1h
  - name: gh-deploy
    issuer: github
    match:
      repository: octo-org/octo-repo
      ref: refs/heads/main
    grant:
      scopes: [deploy:write, artifacts:read]
      audiences: [https://deploy.acme.internal, https://artifacts.acme.internal]
      ttl: 10m
      max_ttl: 1h
      credentials: [jwt, x509]
      claims: { repo: "{{ claims.repository }}", workflow: "{{ claims.workflow }}" }
      x509:
        uri_sans: ["spiffe://acme.internal/gh/{{ claims.repository }}"]
        key_types: [ec-p256, ec-p384, ed25519, rsa-2048]
    limits: { max_active_leases: 3 }
  - name: gl-build
    issuer: gitlab
    match:
      project_path: "my-group/*"
      ref_type: branch
      namespace_path: my-group
    grant:
      scopes: [artifacts:read]
      audiences: [https://artifacts.acme.internal]
      ttl: 5m
      max_ttl: 30m
  - name: k8s-payments
    issuer: k8s
    match:
      /kubernetes.io/namespace: kube-system
      sub: "system:serviceaccount:kube-system:*"
    grant:
      scopes: [dns:read]
      audiences: [https://dns.acme.internal]
      ttl: 15m
      max_ttl: 1h
      credentials: [jwt, x509]
      claims: { ns: "{{ claims./kubernetes.io/namespace }}" }
      x509:
        uri_sans: ["spiffe://acme.internal/ns/{{ claims./kubernetes.io/namespace }}/sa/{{ claims./kubernetes.io/serviceaccount/name }}"]
        dns_sans: ["{{ claims./kubernetes.io/serviceaccount/name }}.{{ claims./kubernetes.io/namespace }}.svc"]
  - name: spiffe-db
    issuer: spiffe
    match: { sub: "spiffe://staging.example.com/payments/*" }
    grant:
      scopes: [db:read, db:write]
      audiences: [https://db.acme.internal]
      ttl: 2m
      max_ttl: 10m
  - name: spiffe-td-db
    issuer: spiffe-td
    match: { sub: "spiffe://staging.example.com/payments/*" }
    grant:
      scopes: [db:read]
      audiences: [https://db.acme.internal]
      ttl: 2m
      max_ttl: 10m
`;
}

/**
 * A rule of issuer `github` issuing SPIFFE certificates (spiffe://acme.internal/gh/<repository>) to
 * the jobs of octo-org/octo-repo: scope svc:mtls, a 10-minute default TTL.
 */
export function svidRule(name: string, opts: { keyTypes?: string[]; maxTtl?: string } = {}): string {
  const keyTypes = opts.keyTypes ? `, key_types: [${opts.keyTypes.join(', ')}]` : '';
  return `
  - name: ${name}
    issuer: github
    match: { repository: octo-org/octo-repo }
    grant:
      scopes: [svc:mtls]
      credentials: [x509]
      ttl: 10m${opts.maxTtl ? `\n      max_ttl: ${opts.maxTtl}` : ''}
      x509: { uri_sans: ["spiffe://acme.internal/gh/{{ claims.repository }}"]${keyTypes} }`;
}
