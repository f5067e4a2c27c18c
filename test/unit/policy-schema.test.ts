import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { loadPolicy, parsePolicy, PolicyError } from '../../src/policy/load.ts';

const EXAMPLE = `
issuers:                        # trusted workload-proof issuers
  - name: github
    issuer: https://token.actions.githubusercontent.com
    audiences: [https://leash.example.com]
    jwks_uri: https://token.actions.githubusercontent.com/.well-known/jwks
    max_proof_age: 10m
    replay: single_use
  - name: k8s
    issuer: https://kubernetes.default.svc
    audiences: [leash]
    algorithms: [RS256, ES256]
  - name: dev
    issuer: http://127.0.0.1:8080/dev
    audiences: [http://127.0.0.1:8080]
    replay: allow
rules:
  - name: app-deploy
    issuer: github
    match:
      sub: "repo:octo-org/octo-repo:environment:Production"
      repository: octo-org/octo-repo
      ref: refs/heads/main
      job_workflow_ref: "octo-org/octo-repo/.github/workflows/deploy.yml@*"
    grant:
      scopes: [deploy:write, artifacts:read]
      audiences: [https://deploy.acme.internal]
      ttl: 10m
      max_ttl: 1h
      credentials: [jwt, x509]
      claims: { repo: "{{ claims.repository }}" }
      x509:
        uri_sans: ["spiffe://acme.internal/gh/{{ claims.repository }}"]
        dns_sans: []
        key_types: [ec-p256, ed25519]
    limits:
      max_active_leases: 20
  - name: k8s-pods
    issuer: k8s
    match:
      /kubernetes.io/namespace: [default, "team-*"]
      sub: { not: "system:serviceaccount:kube-system:*" }
    grant:
      scopes: [metrics:write]
`;

type Doc = { issuers: Record<string, unknown>[]; rules: (Record<string, unknown> & { grant: Record<string, unknown> })[] };
const base = (): Doc => ({
  issuers: [{ name: 'github', issuer: 'https://token.actions.githubusercontent.com', audiences: ['https://leash.example.com'] }],
  rules: [{ name: 'deploy', issuer: 'github', match: { repository: 'octo-org/octo-repo' }, grant: { scopes: ['deploy:write'] } }],
});

function issuesOf(edit: (doc: Doc) => void): string[] {
  const doc = base();
  edit(doc);
  try {
    parsePolicy(stringify(doc), 'test.yaml');
  } catch (err) {
    if (err instanceof PolicyError) return err.issues;
    throw err;
  }
  return [];
}

describe('a valid policy', () => {
  const policy = parsePolicy(EXAMPLE, 'policy.example.yaml');

  it('parses the documented example with durations in seconds and defaults filled', () => {
    expect(policy.issuers.map((i) => [i.name, i.max_proof_age, i.replay])).toEqual([
      ['github', 600, 'single_use'],
      ['k8s', 3600, 'single_use'],
      ['dev', 3600, 'allow'],
    ]);
    expect(policy.issuers[1]!.algorithms).toEqual(['RS256', 'ES256']);
    const [deploy, pods] = policy.rules;
    expect(deploy!.grant).toMatchObject({ ttl: 600, max_ttl: 3600, credentials: ['jwt', 'x509'] });
    expect(deploy!.grant.x509).toEqual({
      uri_sans: ['spiffe://acme.internal/gh/{{ claims.repository }}'],
      dns_sans: [],
      key_types: ['ec-p256', 'ed25519'],
      server_auth: false,
    });
    expect(deploy!.limits).toEqual({ max_active_leases: 20 });
    expect(pods!.match).toEqual({ '/kubernetes.io/namespace': ['default', 'team-*'], sub: { not: 'system:serviceaccount:kube-system:*' } });
    expect(pods!.grant).toEqual({
      scopes: ['metrics:write'],
      audiences: [],
      ttl: 900,
      max_ttl: 900,
      credentials: ['jwt'],
      claims: {},
      x509: { uri_sans: [], dns_sans: [], key_types: ['ec-p256', 'ec-p384', 'ed25519'], server_auth: false },
    });
    expect(pods!.limits).toEqual({});
  });

  it('is frozen, so cached compilations cannot go stale', () => {
    expect(Object.isFrozen(policy.rules[0]!.grant.scopes)).toBe(true);
    expect(() => (policy.rules[0]!.grant.scopes as string[]).push('admin')).toThrow();
  });

  it.each([
    [{ ttl: '90s' }, 90, 90],
    [{ ttl: '1h30m' }, 5400, 5400],
    [{ ttl: 600 }, 600, 600],
    [{ max_ttl: '5m' }, 300, 300],
    [{ max_ttl: '1d' }, 900, 86400],
    [{ ttl: '10m', max_ttl: '10m' }, 600, 600],
  ])('grant %j gives ttl %i and max_ttl %i', (durations, ttl, maxTtl) => {
    const doc = base();
    Object.assign(doc.rules[0]!.grant, durations);
    const { grant } = parsePolicy(stringify(doc), 't').rules[0]!;
    expect([grant.ttl, grant.max_ttl]).toEqual([ttl, maxTtl]);
  });
});

const DURATION = 'must be a duration like 90s, 10m, 1h, 1d, 1h30m, or whole seconds';
const TEMPLATE_EXPR = 'unknown template expression "{{ claim.repository }}": use {{ claims.NAME }} or {{ claims./json/pointer }}';

describe('schema errors name their path', () => {
  it.each<[string, (d: Doc) => void, string]>([
    ['missing issuers', (d) => delete (d as Partial<Doc>).issuers, 'issuers: is required'],
    ['empty rules', (d) => (d.rules = []), 'rules: must list at least one rule'],
    ['unknown top-level key', (d) => Object.assign(d, { rule: [] }), 'rule: unknown key'],
    ['issuer name charset', (d) => (d.issuers[0]!.name = 'GitHub'), 'issuers[0].name: must be 1-64 characters of a-z, 0-9, _ and -'],
    ['plain http issuer', (d) => (d.issuers[0]!.issuer = 'http://token.example.com'), 'issuers[0].issuer: must use https (plain http only for localhost, 127.0.0.1 or [::1])'],
    ['issuer not a URL', (d) => (d.issuers[0]!.issuer = 'token.example.com'), 'issuers[0].issuer: must be an absolute URL without spaces'],
    ['issuer with query', (d) => (d.issuers[0]!.issuer = 'https://x.example/?a=1'), 'issuers[0].issuer: must not have a query or fragment'],
    ['issuer with userinfo', (d) => (d.issuers[0]!.issuer = 'https://u:p@x.example'), 'issuers[0].issuer: must not contain a user name or password'],
    ['SPIFFE trust domain without jwks_uri', (d) => (d.issuers[0]!.issuer = 'spiffe://acme.internal'), 'issuers[0].jwks_uri: is required for a SPIFFE trust domain, which has no discovery document (the JWKS of its bundle endpoint or SPIRE OIDC discovery provider)'],
    ['SPIFFE trust domain with a path', (d) => Object.assign(d.issuers[0]!, { issuer: 'spiffe://acme.internal/ns', jwks_uri: 'https://x.example/jwks' }), 'issuers[0].issuer: a SPIFFE trust domain must be spiffe://<trust domain> (lowercase a-z, 0-9, ., _ and -; no path)'],
    ['SPIFFE trust domain in capitals', (d) => Object.assign(d.issuers[0]!, { issuer: 'spiffe://Acme.internal', jwks_uri: 'https://x.example/jwks' }), 'issuers[0].issuer: a SPIFFE trust domain must be spiffe://<trust domain> (lowercase a-z, 0-9, ., _ and -; no path)'],
    ['plain http jwks_uri', (d) => (d.issuers[0]!.jwks_uri = 'http://x.example/jwks'), 'issuers[0].jwks_uri: must use https (plain http only for localhost, 127.0.0.1 or [::1])'],
    ['empty audiences', (d) => (d.issuers[0]!.audiences = []), 'issuers[0].audiences: must list at least one audience'],
    ['audience not a string', (d) => (d.issuers[0]!.audiences = [5]), 'issuers[0].audiences[0]: Invalid input: expected string, received number'],
    ['bad max_proof_age', (d) => (d.issuers[0]!.max_proof_age = '10 minutes'), `issuers[0].max_proof_age: ${DURATION}`],
    ['bad replay', (d) => (d.issuers[0]!.replay = 'once'), 'issuers[0].replay: must be single_use or allow'],
    ['HS256', (d) => (d.issuers[0]!.algorithms = ['ES256', 'HS256']), 'issuers[0].algorithms[1]: must be one of RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA (HS* and none are never accepted)'],
    ['alg none', (d) => (d.issuers[0]!.algorithms = ['none']), 'issuers[0].algorithms[0]: must be one of RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA (HS* and none are never accepted)'],
    ['typo in issuer', (d) => (d.issuers[0]!.max_proof_ag = '1h'), 'issuers[0].max_proof_ag: unknown key'],
    ['duplicate issuer name', (d) => d.issuers.push({ ...d.issuers[0], issuer: 'https://b.example' }), 'issuers[1].name: duplicate name "github" (also at issuers[0])'],
    ['duplicate issuer url', (d) => d.issuers.push({ ...d.issuers[0], name: 'other' }), 'issuers[1].issuer: duplicate issuer "https://token.actions.githubusercontent.com" (also at issuers[0])'],
    ['unknown rule issuer', (d) => (d.rules[0]!.issuer = 'gitlab'), 'rules[0].issuer: unknown issuer "gitlab": name one of the issuers entries (github)'],
    ['duplicate rule name', (d) => d.rules.push(structuredClone(d.rules[0]!)), 'rules[1].name: duplicate name "deploy" (also at rules[0])'],
    ['rule name charset', (d) => (d.rules[0]!.name = 'deploy app'), 'rules[0].name: must be 1-128 characters of A-Z, a-z, 0-9, ., _ and -'],
    ['typo in rule', (d) => Object.assign(d.rules[0]!, { matches: {} }), 'rules[0].matches: unknown key'],
    ['typo in grant', (d) => (d.rules[0]!.grant.max_tll = '1h'), 'rules[0].grant.max_tll: unknown key'],
    ['empty match list', (d) => (d.rules[0]!.match = { ref: [] }), 'rules[0].match.ref: must be a glob string, a non-empty list of globs, or {not: glob or list} (no control characters)'],
    ['match number', (d) => (d.rules[0]!.match = { run_number: 10 }), 'rules[0].match.run_number: must be a glob string, a non-empty list of globs, or {not: glob or list} (no control characters)'],
    ['match not plus other key', (d) => (d.rules[0]!.match = { ref: { not: 'a', or: 'b' } }), 'rules[0].match.ref: must be a glob string, a non-empty list of globs, or {not: glob or list} (no control characters)'],
    ['bad pointer', (d) => (d.rules[0]!.match = { '/kubernetes.io~2/namespace': 'x' }), 'rules[0].match./kubernetes.io~2/namespace: invalid JSON Pointer: "~" must be followed by 0 or 1'],
    ['__proto__ key', (d) => (d.rules[0]!.match = JSON.parse('{"__proto__": "x"}')), 'rules[0].match.__proto__: is not a usable key'],
    ['scope with space', (d) => (d.rules[0]!.grant.scopes = ['deploy:write', 'read write']), 'rules[0].grant.scopes[1]: is not an RFC 6749 scope token (printable ASCII without space, " or \\)'],
    ['scope with quote', (d) => (d.rules[0]!.grant.scopes = ['a"b']), 'rules[0].grant.scopes[0]: is not an RFC 6749 scope token (printable ASCII without space, " or \\)'],
    ['scopes missing', (d) => delete d.rules[0]!.grant.scopes, 'rules[0].grant.scopes: is required'],
    ['ttl above max_ttl', (d) => Object.assign(d.rules[0]!.grant, { ttl: '2h', max_ttl: '1h' }), 'rules[0].grant.max_ttl: must be at least ttl (7200s), is 3600s'],
    ['zero ttl', (d) => (d.rules[0]!.grant.ttl = 0), `rules[0].grant.ttl: ${DURATION}`],
    ['fractional ttl', (d) => (d.rules[0]!.grant.ttl = 1.5), `rules[0].grant.ttl: ${DURATION}`],
    ['bad credential', (d) => (d.rules[0]!.grant.credentials = ['pem']), 'rules[0].grant.credentials[0]: must be jwt or x509'],
    ['no credential', (d) => (d.rules[0]!.grant.credentials = []), 'rules[0].grant.credentials: must list at least one credential kind'],
    ['reserved claim', (d) => (d.rules[0]!.grant.claims = { scope: 'admin' }), 'rules[0].grant.claims.scope: "scope" is reserved: Leash sets it on every token'],
    ['claim template', (d) => (d.rules[0]!.grant.claims = { repo: '{{ claim.repository }}' }), `rules[0].grant.claims.repo: ${TEMPLATE_EXPR}`],
    ['claim not a string', (d) => (d.rules[0]!.grant.claims = { n: 1 }), 'rules[0].grant.claims.n: must be a template string'],
    ['x509 without SANs', (d) => (d.rules[0]!.grant.credentials = ['x509']), 'rules[0].grant.x509: a rule granting x509 needs at least one uri_sans or dns_sans entry'],
    ['uri SAN template', (d) => (d.rules[0]!.grant.x509 = { uri_sans: ['spiffe://acme.internal/{{ claim.repository }}'] }), `rules[0].grant.x509.uri_sans[0]: ${TEMPLATE_EXPR}`],
    ['uri SAN trust domain from a claim', (d) => (d.rules[0]!.grant.x509 = { uri_sans: ['spiffe://{{ claims.repository_owner }}/x'] }), 'rules[0].grant.x509.uri_sans[0]: placeholders may only follow a literal scheme and authority (e.g. spiffe://example.org/...)'],
    ['dns SAN uppercase', (d) => (d.rules[0]!.grant.x509 = { dns_sans: ['API.example.com'] }), 'rules[0].grant.x509.dns_sans[0]: not a valid lowercase DNS name (a wildcard only as a leading "*.")'],
    ['key type', (d) => (d.rules[0]!.grant.x509 = { uri_sans: ['spiffe://a/b'], key_types: ['rsa-1024'] }), 'rules[0].grant.x509.key_types[0]: must be one of ec-p256, ec-p384, ed25519, rsa-2048, rsa-3072, rsa-4096'],
    ['typo in x509', (d) => (d.rules[0]!.grant.x509 = { uri_san: ['spiffe://a/b'] }), 'rules[0].grant.x509.uri_san: unknown key'],
    ['two URI SANs with a SPIFFE ID', (d) => (d.rules[0]!.grant.x509 = { uri_sans: ['spiffe://acme.internal/a', 'https://acme.example/a'] }), 'rules[0].grant.x509.uri_sans: a certificate with a SPIFFE ID is an X509-SVID, which carries exactly one URI SAN (use dns_sans for other names)'],
    ['server_auth', (d) => (d.rules[0]!.grant.x509 = { uri_sans: ['spiffe://a/b'], server_auth: 'yes' }), 'rules[0].grant.x509.server_auth: Invalid input: expected boolean, received string'],
    ['zero leases', (d) => (d.rules[0]!.limits = { max_active_leases: 0 }), 'rules[0].limits.max_active_leases: must be at least 1'],
    ['fractional leases', (d) => (d.rules[0]!.limits = { max_active_leases: 2.5 }), 'rules[0].limits.max_active_leases: must be a whole number'],
    ['typo in limits', (d) => (d.rules[0]!.limits = { max_leases: 5 }), 'rules[0].limits.max_leases: unknown key'],
  ])('%s', (_label, edit, expected) => {
    expect(issuesOf(edit)).toContain(expected);
  });

  it('puts JSON Pointer keys in the path as written', () => {
    const issues = issuesOf((d) => (d.rules[0]!.match = { '/kubernetes.io/namespace': { not: [] } }));
    expect(issues).toEqual(['rules[0].match./kubernetes.io/namespace: must be a glob string, a non-empty list of globs, or {not: glob or list} (no control characters)']);
  });

  it('reports every problem in one go, with code and message format', () => {
    const doc = base();
    doc.issuers[0]!.replay = 'twice';
    doc.rules[0]!.grant.scopes = ['a b'];
    let error: unknown;
    try {
      parsePolicy(stringify(doc), 'leash.yaml');
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(PolicyError);
    const policyError = error as PolicyError;
    expect(policyError.code).toBe('ERR_POLICY_INVALID');
    expect(policyError.message).toBe(
      'invalid policy leash.yaml:\n  issuers[0].replay: must be single_use or allow\n  rules[0].grant.scopes[0]: is not an RFC 6749 scope token (printable ASCII without space, " or \\)',
    );
  });
});

describe('YAML problems', () => {
  const issues = (text: string) => {
    try {
      parsePolicy(text, 'p.yaml');
    } catch (err) {
      return (err as PolicyError).issues;
    }
    return [];
  };

  it('names line and column of syntax errors', () => {
    expect(issues('issuers:\n  - name: [github\nrules: []\n')[0]).toMatch(/^line 3, column 1: /);
  });

  it('refuses duplicate keys, which would silently override', () => {
    expect(issues('issuers: []\nissuers: []\nrules: []\n')).toEqual(['line 2, column 1: Map keys must be unique']);
  });

  it('refuses unknown tags', () => {
    expect(issues('issuers: !secret x\nrules: []\n')[0]).toMatch(/^line 1, column 10: Unresolved tag: !secret/);
  });

  it('refuses an empty document or a non-mapping', () => {
    expect(issues('')).toEqual(['(top level): must be a mapping with issuers and rules']);
    expect(issues('- a\n')).toEqual(['(top level): must be a mapping with issuers and rules']);
  });

  it('refuses alias bombs', () => {
    const bomb = 'a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n';
    expect(issues(bomb)[0]).toMatch(/^\(top level\): .*alias/i);
  });
});

describe('loadPolicy', () => {
  it('reads a file and names it in errors', () => {
    const dir = mkdtempSync(join(tmpdir(), 'leash-policy-'));
    try {
      const good = join(dir, 'good.yaml');
      writeFileSync(good, EXAMPLE);
      expect(loadPolicy(good).rules.map((r) => r.name)).toEqual(['app-deploy', 'k8s-pods']);
      const bad = join(dir, 'bad.yaml');
      writeFileSync(bad, EXAMPLE.replace('max_ttl: 1h', 'max_ttl: 5m'));
      expect(() => loadPolicy(bad)).toThrow(`invalid policy ${bad}:\n  rules[0].grant.max_ttl: must be at least ttl (600s), is 300s`);
      expect(() => loadPolicy(join(dir, 'missing.yaml'))).toThrow(/cannot read the file \(ENOENT\)/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
