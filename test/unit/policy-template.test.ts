import { fixtureClaims, type FixtureFile } from '../helpers/claim-fixtures.ts';
import { describe, expect, it } from 'vitest';
import { thrown } from '../helpers/thrown.ts';
import {
  checkTemplate,
  compileTemplate,
  isValidDnsName,
  isValidSpiffeId,
  isValidUriSan,
  renderClaimValue,
  renderDnsSan,
  renderUriSan,
  TemplateSyntaxError,
} from '../../src/policy/template.ts';

const claimsOf = (file: string, name: string): Record<string, unknown> => fixtureClaims(file.replace(/\.json$/, '') as FixtureFile, name);

const gh = claimsOf('github-actions.json', 'environment-production');
const ghColon = claimsOf('github-actions.json', 'environment-colon-escaped');
const k8s = claimsOf('kubernetes-sa.json', 'pod-bound-default-projected');
const gitlab = claimsOf('gitlab-ci.json', 'branch-main');

const uri = (source: string, claims: Record<string, unknown>) => renderUriSan(compileTemplate(source), claims);
const dns = (source: string, claims: Record<string, unknown>) => renderDnsSan(compileTemplate(source), claims);
const claim = (source: string, claims: Record<string, unknown>) => renderClaimValue(compileTemplate(source), claims);

describe('template syntax', () => {
  it('splits literal text and claim references, whitespace optional', () => {
    expect(compileTemplate('gh/{{claims.repository}}/{{  claims./kubernetes.io/namespace  }}!').parts).toEqual([
      'gh/',
      { key: 'repository' },
      '/',
      { key: '/kubernetes.io/namespace' },
      '!',
    ]);
    expect(compileTemplate('plain { text }').parts).toEqual(['plain { text }']);
    expect(compileTemplate('').parts).toEqual([]);
  });

  it.each([
    '{{ claims.repository',
    'repo }}',
    '{{ env.HOME }}',
    '{{ claims. x }}',
    '{{ claims.repository | upper }}',
    '{{{ claims.x }}}',
    '{{ claims./a~2 }}',
  ])('rejects %j', (source) => {
    expect(() => compileTemplate(source)).toThrow(TemplateSyntaxError);
    expect(thrown(() => compileTemplate(source))).toMatchObject({ code: 'ERR_TEMPLATE_SYNTAX' });
  });

  it('says which expressions exist: the message is what `leash policy lint` shows the operator', () => {
    expect(checkTemplate('{{ env.HOME }}', 'claim')).toBe(
      'unknown template expression "{{ env.HOME }}": use {{ claims.NAME }} or {{ claims./json/pointer }}',
    );
  });
});

describe('rendering claims', () => {
  it('inserts scalar claims, numbers as text', () => {
    expect(claim('{{ claims.repository }}@{{ claims.ref }}', gh)).toEqual({ ok: true, value: 'octo-org/octo-repo@refs/heads/main' });
    expect(claim('runner-{{claims.runner_id}}', gitlab)).toEqual({ ok: true, value: 'runner-12270852' });
  });

  it('never re-expands a claim value that looks like a template', () => {
    const claims = { ...gh, workflow: '{{ claims.repository }}' };
    expect(claim('{{ claims.workflow }}', claims)).toEqual({ ok: true, value: '{{ claims.repository }}' });
  });

  it('fails on absent, object or control-character claims, naming the key only', () => {
    expect(claim('{{ claims.nope }}', gh)).toEqual({ ok: false, reason: 'claim nope is absent' });
    expect(claim('{{ claims.kubernetes.io }}', k8s)).toEqual({ ok: false, reason: 'claim kubernetes.io is not a string, number or boolean' });
    expect(claim('{{ claims.aud }}', k8s)).toEqual({ ok: false, reason: 'claim aud is not a string, number or boolean' });
    const out = claim('{{ claims.actor }}', { actor: 'secret\nvalue' });
    expect(out).toEqual({ ok: false, reason: 'claim actor contains control characters' });
  });
});

describe('URI SANs', () => {
  it('renders GitHub claims into a SPIFFE ID', () => {
    expect(uri('spiffe://acme.internal/gh/{{ claims.repository }}/env/{{ claims.environment }}', gh)).toEqual({
      ok: true,
      value: 'spiffe://acme.internal/gh/octo-org/octo-repo/env/Production',
    });
  });

  it('renders Kubernetes claims into a SPIFFE ID by JSON Pointer', () => {
    const source = 'spiffe://cluster.local/ns/{{claims./kubernetes.io/namespace}}/sa/{{claims./kubernetes.io/serviceaccount/name}}';
    expect(uri(source, k8s)).toEqual({ ok: true, value: 'spiffe://cluster.local/ns/kube-system/sa/coredns' });
  });

  it('refuses a claim value that does not fit a SPIFFE path', () => {
    expect(uri('spiffe://acme.internal/gh/env/{{ claims.environment }}', ghColon).ok).toBe(false); // "Production:V1"
    expect(uri('spiffe://acme.internal/gh/{{ claims.head_ref }}', gh).ok).toBe(false); // "" leaves an empty segment
  });

  it.each([
    ['path traversal', '../../admin'],
    ['dot segment', '.'],
    ['query', 'app?admin=1'],
    ['fragment', 'app#x'],
    ['percent escape', 'app%2F..%2Fadmin'],
    ['space', 'app admin'],
    ['newline', 'app\nadmin'],
    ['backslash', 'app\\admin'],
    ['non-ASCII', 'аpp'],
    ['template text', '{{ claims.sub }}'],
    ['authority smuggling', '@evil.example/x'],
  ])('refuses injection by %s', (_label, value) => {
    const claims = { ...gh, repository: value };
    expect(uri('spiffe://acme.internal/gh/{{ claims.repository }}', claims).ok).toBe(false);
  });

  it('keeps generic URIs absolute and free of dot segments', () => {
    expect(uri('https://ci.example.com/repos/{{claims.repository}}', gh)).toEqual({ ok: true, value: 'https://ci.example.com/repos/octo-org/octo-repo' });
    expect(uri('https://ci.example.com/repos/{{claims.repository}}', { repository: '../x' }).ok).toBe(false);
    expect(uri('https://ci.example.com/{{claims.repository}}', { repository: 'a?b' }).ok).toBe(false);
    expect(uri('urn:acme:{{claims.repository_id}}', gh)).toEqual({ ok: true, value: 'urn:acme:74' });
  });

  it('reports failures without the claim value', () => {
    const out = uri('spiffe://acme.internal/{{ claims.repository }}', { repository: 'top/../secret-thing' });
    expect(out.ok).toBe(false);
    if (!out.ok) expect(out.reason).not.toContain('secret-thing');
  });
});

describe('DNS SANs', () => {
  it('renders lowercase names from claims', () => {
    expect(dns('{{claims./kubernetes.io/serviceaccount/name}}.{{claims./kubernetes.io/namespace}}.svc', k8s)).toEqual({
      ok: true,
      value: 'coredns.kube-system.svc',
    });
    expect(dns('*.{{ claims.repository_owner }}.apps.example.com', gh)).toEqual({ ok: true, value: '*.octo-org.apps.example.com' });
  });

  it.each([
    ['uppercase', 'Production'],
    ['a dot adds a label', 'evil.com'],
    ['wildcard from a claim', '*'],
    ['empty', ''],
    ['leading hyphen', '-x'],
    ['too long label', 'a'.repeat(64)],
    ['underscore', 'a_b'],
  ])('refuses a claim value that is %s', (_label, value) => {
    expect(dns('{{ claims.environment }}.deploy.example.com', { environment: value }).ok).toBe(false);
  });
});

describe('validators', () => {
  it('checks SPIFFE IDs', () => {
    expect(isValidSpiffeId('spiffe://example.org/ns/default/sa/web')).toBe(true);
    for (const bad of [
      'spiffe://example.org',
      'spiffe://example.org/',
      'spiffe://Example.org/a',
      'spiffe://example.org:443/a',
      'spiffe://user@example.org/a',
      'spiffe://example.org/a//b',
      'spiffe://example.org/a/../b',
      'spiffe://example.org/a?x=1',
      'spiffe://example.org/a#f',
      'SPIFFE://example.org/a',
      `spiffe://example.org/${'a'.repeat(2040)}`,
    ]) {
      expect(isValidSpiffeId(bad), bad).toBe(false);
      expect(isValidUriSan(bad), bad).toBe(false);
    }
  });

  it('checks URIs and DNS names', () => {
    expect(isValidUriSan('https://example.com/a/b?c=d#e')).toBe(true);
    for (const bad of ['example.com/a', 'https://exa mple.com', 'https://example.com/%zz', 'https://x/a#b#c', 'https://x/./a', 'ht tp://x']) {
      expect(isValidUriSan(bad), bad).toBe(false);
    }
    expect(isValidDnsName('api.example.com', false)).toBe(true);
    expect(isValidDnsName('*.example.com', true)).toBe(true);
    expect(isValidDnsName('*.example.com', false)).toBe(false);
    expect(isValidDnsName('*.com', true)).toBe(false);
    expect(isValidDnsName('a.*.example.com', true)).toBe(false);
    expect(isValidDnsName('example.com.', false)).toBe(false);
    expect(isValidDnsName(`${'a.'.repeat(126)}ab`, false)).toBe(false);
  });
});

describe('load-time template checks', () => {
  it.each([
    ['claim', 'deploy-{{ claims.repository }}', undefined],
    ['uri_san', 'spiffe://acme.internal/gh/{{ claims.repository }}', undefined],
    ['uri_san', 'urn:acme:{{ claims.repository_id }}', undefined],
    ['uri_san', 'spiffe://{{ claims.repository_owner }}.example/x', 'placeholders may only follow a literal scheme and authority (e.g. spiffe://example.org/...)'],
    ['uri_san', 'https:/{{ claims.x }}', 'placeholders may only follow a literal scheme and authority (e.g. spiffe://example.org/...)'],
    ['uri_san', '{{ claims.x }}', 'placeholders may only follow a literal scheme and authority (e.g. spiffe://example.org/...)'],
    ['uri_san', 'spiffe://Acme.internal/{{ claims.x }}', 'cannot render a valid SPIFFE ID (tried each placeholder as "x")'],
    ['uri_san', 'spiffe://acme.internal', 'not a valid SPIFFE ID'],
    ['uri_san', 'not a uri', 'not a valid absolute URI'],
    ['dns_san', '{{ claims.x }}.Example.com', 'cannot render a valid lowercase DNS name (tried each placeholder as "x")'],
    ['dns_san', 'a.*.example.com', 'not a valid lowercase DNS name (a wildcard only as a leading "*.")'],
    ['dns_san', '{{ claims.x }}', undefined],
    ['dns_san', '{{ claims.x ', '"{{" is never closed with "}}"'],
  ] as const)('%s %j', (target, source, expected) => {
    expect(checkTemplate(source, target)).toBe(expected);
  });
});
