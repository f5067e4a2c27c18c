/**
 * `leash exchange`: trade a workload proof for a Leash credential (RFC 8693 at POST /token).
 * Prints only the access token, so `TOKEN=$(leash exchange ...)` just works; with `--cert` the
 * key pair is generated locally and the certificate files are written next to it.
 */
import { Option, type Command } from 'commander';
import { CliError, EXIT, createClient, usageError } from './client.ts';
import { collect, durationFlag, globalsOf } from './globals.ts';
import { note, printJson, printLine } from './output.ts';
import { PROOF_SOURCES, obtainProof } from './proof-source.ts';
import {
  GRANT_TYPE_TOKEN_EXCHANGE,
  TASK_ID_PATTERN,
  TOKEN_TYPE_ID_TOKEN,
  TOKEN_TYPE_JWT,
  TOKEN_TYPE_X509,
} from '../exchange/request.ts';

const SUBJECT_TOKEN_TYPES = { id_token: TOKEN_TYPE_ID_TOKEN, jwt: TOKEN_TYPE_JWT } as const;

interface ExchangeFlags {
  proof?: string;
  proofFile?: string;
  from?: string;
  proofAudience?: string;
  proofEnv: string;
  subjectTokenType: keyof typeof SUBJECT_TOKEN_TYPES;
  scope?: string[];
  audience?: string[];
  ttl?: string;
  taskId?: string;
  cert?: string;
  keyType: string;
}

interface TokenResponse {
  access_token: string;
  issued_token_type: string;
  token_type: string;
  expires_in: number;
  scope?: string;
  lease_id: string;
  certificate_chain?: string[];
}

export function registerExchange(program: Command): void {
  program
    .command('exchange')
    .description('exchange a workload proof for a short-lived access token (or, with --cert, an X.509 certificate)')
    .option('--proof <token>', 'the proof itself (visible in the process list: prefer --proof-file or --from)')
    .option('--proof-file <path>', 'read the proof from a file; - reads stdin')
    .addOption(new Option('--from <source>', 'get the proof from the CI itself (auto detects)').choices([...PROOF_SOURCES]))
    .addOption(new Option('--proof-audience <aud>', 'audience to ask GitHub for (--from github); default: --url').env('LEASH_PROOF_AUDIENCE'))
    .option('--proof-env <name>', 'variable holding the GitLab id_tokens token (--from gitlab)', 'LEASH_ID_TOKEN')
    .addOption(new Option('--subject-token-type <type>', 'how to present the proof').choices(Object.keys(SUBJECT_TOKEN_TYPES)).default('id_token'))
    .option('--scope <scopes>', 'scopes to ask for, space separated (repeatable); default: all the rule grants', collect)
    .option('--audience <aud>', 'audience to ask for (repeatable); default: all the rule grants', collect)
    .option('--ttl <duration>', 'lifetime to ask for, e.g. 300, 10m; default: the rule\'s ttl')
    .option('--task-id <id>', 'bind the lease to a task, ended by `leash task complete`')
    .option('--cert <out-prefix>', 'get a certificate: writes <prefix>.key.pem, <prefix>.pem and <prefix>.chain.pem')
    .option('--key-type <type>', 'key type for --cert: ec-p256, ec-p384, ed25519 or rsa-2048', 'ec-p256')
    .addHelpText(
      'after',
      `
Prints the access token alone (or the whole response with --json).
  TOKEN=$(leash exchange --from github --proof-audience https://leash.example.com --scope deploy:write)
  leash exchange --from auto --cert ./svc --key-type ed25519`,
    )
    .action(async (flags: ExchangeFlags, cmd: Command) => runExchange(flags, cmd));
}

async function runExchange(flags: ExchangeFlags, cmd: Command): Promise<void> {
  const g = globalsOf(cmd);
  const client = createClient({ url: g.url });
  if (flags.cert === undefined && cmd.getOptionValueSource('keyType') === 'cli') throw usageError('--key-type only applies with --cert');
  // Validate everything local before the proof is fetched: a single-use proof is not wasted on a typo.
  const form = baseForm(flags);
  const cert = flags.cert === undefined ? undefined : await import('./cert-request.ts');
  const keyType = cert?.checkKeyType(flags.keyType);

  const proof = await obtainProof({
    ...(flags.proof === undefined ? {} : { proof: flags.proof }),
    ...(flags.proofFile === undefined ? {} : { proofFile: flags.proofFile }),
    ...(flags.from === undefined ? {} : { from: flags.from }),
    proofAudience: flags.proofAudience ?? client.baseUrl,
    proofEnv: flags.proofEnv,
  });
  form.set('subject_token', proof);
  form.set('subject_token_type', SUBJECT_TOKEN_TYPES[flags.subjectTokenType]);

  if (!cert || keyType === undefined) {
    const res = await client.request<TokenResponse>('POST', '/token', { form, auth: false });
    if (g.json) printJson(res);
    else printLine(res.access_token);
    return;
  }
  const { privateKeyPem, csrPem } = await cert.createKeyAndCsr(keyType);
  form.set('requested_token_type', TOKEN_TYPE_X509);
  form.set('csr', csrPem);
  const res = await client.request<TokenResponse>('POST', '/token', { form, auth: false });
  if (res.issued_token_type !== TOKEN_TYPE_X509) throw new CliError('the broker did not answer with a certificate', EXIT.UNAVAILABLE);
  const files = cert.writeCertFiles(flags.cert!, privateKeyPem, res.access_token, res.certificate_chain ?? []);
  if (g.json) printJson({ ...res, files });
  else {
    printLine(`${files.key}\n${files.cert}\n${files.chain}`);
    note(`certificate for lease ${res.lease_id}, valid ${res.expires_in}s`);
  }
}

/** The request fields that do not depend on the proof. */
function baseForm(flags: ExchangeFlags): URLSearchParams {
  const form = new URLSearchParams({ grant_type: GRANT_TYPE_TOKEN_EXCHANGE });
  const scopes = (flags.scope ?? []).flatMap((s) => s.split(/\s+/)).filter((s) => s !== '');
  if (scopes.length > 0) form.set('scope', [...new Set(scopes)].join(' '));
  for (const aud of flags.audience ?? []) form.append('audience', aud);
  if (flags.ttl !== undefined) form.set('ttl', String(durationFlag('--ttl', flags.ttl)));
  if (flags.taskId !== undefined) {
    if (!TASK_ID_PATTERN.test(flags.taskId)) throw usageError('--task-id must be 1 to 128 characters of A-Z a-z 0-9 . _ : @ / -');
    form.set('task_id', flags.taskId);
  }
  return form;
}
