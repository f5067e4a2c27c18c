import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';
import { ROOT } from '../helpers/build.ts';

const run = promisify(execFile);
const bench = (args: string[]) =>
  run(process.execPath, ['--import', 'tsx', 'bench/run.ts', ...args], { cwd: ROOT, timeout: 30_000 }).then(
    (r) => ({ code: 0, ...r }),
    (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
  );

it('`npm run bench -- --help` lists the sections and options and runs nothing', async () => {
  const r = await bench(['--help']);
  expect(r.code).toBe(0);
  expect(r.stdout).toMatch(/^Usage: npm run bench/);
  for (const s of ['exchange', 'scaleout', 'certs', 'expiry', 'memory', 'bulk', 'BENCH_PAIRS', '--only']) expect(r.stdout).toContain(s);
});

it('an unknown argument is a usage error (exit 2), not a full run', async () => {
  const r = await bench(['--fast']);
  expect(r.code).toBe(2);
  expect(r.stderr).toContain("Unknown option '--fast'");
});
