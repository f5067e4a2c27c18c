import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

/**
 * The module boundaries of src/ (issue 14), read from the import statements themselves so they
 * stay true: each rule lists the imports that break it, and an empty list passes.
 */
const SRC = resolve(dirname(fileURLToPath(import.meta.url)), '../../src');

interface Import {
  /** The importing file, relative to src/ (`leases/memory-store.ts`). */
  from: string;
  /** A package name (`ioredis`) or a file relative to src/ (`audit/events.ts`). */
  to: string;
  /** The names imported, when the statement lists them. */
  names: string[];
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sourceFiles(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

// Static imports and re-exports (`import ... from`, `export ... from`, bare `import '...'`) and import('...').
const IMPORT = /(?:^|\n)\s*(?:import|export)\s+(?:type\s+)?(?:([\s\S]*?)\s+from\s+)?'([^']+)'|import\(\s*'([^']+)'\s*\)/g;

function importsOf(file: string): Import[] {
  const text = readFileSync(file, 'utf8');
  const out: Import[] = [];
  for (const m of text.matchAll(IMPORT)) {
    const spec = m[2] ?? m[3]!;
    const names = /\{([^}]*)\}/.exec(m[1] ?? '')?.[1]?.split(',').map((n) => n.replace(/^\s*type\s+/, '').split(/\s+as\s+/)[0]!.trim()).filter(Boolean) ?? [];
    const to = spec.startsWith('.') ? relative(SRC, resolve(dirname(file), spec)) : spec;
    out.push({ from: relative(SRC, file), to, names });
  }
  return out;
}

const imports = sourceFiles(SRC).flatMap(importsOf);
const folderOf = (path: string): string => (path.includes('/') ? path.slice(0, path.indexOf('/')) : '');
const show = (i: Import): string => `${i.from} -> ${i.to}`;
const breaking = (pred: (i: Import) => boolean): string[] => imports.filter(pred).map(show);

describe('module boundaries of src/', () => {
  it('finds the imports it checks (a broken reader would pass every rule)', () => {
    expect(imports.length).toBeGreaterThan(300);
    expect(imports.map(show)).toContain('redis/connect.ts -> ioredis');
    expect(imports.map(show)).toContain('leases/redis-store.ts -> redis/keys.ts');
  });

  it('only redis/ imports ioredis (types included): everything above names RedisClient', () => {
    expect(breaking((i) => (i.to === 'ioredis' || i.to.startsWith('ioredis/')) && folderOf(i.from) !== 'redis')).toEqual([]);
  });

  it('redis/ and util/ import no module above them', () => {
    const below = (i: Import): boolean => i.to.startsWith('.') || !i.to.includes('.ts') || ['redis', 'util'].includes(folderOf(i.to)) || i.to === 'errors.ts';
    expect(breaking((i) => ['redis', 'util'].includes(folderOf(i.from)) && !below(i))).toEqual([]);
    expect(breaking((i) => folderOf(i.from) === 'util' && folderOf(i.to) === 'redis')).toEqual([]);
  });

  it('leases/ imports neither proofs/ nor audit/ implementations, only its event type and JSON', () => {
    const allowed = new Set(['audit/events.ts', 'audit/event-json.ts']);
    expect(breaking((i) => folderOf(i.from) === 'leases' && (folderOf(i.to) === 'proofs' || (folderOf(i.to) === 'audit' && !allowed.has(i.to))))).toEqual([]);
  });

  it('audit/ and proofs/ import nothing from leases/', () => {
    expect(breaking((i) => ['audit', 'proofs'].includes(folderOf(i.from)) && folderOf(i.to) === 'leases')).toEqual([]);
  });

  it('dashboard/ and exchange/ import nothing from http/ (the routes), and http/ no route from dashboard/ but its layout', () => {
    expect(breaking((i) => ['dashboard', 'exchange', 'rate-limit', 'auth', 'request'].includes(folderOf(i.from)) && folderOf(i.to) === 'http')).toEqual([]);
    expect(breaking((i) => folderOf(i.from) === 'http' && folderOf(i.to) === 'dashboard' && i.to !== 'dashboard/layout.ts')).toEqual([]);
  });

  it('newLeaseId comes from leases/lease-id.ts, wherever it is imported', () => {
    expect(breaking((i) => i.names.includes('newLeaseId') && i.to !== 'leases/lease-id.ts')).toEqual([]);
  });

  it('the folders of src/ import each other without a cycle', () => {
    const edges = new Map<string, Set<string>>();
    for (const i of imports) {
      const a = folderOf(i.from);
      const b = i.to.endsWith('.ts') ? folderOf(i.to) : '';
      if (a && b && a !== b) edges.set(a, (edges.get(a) ?? new Set()).add(b));
    }
    const cycles: string[] = [];
    const visit = (node: string, path: string[]): void => {
      if (path.includes(node)) {
        cycles.push([...path.slice(path.indexOf(node)), node].join(' -> '));
        return;
      }
      for (const next of edges.get(node) ?? []) visit(next, [...path, node]);
    };
    for (const start of edges.keys()) visit(start, []);
    expect(cycles).toEqual([]);
  });
});
