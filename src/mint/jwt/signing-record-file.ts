import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { laterUse, SIGNING_RECORD_FILE, type KeyUse, type SigningRecord } from './signing-record.ts';

/** An unreadable value (JSON writes Infinity as null) counts as forever: the safe reading for prune. */
const msOrForever = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? v : Infinity);

/**
 * The signing record of a broker without Redis (dev mode): `<keysDir>/signing-record.json`,
 * `{ "<kid>": { "signed_until": ms, "live_until": ms } }`, replaced whole by a rename.
 */
export function createFileSigningRecord(keysDir: string): SigningRecord {
  const file = join(keysDir, SIGNING_RECORD_FILE);
  const read = (): Map<string, KeyUse> => {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return new Map();
      throw err;
    }
    const out = new Map<string, KeyUse>();
    for (const [kid, v] of Object.entries(JSON.parse(text) as Record<string, { signed_until?: unknown; live_until?: unknown }>)) {
      out.set(kid, { signedUntilMs: msOrForever(v?.signed_until), liveUntilMs: msOrForever(v?.live_until) });
    }
    return out;
  };
  return {
    async note(kid, use) {
      const all = read();
      all.set(kid, laterUse(all.get(kid), use));
      const doc = Object.fromEntries([...all].map(([k, u]) => [k, { signed_until: u.signedUntilMs, live_until: u.liveUntilMs }]));
      const tmp = `${file}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
      writeFileSync(tmp, JSON.stringify(doc) + '\n', { mode: 0o600 });
      renameSync(tmp, file);
    },
    async read() {
      return read();
    },
  };
}
