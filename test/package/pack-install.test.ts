import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ROOT } from '../helpers/build.ts';

// The package as users get it: `npm pack`, installed into a project that has no TypeScript
// loader, gives a working `leash` command and an importable, typed `leash/verify`.
const run = promisify(execFile);
let dir: string;
let project: string;

/** A PATH with Node but not this repository's node_modules/.bin (no tsx, no tsc). */
const plainEnv = (): NodeJS.ProcessEnv => ({
  PATH: (process.env.PATH ?? '').split(':').filter((p) => !p.includes('node_modules')).join(':'),
  HOME: process.env.HOME,
  npm_config_cache: process.env.npm_config_cache,
});

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'leash-pack-'));
  // dist/ is fresh (the test setup builds it), so packing needs no prepare script.
  await run('npm', ['pack', '--ignore-scripts', '--pack-destination', dir], { cwd: ROOT, env: { ...process.env } });
  const tarball = readdirSync(dir).find((f) => f.endsWith('.tgz'))!;
  project = join(dir, 'app');
  mkdirSync(project);
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'resource-server', private: true, type: 'module' }));
  await run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--ignore-scripts', join(dir, tarball)], { cwd: project, env: plainEnv(), maxBuffer: 16 << 20 });
}, 240_000);

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

it('installs a `leash` command that runs on plain Node', async () => {
  const { stdout } = await run(join(project, 'node_modules/.bin/leash'), ['--help'], { cwd: project, env: plainEnv() });
  expect(stdout).toContain('Usage: leash');
  expect(stdout).toContain('break-glass');
  const { stdout: version } = await run(join(project, 'node_modules/.bin/leash'), ['--version'], { cwd: project, env: plainEnv() });
  expect(version.trim()).toMatch(/^\d+\.\d+\.\d+/);
});

it('`leash/verify` imports on plain Node, without the broker', async () => {
  const script = "const m = await import('leash/verify'); console.log(typeof m.createLeashVerifier, typeof m.leashAuth);";
  const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], { cwd: project, env: plainEnv() });
  expect(stdout.trim()).toBe('function function');
});

it('`leash/verify` has type declarations a TypeScript project resolves', async () => {
  writeFileSync(join(project, 'check.ts'), [
    "import { createLeashVerifier, type LeashVerifyError } from 'leash/verify';",
    'export const make: typeof createLeashVerifier = createLeashVerifier;',
    'export type E = LeashVerifyError;',
    // A wrong call must be a type error, which proves the declarations are read, not `any`.
    '// @ts-expect-error createLeashVerifier takes options',
    'createLeashVerifier(42);',
    '',
  ].join('\n'));
  writeFileSync(join(project, 'tsconfig.json'), JSON.stringify({
    compilerOptions: { module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, noEmit: true, skipLibCheck: true, types: [] },
    files: ['check.ts'],
  }));
  const tsc = join(ROOT, 'node_modules/typescript/bin/tsc');
  await expect(run(process.execPath, [tsc, '-p', project], { cwd: project, env: plainEnv() })).resolves.toBeDefined();
});
