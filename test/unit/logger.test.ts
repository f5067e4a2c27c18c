import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const LOGGER = fileURLToPath(new URL('../../src/observability/logger.ts', import.meta.url));

/** A node process (with tsx) that creates the production logger and runs `body` with it as `log`. */
const script = (body: string): string[] => [
  '--import',
  'tsx',
  '--input-type=module',
  '-e',
  `import { createLogger } from ${JSON.stringify(LOGGER)}; const log = createLogger({ level: 'info', pretty: false }); ${body}`,
];

const lines = (stdout: string): Record<string, unknown>[] =>
  stdout.split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as Record<string, unknown>);

describe('the production logger (buffered writes)', () => {
  it('writes every buffered line when the process dies of an uncaught error', () => {
    const run = spawnSync(process.execPath, script(`for (let i = 0; i < 3; i++) log.info({ n: i }, 'before the crash'); setTimeout(() => { throw new Error('boom'); }, 10);`), {
      encoding: 'utf8',
      timeout: 20_000,
    });
    expect(run.status).not.toBe(0);
    expect(run.stderr).toContain('boom');
    expect(lines(run.stdout).map((l) => [l.msg, l.n])).toEqual([
      ['before the crash', 0],
      ['before the crash', 1],
      ['before the crash', 2],
    ]);
  });

  it('writes the lines of a quiet process while it is still running, not only at exit', async () => {
    const child = spawn(process.execPath, script(`log.info({ quiet: true }, 'one line'); setTimeout(() => undefined, 30_000);`), { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      let out = '';
      child.stdout.setEncoding('utf8');
      const seen = new Promise<string>((resolve) => child.stdout.on('data', (d: string) => { out += d; if (out.includes('\n')) resolve(out); }));
      expect(lines(await seen)).toMatchObject([{ msg: 'one line', quiet: true, service: 'leash' }]);
      expect(child.exitCode).toBeNull();
    } finally {
      child.kill('SIGKILL');
    }
  });
});
