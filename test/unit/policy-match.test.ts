import { fixtureClaims, type FixtureFile } from '../helpers/claim-fixtures.ts';
import { describe, expect, it } from 'vitest';
import { compileGlob, matchRule, readClaim, ruleMatches } from '../../src/policy/match.ts';
import type { Matcher } from '../../src/policy/types.ts';

const claimsOf = (file: string, name: string): Record<string, unknown> => fixtureClaims(file.replace(/\.json$/, '') as FixtureFile, name);

const gh = claimsOf('github-actions.json', 'push-main');
const ghEnv = claimsOf('github-actions.json', 'environment-production');
const k8s = claimsOf('kubernetes-sa.json', 'pod-bound-default-projected');
const gitlab = claimsOf('gitlab-ci.json', 'documented-example-self-managed');
const gitlabMain = claimsOf('gitlab-ci.json', 'branch-main');

const holds = (match: Record<string, Matcher>, claims: Record<string, unknown>) => matchRule({ match }, claims).matched;

describe('globs', () => {
  it('matches exactly without wildcards, case-sensitively', () => {
    expect(holds({ repository: 'octo-org/octo-repo' }, gh)).toBe(true);
    expect(holds({ repository: 'Octo-Org/octo-repo' }, gh)).toBe(false);
    expect(holds({ repository: 'octo-org/octo-rep' }, gh)).toBe(false);
    expect(holds({ repository: 'octo-org/octo-repo/' }, gh)).toBe(false);
  });

  it('anchors both ends; * spans any run including /', () => {
    expect(holds({ sub: 'repo:octo-org/*' }, gh)).toBe(true);
    expect(holds({ sub: 'repo:octo-org/*:ref:refs/heads/main' }, gh)).toBe(true);
    expect(holds({ sub: 'octo-org/*' }, gh)).toBe(false);
    expect(holds({ job_workflow_ref: 'octo-org/octo-repo/*@refs/heads/main' }, gh)).toBe(true);
    expect(holds({ job_workflow_ref: '*@refs/heads/*' }, gh)).toBe(true);
    expect(holds({ job_workflow_ref: '*@refs/tags/*' }, gh)).toBe(false);
    expect(holds({ ref: '*' }, gh)).toBe(true);
  });

  it('? is exactly one code point, also outside the BMP', () => {
    expect(holds({ ref: 'refs/heads/mai?' }, gh)).toBe(true);
    expect(holds({ ref: 'refs/heads/ma?' }, gh)).toBe(false);
    expect(compileGlob('a?b')('a😀b')).toBe(true);
    expect(compileGlob('a??b')('a😀b')).toBe(false);
    expect(compileGlob('?')('')).toBe(false);
  });

  it('handles repeated stars and overlapping pieces', () => {
    expect(compileGlob('a*a*a')('aaa')).toBe(true);
    expect(compileGlob('a*a*a')('aa')).toBe(false);
    expect(compileGlob('*ab*ab')('xabab')).toBe(true);
    expect(compileGlob('**')('')).toBe(true);
    expect(compileGlob('a*?')('a')).toBe(false);
    expect(compileGlob('*a*a*a*a*a*a*b')('a'.repeat(5000))).toBe(false);
  });

  it('treats regex and other metacharacters in patterns as literal text', () => {
    expect(compileGlob('a.b')('axb')).toBe(false);
    expect(compileGlob('(a|b)')('a')).toBe(false);
    expect(compileGlob('[ab]')('a')).toBe(false);
    expect(compileGlob('a+')('aa')).toBe(false);
    expect(compileGlob('^a$')('^a$')).toBe(true);
    expect(compileGlob('\\d')('\\d')).toBe(true);
  });

  it('matches glob metacharacters inside claim values literally', () => {
    const claims = { ...gh, repository: 'octo-org/*', ref: 'refs/heads/?', workflow: '.*' };
    expect(holds({ repository: 'octo-org/octo-repo' }, claims)).toBe(false);
    expect(holds({ ref: 'refs/heads/main' }, claims)).toBe(false);
    expect(holds({ workflow: 'example-workflow' }, claims)).toBe(false);
    expect(holds({ repository: 'octo-org/*' }, claims)).toBe(true);
  });

  it('does not let Unicode look-alikes match', () => {
    expect(holds({ repository: 'octo-org/octo-repo' }, { repository: 'octo-оrg/octo-repo' })).toBe(false); // Cyrillic о
    expect(holds({ repository: 'octo-org/octo-repo' }, { repository: 'octo-org／octo-repo' })).toBe(false); // fullwidth solidus
    expect(holds({ actor: 'café' }, { actor: 'cafe\u0301' })).toBe(false); // NFD vs NFC
    expect(holds({ repository: 'octo-org/*' }, { repository: 'octo‐org/x' })).toBe(false); // U+2010 hyphen
  });
});

describe('lists and negation', () => {
  it('a list matches when any entry does', () => {
    expect(holds({ environment: ['staging', 'Production'] }, ghEnv)).toBe(true);
    expect(holds({ environment: ['staging', 'production'] }, ghEnv)).toBe(false);
  });

  it('{not} holds when the claim is present and matches none', () => {
    expect(holds({ event_name: { not: 'pull_request' } }, gh)).toBe(true);
    expect(holds({ event_name: { not: ['pull_request', 'push'] } }, gh)).toBe(false);
    expect(holds({ ref: { not: 'refs/pull/*' } }, claimsOf('github-actions.json', 'pull-request'))).toBe(false);
  });

  it('an absent claim never matches, also under not', () => {
    expect(holds({ environment: '*' }, gh)).toBe(false);
    expect(holds({ environment: { not: 'Production' } }, gh)).toBe(false);
    expect(holds({ environment: { not: ['a', 'b'] } }, gh)).toBe(false);
    expect(matchRule({ match: { environment: 'x' } }, gh).reasons).toEqual(['environment: absent']);
  });

  it('an empty match holds for any claims', () => {
    expect(holds({}, gh)).toBe(true);
  });
});

describe('claim values', () => {
  it('reads nested claims by JSON Pointer', () => {
    expect(holds({ '/kubernetes.io/namespace': 'kube-system' }, k8s)).toBe(true);
    expect(holds({ '/kubernetes.io/serviceaccount/name': 'core*' }, k8s)).toBe(true);
    expect(holds({ '/kubernetes.io/namespace': 'default' }, k8s)).toBe(false);
    expect(holds({ '/kubernetes.io/missing': { not: 'x' } }, k8s)).toBe(false);
    expect(holds({ 'kubernetes.io': '*' }, k8s)).toBe(false); // an object never matches
    expect(readClaim(k8s, '/kubernetes.io/pod/name')).toBe('coredns-69cbfb9798-jv9gn');
  });

  it('unescapes ~1 and ~0 and follows array indices', () => {
    const claims = { 'a/b': { 'c~d': 'yes' }, list: ['x', 'y'] };
    expect(readClaim(claims, '/a~1b/c~0d')).toBe('yes');
    expect(readClaim(claims, '/list/1')).toBe('y');
    expect(readClaim(claims, '/list/01')).toBeUndefined();
    expect(readClaim(gitlab, '/user_identities/1/provider')).toBe('bitbucket');
    expect(holds({ '/user_identities/0/extern_uid': '2435223452345' }, gitlab)).toBe(true);
  });

  it('never resolves inherited properties', () => {
    expect(readClaim(gh, 'constructor')).toBeUndefined();
    expect(readClaim(gh, '/constructor/name')).toBeUndefined();
    expect(readClaim(k8s, '/kubernetes.io/__proto__')).toBeUndefined();
    expect(holds({ toString: '*' }, gh)).toBe(false);
  });

  it('an array claim matches if any element does; not requires that none does', () => {
    expect(holds({ aud: 'https://kubernetes.default.svc' }, k8s)).toBe(true);
    expect(holds({ groups_direct: 'myothergroup/*' }, gitlab)).toBe(true);
    expect(holds({ groups_direct: { not: 'admins/*' } }, gitlab)).toBe(true);
    expect(holds({ groups_direct: { not: 'mygroup/*' } }, gitlab)).toBe(false);
    expect(holds({ user_identities: '*' }, gitlab)).toBe(false); // list of objects
    expect(holds({ user_identities: { not: 'x' } }, gitlab)).toBe(false);
    expect(holds({ tags: 'a' }, { tags: [{ x: 1 }, 'a'] })).toBe(true);
    expect(holds({ tags: { not: 'b' } }, { tags: [{ x: 1 }, 'a'] })).toBe(false);
  });

  it('compares numbers and booleans by their text', () => {
    expect(gitlabMain.runner_id).toBeTypeOf('number');
    expect(holds({ runner_id: '12270852' }, gitlabMain)).toBe(true);
    expect(holds({ runner_id: '1227*' }, gitlabMain)).toBe(true);
    expect(holds({ runner_id: { not: '1' } }, gitlabMain)).toBe(true);
    expect(holds({ email_verified: 'true' }, { email_verified: true })).toBe(true);
    expect(holds({ x: '*' }, { x: null })).toBe(false);
  });

  it('never matches a value holding control characters, not even under not', () => {
    const tricked = { ...gh, ref: 'refs/heads/main\nrefs/heads/evil', repository: 'octo-org/octo-repo\u0000' };
    expect(holds({ ref: 'refs/heads/main*' }, tricked)).toBe(false);
    expect(holds({ ref: '*' }, tricked)).toBe(false);
    expect(holds({ ref: { not: 'refs/heads/main' } }, tricked)).toBe(false);
    expect(holds({ repository: 'octo-org/octo-repo?' }, tricked)).toBe(false);
    expect(holds({ tag: '*' }, { tag: ['ok', 'bad\u007f'] })).toBe(false);
    expect(holds({ tag: '*' }, { tag: 'tab\there' })).toBe(false);
  });
});

describe('explanations', () => {
  it('names each key and pattern but never the claim value', () => {
    const { matched, reasons } = matchRule(
      { match: { repository: 'octo-org/octo-repo', ref: ['refs/heads/dev', 'refs/tags/*'], event_name: { not: 'pull_request' }, environment: 'x' } },
      gh,
    );
    expect(matched).toBe(false);
    expect(reasons).toEqual([
      'repository matched "octo-org/octo-repo"',
      'ref did not match any of "refs/heads/dev", "refs/tags/*"',
      'event_name matched none of "pull_request"',
      'environment: absent',
    ]);
    expect(reasons.join(' ')).not.toContain('refs/heads/main');
    expect(matchRule({ match: { event_name: { not: 'push' } } }, gh).reasons).toEqual(['event_name matched excluded "push"']);
  });

  it('ruleMatches agrees with matchRule', () => {
    const rule = { match: { repository: 'octo-org/*', ref: { not: 'refs/pull/*' } } as Record<string, Matcher> };
    for (const claims of [gh, ghEnv, claimsOf('github-actions.json', 'pull-request')]) {
      expect(ruleMatches(rule, claims)).toBe(matchRule(rule, claims).matched);
    }
  });
});
