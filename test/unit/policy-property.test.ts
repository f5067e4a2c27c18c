import { fixtureExamples, type FixtureFile } from '../helpers/claim-fixtures.ts';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { explain } from '../../src/policy/decide.ts';
import { compileGlob, matchRule, readClaim } from '../../src/policy/match.ts';
import { compileTemplate, renderClaimValue, renderDnsSan, renderUriSan } from '../../src/policy/template.ts';
import type { GrantRequest, Matcher, Policy, Rule } from '../../src/policy/types.ts';

const examplesOf = (file: string): Record<string, unknown>[] => fixtureExamples(file.replace(/\.json$/, '') as FixtureFile).map((e) => e.claims);

const FIXTURES: Record<string, Record<string, unknown>[]> = {
  github: examplesOf('github-actions.json'),
  gitlab: examplesOf('gitlab-ci.json'),
  k8s: examplesOf('kubernetes-sa.json'),
};
const ISSUERS = Object.keys(FIXTURES);
const POINTERS = ['/kubernetes.io/namespace', '/kubernetes.io/serviceaccount/name', '/kubernetes.io/pod/name'];

/** Per issuer, every key a rule might match on, with every value that issuer's documented fixtures give it. */
const VALUES = new Map<string, Map<string, string[]>>();
for (const [issuer, examples] of Object.entries(FIXTURES)) {
  const values = new Map<string, string[]>();
  for (const claims of examples) {
    for (const key of [...Object.keys(claims), ...POINTERS]) {
      const raw = readClaim(claims, key);
      const texts = (Array.isArray(raw) ? raw : [raw]).filter((v) => ['string', 'number', 'boolean'].includes(typeof v)).map(String);
      if (texts.length > 0) values.set(key, [...new Set([...(values.get(key) ?? []), ...texts])]);
    }
  }
  VALUES.set(issuer, values);
}
const KEYS = [...new Set([...VALUES.values()].flatMap((v) => [...v.keys()]))];

const SCOPES = ['deploy:write', 'artifacts:read', 'packages:read', 'leash:admin', 'metrics:write'];
const AUDIENCES = ['https://deploy.acme.internal', 'https://artifacts.acme.internal', 'vault'];

const pattern = (values: string[]): fc.Arbitrary<string> =>
  fc.constantFrom(...values).chain((value) =>
    fc.oneof(
      { weight: 4, arbitrary: fc.constant(value) },
      { weight: 2, arbitrary: fc.nat(value.length).map((n) => `${value.slice(0, n)}*`) },
      { weight: 2, arbitrary: fc.nat(value.length).map((n) => `*${value.slice(n)}`) },
      { weight: 1, arbitrary: fc.nat(Math.max(0, value.length - 1)).map((n) => (value.length ? `${value.slice(0, n)}?${value.slice(n + 1)}` : '?')) },
      { weight: 1, arbitrary: fc.constant(`${value}x`) },
      { weight: 1, arbitrary: fc.constant(value.toUpperCase()) },
    ),
  );

const matcher = (values: string[]): fc.Arbitrary<Matcher> =>
  fc.oneof(
    { weight: 4, arbitrary: pattern(values) },
    { weight: 2, arbitrary: fc.array(pattern(values), { minLength: 1, maxLength: 3 }) },
    { weight: 1, arbitrary: fc.oneof(pattern(values), fc.array(pattern(values), { minLength: 1, maxLength: 2 })).map((not) => ({ not })) },
  );

type Proof = { issuer: string; claims: Record<string, unknown> };

function textsOf(claims: Record<string, unknown>, key: string): string[] {
  const raw = readClaim(claims, key);
  return (Array.isArray(raw) ? raw : [raw]).filter((v) => ['string', 'number', 'boolean'].includes(typeof v)).map(String);
}

/**
 * Keys mostly from the rule issuer's own claims, sometimes from another issuer's (then absent);
 * patterns mostly built from the proof's own values, so that a fair share of rules are candidates.
 */
const matchArb = (issuer: string, proof?: Proof) =>
  fc
    .uniqueArray(fc.oneof({ weight: 5, arbitrary: fc.constantFrom(...VALUES.get(issuer)!.keys()) }, { weight: 1, arbitrary: fc.constantFrom(...KEYS) }), { maxLength: 3 })
    .chain((keys) =>
      fc.tuple(
        ...keys.map((k) => {
          const pool = VALUES.get(issuer)!.get(k) ?? ['absent'];
          const own = proof ? textsOf(proof.claims, k) : [];
          return fc.oneof({ weight: 4, arbitrary: fc.constant(own.length ? own : pool) }, { weight: 1, arbitrary: fc.constant(pool) }).chain(matcher).map((m) => [k, m] as const);
        }),
      ),
    )
    .map((entries) => Object.fromEntries(entries) as Record<string, Matcher>);

const ruleArb = (index: number, proof: Proof): fc.Arbitrary<Rule> =>
  fc.oneof({ weight: 3, arbitrary: fc.constant(proof.issuer) }, { weight: 1, arbitrary: fc.constantFrom(...ISSUERS) }).chain((issuer) => fc
    .record({
      issuer: fc.constant(issuer),
      match: matchArb(issuer, proof),
      scopes: fc.subarray(SCOPES),
      audiences: fc.subarray(AUDIENCES),
      ttl: fc.integer({ min: 1, max: 3600 }),
      extra: fc.integer({ min: 0, max: 3600 }),
      credentials: fc.subarray(['jwt', 'x509'] as const, { minLength: 1 }),
      claims: fc.subarray([['repo', '{{ claims.repository }}'], ['ns', '{{ claims./kubernetes.io/namespace }}'], ['fixed', 'leash']] as const),
      uri: fc.constantFrom('spiffe://acme.internal/gh/{{ claims.repository }}', 'spiffe://cluster.local/ns/{{ claims./kubernetes.io/namespace }}', 'spiffe://acme.internal/sub/{{ claims.sub }}'),
      dns: fc.subarray(['{{ claims.repository_id }}.ci.acme.internal', 'api.acme.internal']),
    })
    .map((r) => ({
      name: `rule-${index}`,
      issuer: r.issuer,
      match: r.match,
      grant: {
        scopes: r.scopes,
        audiences: r.audiences,
        ttl: r.ttl,
        max_ttl: r.ttl + r.extra,
        credentials: [...r.credentials],
        claims: Object.fromEntries(r.claims),
        x509: { uri_sans: [r.uri], dns_sans: r.dns, key_types: ['ec-p256'], server_auth: false },
      },
      limits: {},
    })));

const proofArb: fc.Arbitrary<Proof> = fc.constantFrom(...ISSUERS).chain((issuer) =>
  fc.record({
    issuer: fc.constant(issuer),
    claims: fc
      .tuple(fc.constantFrom(...FIXTURES[issuer]!), fc.option(fc.constantFrom(...KEYS)))
      .map(([claims, drop]) => {
        const copy = structuredClone(claims);
        if (drop && !drop.startsWith('/')) delete copy[drop];
        return copy;
      }),
  }),
);

const policyArb = (proof: Proof): fc.Arbitrary<Policy> =>
  fc
    .integer({ min: 1, max: 6 })
    .chain((n) => fc.tuple(...Array.from({ length: n }, (_, i) => ruleArb(i, proof))))
    .map((rules) => ({ issuers: [], rules }));

const sometimes = <T>(arb: fc.Arbitrary<T>): fc.Arbitrary<T | undefined> =>
  fc.oneof({ weight: 2, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: arb });

const requestArb: fc.Arbitrary<GrantRequest> = fc.record({
  kind: fc.constantFrom('jwt', 'x509'),
  scopes: sometimes(fc.array(fc.oneof({ weight: 9, arbitrary: fc.constantFrom(...SCOPES) }, { weight: 1, arbitrary: fc.constant('not:granted') }), { maxLength: 3 })),
  audiences: sometimes(fc.array(fc.oneof({ weight: 9, arbitrary: fc.constantFrom(...AUDIENCES) }, { weight: 1, arbitrary: fc.constant('https://evil.example') }), { maxLength: 2 })),
  ttl: sometimes(fc.oneof({ weight: 9, arbitrary: fc.integer({ min: 1, max: 4000 }) }, { weight: 1, arbitrary: fc.oneof(fc.integer({ min: -2, max: 0 }), fc.double()) })),
});

/** An independent reading of "this rule alone grants the whole request". */
function grantsWhole(rule: Rule, claims: Record<string, unknown>, req: GrantRequest): boolean {
  const g = rule.grant;
  const ttl = req.ttl ?? g.ttl;
  if (!g.credentials.includes(req.kind)) return false;
  if (!(req.scopes ?? []).every((s) => g.scopes.includes(s))) return false;
  if (!(req.audiences ?? []).every((a) => g.audiences.includes(a))) return false;
  if (!Number.isInteger(ttl) || ttl < 1 || ttl > g.max_ttl) return false;
  if (!Object.values(g.claims).every((t) => renderClaimValue(compileTemplate(t), claims).ok)) return false;
  if (req.kind === 'jwt') return true;
  return g.x509.uri_sans.every((t) => renderUriSan(compileTemplate(t), claims).ok) && g.x509.dns_sans.every((t) => renderDnsSan(compileTemplate(t), claims).ok);
}

const scenarioArb = proofArb.chain((proof) => fc.tuple(policyArb(proof), fc.constant(proof), requestArb));

describe('decision properties over documented claim sets', () => {
  it('an allowed decision never exceeds the selected rule, whose match holds', () => {
    fc.assert(
      fc.property(scenarioArb, ([policy, proof, req]) => {
        const d = explain(policy, proof, req);
        if (!d.allowed) return;
        const { grant } = d.rule;
        expect(d.rule.issuer).toBe(proof.issuer);
        expect(matchRule(d.rule, proof.claims).matched).toBe(true);
        expect(grant.credentials).toContain(req.kind);
        expect(d.scopes.every((s) => grant.scopes.includes(s))).toBe(true);
        expect(d.audiences.every((a) => grant.audiences.includes(a))).toBe(true);
        expect(Number.isInteger(d.ttl) && d.ttl >= 1 && d.ttl <= grant.max_ttl).toBe(true);
        // Nothing asked is dropped: narrowing is exact, never a silent trim.
        expect(d.scopes).toEqual(req.scopes?.length ? [...new Set(req.scopes)] : grant.scopes);
        expect(d.audiences).toEqual(req.audiences?.length ? [...new Set(req.audiences)] : grant.audiences);
      }),
      { numRuns: 1500 },
    );
  });

  it('selects exactly the first rule that alone grants everything', () => {
    fc.assert(
      fc.property(scenarioArb, ([policy, proof, req]) => {
        const expected = policy.rules.find((r) => r.issuer === proof.issuer && matchRule(r, proof.claims).matched && grantsWhole(r, proof.claims, req));
        const d = explain(policy, proof, req);
        expect(d.allowed ? d.rule.name : undefined).toBe(expected?.name);
        expect(d.trace.every((t) => policy.rules.find((r) => r.name === t.rule)?.issuer === proof.issuer)).toBe(true);
        if (!d.allowed) expect(d.reason).not.toMatch(/octo-repo|coredns|my-project/);
      }),
      { numRuns: 1500 },
    );
  });
});

describe('matching properties', () => {
  const reference = (glob: string) =>
    new RegExp(`^${Array.from(glob, (c) => (c === '*' ? '.*' : c === '?' ? '.' : c.replace(/[\\^$.*+?()[\]{}|/-]/g, '\\$&'))).join('')}$`, 'su');
  const alphabet = fc.constantFrom('a', 'b', '/', '.', '*', '?', '😀', '\\', '(');

  it('globs agree with a regex reading of the same glob', () => {
    fc.assert(
      fc.property(fc.string({ unit: alphabet, maxLength: 8 }), fc.string({ unit: alphabet, maxLength: 10 }), (glob, text) => {
        expect(compileGlob(glob)(text)).toBe(reference(glob).test(text));
      }),
      { numRuns: 3000 },
    );
  });

  it('arbitrary claims never throw, and absent keys never match', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string(), fc.jsonValue()), fc.constantFrom(...ISSUERS).chain((i) => matchArb(i)), (claims, match) => {
        const { matched, reasons } = matchRule({ match }, claims);
        expect(reasons).toHaveLength(Object.keys(match).length);
        if (Object.keys(match).some((k) => readClaim(claims, k) === undefined)) expect(matched).toBe(false);
      }),
    );
  });

  it('SPIFFE SANs rendered from any claim value keep the literal trust domain', () => {
    const template = compileTemplate('spiffe://acme.internal/gh/{{ claims.repository }}');
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme-ascii', maxLength: 30 }), (repository) => {
        const out = renderUriSan(template, { repository });
        if (out.ok) expect(out.value).toBe(`spiffe://acme.internal/gh/${repository}`);
        if (out.ok) expect(out.value).toMatch(/^spiffe:\/\/acme\.internal\/gh\/[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)*$/);
      }),
    );
  });
});
