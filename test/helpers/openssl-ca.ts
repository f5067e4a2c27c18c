import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openssl } from './csr.ts';

export interface OpensslCaOptions {
  /** Days the intermediate is valid (openssl x509 -days). */
  days?: number;
  /** The intermediate's keyUsage, as openssl's config writes it. */
  keyUsage?: string;
  /** Extra lines for the intermediate's extension section, e.g. nameConstraints. */
  extraExtensions?: string[];
}

/**
 * An EC P-256 root and intermediate made with openssl under `<keysDir>/ca/`, the way an operator
 * brings their own CA; the root's key stays in `work`.
 */
export function opensslCa(keysDir: string, work: string, opts: OpensslCaOptions = {}): void {
  const ca = join(keysDir, 'ca');
  mkdirSync(ca, { recursive: true });
  mkdirSync(work, { recursive: true });
  const run = (args: string[]): void => {
    const r = openssl(args);
    if (r.status !== 0) throw new Error(`openssl ${args[0]} failed: ${r.stderr}`);
  };
  const rootKey = join(work, 'root.key');
  run(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', rootKey]);
  run(['req', '-x509', '-new', '-key', rootKey, '-subj', '/CN=Test Root', '-days', '30',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign', '-out', join(ca, 'root.pem')]);
  run(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', join(ca, 'ca.key.pem')]);
  run(['req', '-new', '-key', join(ca, 'ca.key.pem'), '-subj', '/CN=Test Issuing', '-out', join(work, 'ca.csr')]);
  const ext = join(work, 'ca-ext.cnf');
  writeFileSync(ext, ['[v3]', 'basicConstraints=critical,CA:TRUE,pathlen:0', `keyUsage=${opts.keyUsage ?? 'critical,keyCertSign,cRLSign'}`,
    'subjectKeyIdentifier=hash', 'authorityKeyIdentifier=keyid', ...(opts.extraExtensions ?? [])].join('\n') + '\n');
  run(['x509', '-req', '-in', join(work, 'ca.csr'), '-CA', join(ca, 'root.pem'), '-CAkey', rootKey, '-CAcreateserial', '-days', String(opts.days ?? 20),
    '-extfile', ext, '-extensions', 'v3', '-out', join(ca, 'ca.pem')]);
}
