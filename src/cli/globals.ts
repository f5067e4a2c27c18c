import type { Command } from 'commander';
import { createInterface } from 'node:readline/promises';
import { parseDuration } from '../util/duration.ts';
import { createClient, usageError, type BrokerClient } from './client.ts';

/** The options every command inherits from `leash` itself. */
export interface GlobalOptions {
  url: string;
  token: string | undefined;
  json: boolean;
}

export function globalsOf(cmd: Command): GlobalOptions {
  const o = cmd.optsWithGlobals<{ url: string; token?: string; json?: boolean }>();
  const token = o.token?.trim();
  return { url: o.url, token: token === '' ? undefined : token, json: o.json === true };
}

export const clientFor = (cmd: Command): BrokerClient => {
  const g = globalsOf(cmd);
  return createClient({ url: g.url, token: g.token });
};

/** Commander collector for repeatable options (`--audience a --audience b`). */
export const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

/** `90s`, `10m`, `1h30m` or whole seconds; a usage error names the flag otherwise. */
export function durationFlag(flag: string, value: string): number {
  const seconds = parseDuration(value);
  if (seconds === undefined) throw usageError(`${flag} must be a duration like 90s, 10m, 1h or whole seconds, not ${JSON.stringify(value)}`);
  return seconds;
}

export const isInteractive = (): boolean => process.stdin.isTTY === true && process.stderr.isTTY === true;

/**
 * Asks a yes/no question on the terminal. Destructive commands call this unless `--yes`;
 * without a terminal there is nobody to ask, so they refuse (exit 2) rather than proceed.
 */
export async function confirmOrRefuse(question: string, yes: boolean): Promise<void> {
  if (yes) return;
  if (!isInteractive()) throw usageError(`${question.replace(/\?$/, '')}: refusing without --yes (no terminal to confirm on)`);
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = await rl.question(`${question} [y/N] `);
    if (!/^y(es)?$/i.test(answer.trim())) throw usageError('not confirmed; nothing was changed');
  } finally {
    rl.close();
  }
}

export async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(Buffer.from(chunk as Buffer));
  return Buffer.concat(chunks).toString('utf8');
}
