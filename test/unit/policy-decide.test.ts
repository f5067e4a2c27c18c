import { fixtureClaims, type FixtureFile } from '../helpers/claim-fixtures.ts';
import { describe, expect, it } from 'vitest';
import { explain } from '../../src/policy/decide.ts';
import { parsePolicy } from '../../src/policy/load.ts';
import type { Decision, GrantRequest } from '../../src/policy/types.ts';

const claimsOf = (file: string, name: string): Record<string, unknown> => fixtureClaims(file.replace(/\.json$/, '') as FixtureFile, name);

const policy = parsePolicy(
  `
issuers:
  - name: github
    issuer: https://token.actions.githubusercontent.com
    audiences: [https://leash.example.com]
  - name: k8s
    issuer: https://kubernetes.default.svc
    audiences: [leash]
rules:
  - name: prod-deploy
    issuer: github
    match:
      repository: octo-org/octo-repo
      environment: Production
      ref: refs/heads/main
    grant:
      scopes: [deploy:write, artifacts:read]
      audiences: [https://deploy.acme.internal]
      ttl: 10m
      max_ttl: 1h
      claims: { repo: "{{ claims.repository }}", env: "{{ claims.environment }}" }
    limits: { max_active_leases: 20 }
  - name: octo-read
    issuer: github
    match:
      repository_owner: octo-org
      event_name: { not: pull_request }
    grant:
      scopes: [artifacts:read, packages:read]
      audiences: [https://artifacts.acme.internal, https://deploy.acme.internal]
      max_ttl: 2h
  - name: octo-certs
    issuer: github
    match:
      repository: "octo-org/*"
    grant:
      scopes: [artifacts:read]
      credentials: [x509]
      x509:
        uri_sans: ["spiffe://acme.internal/gh/{{ claims.repository }}/{{ claims.environment }}"]
        dns_sans: ["{{ claims.run_id }}.runners.acme.internal"]
        server_auth: true
  - name: pods
    issuer: k8s
    match:
      /kubernetes.io/namespace: [default, kube-system]
    grant:
      scopes: [deploy:write, artifacts:read, packages:read, admin]
      credentials: [jwt, x509]
      x509:
        uri_sans: ["spiffe://cluster.local/ns/{{claims./kubernetes.io/namespace}}/sa/{{claims./kubernetes.io/serviceaccount/name}}"]
`,
  'decide.yaml',
);

const ghProd = claimsOf('github-actions.json', 'environment-production');
const ghPush = claimsOf('github-actions.json', 'push-main');
const ghPr = claimsOf('github-actions.json', 'pull-request');
const k8s = claimsOf('kubernetes-sa.json', 'pod-bound-default-projected');

const decide = (issuer: string, claims: Record<string, unknown>, request: GrantRequest): Decision => explain(policy, { issuer, claims }, request);
const ruleOf = (d: Decision) => (d.allowed ? d.rule.name : d.code);

describe('selection', () => {
  it('grants the first candidate in full when nothing is asked', () => {
    const d = decide('github', ghProd, { kind: 'jwt' });
    expect(d).toMatchObject({
      allowed: true,
      scopes: ['deploy:write', 'artifacts:read'],
      audiences: ['https://deploy.acme.internal'],
      ttl: 600,
      claims: { repo: 'octo-org/octo-repo', env: 'Production' },
      max_active_leases: 20,
    });
    expect(ruleOf(d)).toBe('prod-deploy');
    expect(d.trace).toEqual([
      { rule: 'prod-deploy', outcome: 'selected', reasons: ['repository matched "octo-org/octo-repo"', 'environment matched "Production"', 'ref matched "refs/heads/main"'] },
    ]);
  });

  it('passes over a candidate that cannot grant the whole request to one that can', () => {
    const d = decide('github', ghProd, { kind: 'jwt', scopes: ['packages:read'], ttl: 5400 });
    expect(ruleOf(d)).toBe('octo-read');
    expect(d.trace.map((t) => [t.rule, t.outcome])).toEqual([
      ['prod-deploy', 'insufficient'],
      ['octo-read', 'selected'],
    ]);
    expect(d.trace[0]!.reasons.at(-1)).toBe('scope "packages:read" is not granted by rule prod-deploy');
  });

  it('selects by credential kind', () => {
    const d = decide('github', ghProd, { kind: 'x509' });
    expect(d).toMatchObject({
      allowed: true,
      scopes: ['artifacts:read'],
      x509: {
        uri_sans: ['spiffe://acme.internal/gh/octo-org/octo-repo/Production'],
        dns_sans: ['12345678902.runners.acme.internal'],
        key_types: ['ec-p256', 'ec-p384', 'ed25519'],
        server_auth: true,
      },
    });
    expect(ruleOf(d)).toBe('octo-certs');
  });

  it('never combines two rules, even when their union would cover the request', () => {
    // prod-deploy has deploy:write, octo-read has packages:read; no single rule has both.
    const d = decide('github', ghProd, { kind: 'jwt', scopes: ['deploy:write', 'packages:read'] });
    expect(d).toMatchObject({ allowed: false, code: 'invalid_scope', reason: 'scope "packages:read" is not granted by rule prod-deploy' });
    const t = decide('github', ghProd, { kind: 'jwt', scopes: ['deploy:write'], audiences: ['https://artifacts.acme.internal'] });
    expect(t).toMatchObject({ allowed: false, code: 'invalid_target' });
    const l = decide('github', ghProd, { kind: 'jwt', scopes: ['deploy:write'], ttl: 7200 });
    expect(l).toMatchObject({ allowed: false, code: 'invalid_request', reason: 'ttl 7200s exceeds max_ttl 3600s of rule prod-deploy' });
  });

  it('never trims a request down to what is granted', () => {
    const d = decide('github', ghPush, { kind: 'jwt', scopes: ['artifacts:read', 'admin'] });
    expect(d).toMatchObject({ allowed: false, code: 'invalid_scope', reason: 'scope "admin" is not granted by rule octo-read' });
  });

  it('only looks at rules of the proof issuer', () => {
    const d = decide('k8s', { ...ghProd, 'kubernetes.io': { namespace: 'nope' } }, { kind: 'jwt' });
    expect(d).toEqual({ allowed: false, code: 'invalid_request', reason: 'no policy rule matches this proof', trace: [{ rule: 'pods', outcome: 'not_candidate', reasons: ['/kubernetes.io/namespace did not match any of "default", "kube-system"'] }] });
    expect(decide('gitlab', ghProd, { kind: 'jwt' })).toMatchObject({ allowed: false, code: 'invalid_request', trace: [] });
  });

  it('does not echo claim values when nothing matches', () => {
    const d = decide('github', { ...ghPr, repository_owner: 'someone-else', repository: 'someone-else/secret-project' }, { kind: 'jwt' });
    expect(d).toMatchObject({ allowed: false, code: 'invalid_request', reason: 'no policy rule matches this proof' });
    expect(JSON.stringify(d)).not.toContain('secret-project');
  });

  it('renders Kubernetes SPIFFE IDs', () => {
    const d = decide('k8s', k8s, { kind: 'x509', scopes: ['admin'], ttl: 60 });
    expect(d).toMatchObject({ allowed: true, scopes: ['admin'], ttl: 60, x509: { uri_sans: ['spiffe://cluster.local/ns/kube-system/sa/coredns'], dns_sans: [] } });
  });
});

describe('narrowing', () => {
  it('returns requested scopes and audiences deduplicated in request order', () => {
    const d = decide('github', ghProd, {
      kind: 'jwt',
      scopes: ['artifacts:read', 'deploy:write', 'artifacts:read'],
      audiences: ['https://deploy.acme.internal', 'https://deploy.acme.internal'],
      ttl: 3600,
    });
    expect(d).toMatchObject({ allowed: true, scopes: ['artifacts:read', 'deploy:write'], audiences: ['https://deploy.acme.internal'], ttl: 3600 });
  });

  it('treats empty lists as not asking', () => {
    expect(decide('github', ghProd, { kind: 'jwt', scopes: [], audiences: [] })).toMatchObject({ scopes: ['deploy:write', 'artifacts:read'] });
  });

  it.each([0, -5, 1.5, Number.NaN, Number.POSITIVE_INFINITY])('refuses ttl %s', (ttl) => {
    expect(decide('github', ghProd, { kind: 'jwt', ttl })).toMatchObject({ allowed: false, code: 'invalid_request', reason: 'ttl must be a whole number of seconds, at least 1' });
  });

  it('refuses an audience no candidate grants', () => {
    const d = decide('github', ghProd, { kind: 'jwt', audiences: ['https://evil.example'] });
    expect(d).toMatchObject({ allowed: false, code: 'invalid_target', reason: 'audience "https://evil.example" is not granted by rule prod-deploy' });
  });

  it('refuses a credential kind the first candidate lacks when no candidate has it', () => {
    const d = decide('github', ghPr, { kind: 'jwt', scopes: ['deploy:write'] });
    // octo-read is excluded for pull_request, so octo-certs (x509 only) is the first candidate.
    expect(d).toMatchObject({ allowed: false, code: 'invalid_request', reason: 'rule octo-certs does not issue jwt credentials' });
  });

  it('refuses when a template cannot render, naming the claim key only', () => {
    // For pull_request octo-read is excluded, so octo-certs is the first candidate; no environment claim.
    const d = decide('github', ghPr, { kind: 'x509' });
    expect(d).toMatchObject({ allowed: false, code: 'invalid_request', reason: 'rule octo-certs x509.uri_sans: claim environment is absent' });
    const evil = decide('github', { ...ghPr, environment: 'pr', run_id: 'x.attacker.example' }, { kind: 'x509' });
    expect(evil).toMatchObject({ allowed: false, code: 'invalid_request', reason: 'rule octo-certs x509.dns_sans: claim run_id holds characters not allowed at that place' });
  });

  it('answers with the first candidate\'s shortfall, and traces the others', () => {
    const d = decide('github', ghPush, { kind: 'x509' });
    expect(d).toMatchObject({ allowed: false, code: 'invalid_request', reason: 'rule octo-read does not issue x509 credentials' });
    expect(d.trace.map((t) => [t.rule, t.outcome, t.reasons.at(-1)])).toEqual([
      ['prod-deploy', 'not_candidate', 'ref matched "refs/heads/main"'],
      ['octo-read', 'insufficient', 'rule octo-read does not issue x509 credentials'],
      ['octo-certs', 'insufficient', 'rule octo-certs x509.uri_sans: claim environment is absent'],
    ]);
  });

  it('does not render SANs for JWT requests', () => {
    const d = decide('k8s', k8s, { kind: 'jwt' });
    expect(d).toMatchObject({ allowed: true, x509: { uri_sans: [], dns_sans: [] } });
  });
});
