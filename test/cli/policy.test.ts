import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { BIN, runCli } from './run-cli.ts';

let dir: string;
const GOOD = `
issuers:
  - { name: github, issuer: https://token.actions.githubusercontent.com, audiences: [https://leash.test] }
rules:
  - name: operators
    issuer: github
    match: { sub: "repo:octo-org/ops:*" }
    grant: { scopes: [leash:admin], audiences: ["\${LEASH_ISSUER}"], ttl: 10m, max_ttl: 1h }
  - name: deploy
    issuer: github
    match: { repository: octo-org/octo-repo, ref: refs/heads/main }
    grant:
      scopes: [deploy:write, artifacts:read]
      audiences: [https://deploy.acme.internal]
      ttl: 10m
      max_ttl: 1h
      credentials: [jwt, x509]
      claims: { repo: "{{ claims.repository }}" }
      x509: { uri_sans: ["spiffe://acme.internal/gh/{{ claims.repository }}"] }
`;
const BAD = `
issuers:
  - { name: github, issuer: https://token.actions.githubusercontent.com, audiences: [https://leash.test] }
rules:
  - name: deploy
    issuer: github
    match: { repository: octo-org/octo-repo }
    grant: { scopes: [deploy:write], audiences: [https://deploy.acme.internal], max_tll: 1h, ttl: soon }
`;
const claims = { sub: 'repo:octo-org/octo-repo:ref:refs/heads/main', repository: 'octo-org/octo-repo', ref: 'refs/heads/main' };

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'leash-cli-policy-'));
  writeFileSync(join(dir, 'good.yaml'), GOOD);
  writeFileSync(join(dir, 'bad.yaml'), BAD);
  writeFileSync(join(dir, 'claims.json'), JSON.stringify(claims));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('leash policy lint', { timeout: 120_000 }, () => {
  it('a good file: exit 0 and the counts', async () => {
    const r = await runCli(['policy', 'lint', join(dir, 'good.yaml')]);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe('ok: 1 issuer, 2 rules');
  });

  it('a rule without match: still valid (exit 0), but lint warns that it admits every proof of its issuer', async () => {
    const open = GOOD.replace('    match: { sub: "repo:octo-org/ops:*" }\n', '');
    writeFileSync(join(dir, 'open.yaml'), open);
    const r = await runCli(['policy', 'lint', join(dir, 'open.yaml')]);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('warning: rule operators has no match: every proof of issuer github is a candidate');
    expect(r.stdout.trim()).toBe('ok: 1 issuer, 2 rules');
    const j = await runCli(['policy', 'lint', join(dir, 'open.yaml'), '--json']);
    expect(JSON.parse(j.stdout).warnings).toEqual([expect.stringContaining('rule operators has no match')]);
    const good = await runCli(['policy', 'lint', join(dir, 'good.yaml'), '--json']);
    expect(JSON.parse(good.stdout).warnings).toBeUndefined();
  });

  it('a bad file: exit 4, every error with its path in the file', async () => {
    const r = await runCli(['policy', 'lint', join(dir, 'bad.yaml')]);
    expect(r.code).toBe(4);
    expect(r.stderr).toContain('rules[0].grant.max_tll: unknown key');
    expect(r.stderr).toContain('rules[0].grant.ttl:');
    const j = await runCli(['policy', 'lint', join(dir, 'bad.yaml'), '--json']);
    expect(j.code).toBe(4);
    expect(JSON.parse(j.stdout)).toMatchObject({ ok: false });
  });

  it('an unreadable file is a usage error (exit 2)', async () => {
    const r = await runCli(['policy', 'lint', join(dir, 'missing.yaml')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('ENOENT');
  });
});

describe('leash policy explain', { timeout: 120_000 }, () => {
  it('allow: the selected rule, what it grants, and the trace of every rule looked at', async () => {
    const r = await runCli(['policy', 'explain', join(dir, 'good.yaml'), '--claims', join(dir, 'claims.json'), '--issuer', 'github', '--scope', 'deploy:write', '--ttl', '5m']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('decision: allow');
    expect(r.stdout).toContain('rule: deploy');
    expect(r.stdout).toContain('scopes: deploy:write');
    expect(r.stdout).toContain('ttl: 5m (300s');
    expect(r.stdout).toMatch(/operators: not_candidate/);
    expect(r.stdout).toMatch(/deploy: selected/);

    const j = await runCli(['--json', 'policy', 'explain', join(dir, 'good.yaml'), '--claims', '-', '--issuer', 'github', '--kind', 'x509'], { input: JSON.stringify(claims) });
    expect(j.code).toBe(0);
    expect(JSON.parse(j.stdout)).toMatchObject({
      decision: 'allow',
      rule: 'deploy',
      scopes: ['deploy:write', 'artifacts:read'],
      ttl: 600,
      claims: { repo: 'octo-org/octo-repo' },
      x509: { uri_sans: ['spiffe://acme.internal/gh/octo-org/octo-repo'] },
    });
  });

  it('a reader that closes the pipe early (| head -1) gets no EPIPE stack trace', async () => {
    const child = spawn(process.execPath, [BIN, 'policy', 'explain', join(dir, 'good.yaml'), '--claims', join(dir, 'claims.json'), '--issuer', 'github'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout.destroy(); // closed before the CLI writes anything: its first write fails with EPIPE
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(stderr).not.toMatch(/EPIPE|Error/);
    expect(code).toBe(0);
  });

  it('${LEASH_ISSUER} is filled from --leash-issuer', async () => {
    const ops = join(dir, 'ops.json');
    writeFileSync(ops, JSON.stringify({ sub: 'repo:octo-org/ops:ref:refs/heads/main' }));
    const args = ['--json', 'policy', 'explain', join(dir, 'good.yaml'), '--claims', ops, '--issuer', 'github', '--audience', 'https://leash.internal'];
    expect((await runCli(args)).code).toBe(4);
    const r = await runCli([...args, '--leash-issuer', 'https://leash.internal']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ rule: 'operators', audiences: ['https://leash.internal'] });
  });

  it('deny: exit 4 with the code, the reason and the trace', async () => {
    const r = await runCli(['--json', 'policy', 'explain', join(dir, 'good.yaml'), '--claims', join(dir, 'claims.json'), '--issuer', 'github', '--ttl', '2h']);
    expect(r.code).toBe(4);
    const d = JSON.parse(r.stdout);
    expect(d).toMatchObject({ decision: 'deny', code: 'invalid_request' });
    expect(d.trace.map((t: { rule: string; outcome: string }) => [t.rule, t.outcome])).toEqual([
      ['operators', 'not_candidate'],
      ['deploy', 'insufficient'],
    ]);
    const human = await runCli(['policy', 'explain', join(dir, 'good.yaml'), '--claims', join(dir, 'claims.json'), '--issuer', 'github', '--scope', 'leash:admin']);
    expect(human.code).toBe(4);
    expect(human.stdout).toContain('decision: deny (invalid_scope)');
  });

  it('an issuer the policy does not name, or claims that are not an object: usage errors', async () => {
    const r = await runCli(['policy', 'explain', join(dir, 'good.yaml'), '--claims', join(dir, 'claims.json'), '--issuer', 'gitlab']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('github');
    const s = await runCli(['policy', 'explain', join(dir, 'good.yaml'), '--claims', '-', '--issuer', 'github'], { input: '[1]' });
    expect(s.code).toBe(2);
  });
});
