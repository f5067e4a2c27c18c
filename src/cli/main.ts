/**
 * The `leash` command: builds the program, runs it, and turns every failure into a message on
 * stderr and one of the documented exit codes.
 */
import { readFileSync } from 'node:fs';
import { Command, CommanderError, Option } from 'commander';
import { registerAudit } from './audit.ts';
import { registerBreakGlass } from './break-glass.ts';
import { CliError, DEFAULT_BROKER_URL, EXIT } from './client.ts';
import { registerExchange } from './exchange.ts';
import { registerKeys } from './keys.ts';
import { registerLeases } from './leases.ts';
import { registerPolicy } from './policy.ts';

const EXIT_CODES_HELP = `
Environment:
  LEASH_URL     broker URL (--url)
  LEASH_TOKEN   operator or task token (--token); flags override the environment

Exit codes:
  0  ok
  1  the broker refused the request (4xx: the error code and description are printed)
  2  usage error (bad flags or arguments, unreadable file, confirmation refused)
  3  broker, Redis or CI token endpoint unavailable (5xx, connection refused, timeout)
  4  policy lint errors, or policy explain denied the request`;

const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

export function buildProgram(): Command {
  const program = new Command('leash')
    .description('Leash: short-lived credentials for workloads, every one a lease')
    .version(version, '-V, --version')
    .addOption(new Option('--url <url>', 'broker URL').env('LEASH_URL').default(DEFAULT_BROKER_URL))
    .addOption(new Option('--token <token>', 'bearer token for operator and task commands').env('LEASH_TOKEN'))
    .option('--json', 'machine-readable output')
    .showHelpAfterError('(add --help for usage)')
    .exitOverride()
    .addHelpText('after', EXIT_CODES_HELP);
  registerExchange(program);
  registerLeases(program);
  registerAudit(program);
  registerPolicy(program);
  registerKeys(program);
  registerBreakGlass(program);
  return program;
}

/** Runs one invocation and returns its exit code (the process is left to the caller). */
export async function runCli(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : EXIT.OK;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Commander has already printed help or the error; --help and --version are successes.
      return err.exitCode === 0 ? EXIT.OK : EXIT.USAGE;
    }
    if (err instanceof CliError) {
      process.stderr.write(`leash: ${err.message}\n`);
      return err.exitCode;
    }
    process.stderr.write(`leash: unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    return EXIT.REFUSED;
  }
}

// A reader that stops early (`leash leases list | head -1`) is not an error of ours.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(process.exitCode ?? EXIT.OK);
  throw err;
});

const code = await runCli(process.argv);
// Let stdout drain (a piped token must arrive whole) before the exit code is set in stone.
process.exitCode = code;
