/**
 * Where `leash exchange` gets its workload proof: given on the command line, from a file or
 * stdin, or from the CI's own mechanism. A proof is a bearer credential: it is never printed,
 * logged, or put in an error message.
 */
import { existsSync, readFileSync } from 'node:fs';
import { CliError, EXIT, send, usageError } from './client.ts';
import { readStdin } from './globals.ts';

export const PROOF_SOURCES = ['github', 'gitlab', 'kubernetes', 'auto'] as const;
export type ProofSource = (typeof PROOF_SOURCES)[number];

/** Where a projected service account token is mounted by convention (volume `leash`). */
export const KUBERNETES_TOKEN_PATH = '/var/run/secrets/tokens/leash';

export interface ProofOptions {
  proof?: string;
  proofFile?: string;
  from?: string;
  /** Audience asked of GitHub's token endpoint. */
  proofAudience: string;
  /** Environment variable holding a GitLab `id_tokens:` token. */
  proofEnv: string;
}

type Env = Record<string, string | undefined>;

export async function obtainProof(opts: ProofOptions, env: Env = process.env): Promise<string> {
  // --proof-file is a source of its own, or with --from kubernetes|auto the token file to read.
  const fileIsPath = opts.from === 'kubernetes' || opts.from === 'auto';
  const given = [opts.proof !== undefined, opts.proofFile !== undefined && !fileIsPath, opts.from !== undefined].filter(Boolean).length;
  if (given === 0) throw usageError('give the proof: --proof TOKEN, --proof-file PATH (- for stdin), or --from github|gitlab|kubernetes|auto');
  if (given > 1) throw usageError('give only one of --proof, --proof-file and --from (--proof-file names the token file with --from kubernetes|auto)');
  let proof: string;
  if (opts.proof !== undefined) proof = opts.proof;
  else if (opts.from === undefined) proof = await readProofFile(opts.proofFile!);
  else proof = await fromCi(checkSource(opts.from), opts, env);
  return checkProofShape(proof);
}

function checkSource(from: string): ProofSource {
  if (!(PROOF_SOURCES as readonly string[]).includes(from)) throw usageError(`--from must be one of ${PROOF_SOURCES.join(', ')}`);
  return from as ProofSource;
}

async function readProofFile(path: string): Promise<string> {
  if (path === '-') return readStdin();
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw usageError(`cannot read the proof file ${path} (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
}

/** A compact JWS; the message says what is wrong without quoting any of it. */
function checkProofShape(raw: string): string {
  const proof = raw.trim();
  if (proof === '') throw usageError('the proof is empty');
  if (!/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/.test(proof)) throw usageError('the proof is not a JWT (expected three base64url parts separated by dots)');
  return proof;
}

async function fromCi(source: ProofSource, opts: ProofOptions, env: Env): Promise<string> {
  switch (source) {
    case 'github':
      return fromGithub(opts.proofAudience, env);
    case 'gitlab':
      return fromGitlab(opts.proofEnv, env);
    case 'kubernetes':
      return fromKubernetes(opts.proofFile ?? KUBERNETES_TOKEN_PATH);
    case 'auto':
      return fromCi(detectSource(opts, env), opts, env);
  }
}

/** Picks the mechanism from the environment the job runs in; refuses rather than guessing. */
export function detectSource(opts: Pick<ProofOptions, 'proofEnv' | 'proofFile'>, env: Env): Exclude<ProofSource, 'auto'> {
  if (env.ACTIONS_ID_TOKEN_REQUEST_URL) return 'github';
  if (env[opts.proofEnv] || env.CI_JOB_JWT_V2 || env.GITLAB_CI) return 'gitlab';
  if (existsSync(opts.proofFile ?? KUBERNETES_TOKEN_PATH)) return 'kubernetes';
  throw usageError(
    `--from auto found no proof: not GitHub Actions (ACTIONS_ID_TOKEN_REQUEST_URL unset), no ${opts.proofEnv} or CI_JOB_JWT_V2, ` +
      `and no token file at ${opts.proofFile ?? KUBERNETES_TOKEN_PATH}`,
  );
}

/** GitHub Actions: the runner's ID token endpoint, with the audience the broker's policy trusts. */
async function fromGithub(audience: string, env: Env): Promise<string> {
  const requestUrl = env.ACTIONS_ID_TOKEN_REQUEST_URL;
  const requestToken = env.ACTIONS_ID_TOKEN_REQUEST_TOKEN;
  if (!requestUrl || !requestToken) {
    throw usageError('--from github: ACTIONS_ID_TOKEN_REQUEST_URL/_TOKEN are not set; the job needs `permissions: id-token: write`');
  }
  if (!URL.canParse(requestUrl)) throw usageError('--from github: ACTIONS_ID_TOKEN_REQUEST_URL is not a URL');
  const url = new URL(requestUrl);
  url.searchParams.set('audience', audience);
  const res = await send(url, { headers: { authorization: `bearer ${requestToken}`, accept: 'application/json' } }, 30_000, 'the GitHub Actions ID token endpoint');
  if (!res.ok) {
    throw new CliError(`the GitHub Actions ID token endpoint answered HTTP ${res.status}`, res.status >= 500 ? EXIT.UNAVAILABLE : EXIT.REFUSED);
  }
  const body = (await res.json().catch(() => null)) as { value?: unknown } | null;
  if (typeof body?.value !== 'string') throw new CliError('the GitHub Actions ID token endpoint answered without a token (`value`)', EXIT.UNAVAILABLE);
  return body.value;
}

/** GitLab CI: a token from `id_tokens:` in the named variable, else the older CI_JOB_JWT_V2. */
function fromGitlab(variable: string, env: Env): string {
  const token = env[variable] || env.CI_JOB_JWT_V2;
  if (!token) {
    throw usageError(`--from gitlab: ${variable} is not set; add \`id_tokens: { ${variable}: { aud: <broker audience> } }\` to the job`);
  }
  return token;
}

/** Kubernetes: a projected service account token file (audience set in the pod spec). */
function fromKubernetes(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw usageError(
      `--from kubernetes: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? String(err)}); ` +
        'mount a projected serviceAccountToken with the broker audience there, or pass --proof-file',
    );
  }
}
