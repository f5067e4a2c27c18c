/**
 * Reads a V8 .cpuprofile (node --cpu-prof) and names the hot spots: self time by function, self
 * time by module (a package under node_modules, a file under src/, or a node: internal), and the
 * inclusive time of Leash's own functions on the exchange path.
 */
import { readFileSync } from 'node:fs';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  hitCount?: number;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface HotSpot {
  name: string;
  ms: number;
  pct: number;
}

export interface ProfileSummary {
  totalMs: number;
  /** Share of samples in which the process was idle (waiting on I/O). */
  idlePct: number;
  gcPct: number;
  topSelf: HotSpot[];
  topModules: HotSpot[];
  /** Inclusive time of functions defined under src/ (what each Leash step costs, children included). */
  topLeashInclusive: HotSpot[];
  /** Every sample charged to the innermost component that owns it (see ownerOf). */
  byOwner: HotSpot[];
}

/**
 * The component a sample belongs to: walking from the leaf towards the root, the first frame of a
 * known package or Leash file decides (node internals and natives are charged to whoever called
 * them: a socket write under ioredis is Redis client cost, a sign under src/mint/jwt is minting).
 */
function ownerOf(modules: string[]): string {
  for (const m of modules) {
    if (m === 'pino' || m.startsWith('@pinojs/') || m === 'sonic-boom' || m === 'src/audit/log-sink.ts') return 'logging (pino, redaction)';
    if (m === 'ioredis' || m === 'bullmq' || m === 'redis-parser' || m === 'cluster-key-slot') return 'Redis client (ioredis incl. its socket writes)';
    if (m === 'jose' || m.startsWith('src/proofs/')) return 'proof verification (ES256 verify, token peek, claim checks)';
    if (m === 'src/mint/jwt/sign.ts') return 'ES256 mint of the access token (node:crypto sign)';
    if (m.startsWith('src/mint/x509/') || m === '@peculiar/x509' || m === '@peculiar/asn1-schema' || m === 'asn1js' || m === 'pvtsutils') return 'X.509 (CSR parse, certificate issue)';
    if (m === 'prom-client') return 'metrics (prom-client)';
    if (m === 'undici' || m === 'node:internal/deps/undici/undici' || m.startsWith('node:internal/webstreams') || m === '@hono/node-server' || m === 'hono' || m === 'src/request/read-form.ts') {
      return 'HTTP layer (node:http, @hono/node-server Request/streams, hono)';
    }
    if (m.startsWith('src/')) return 'Leash code (policy, lease, parsing, audit event, glue)';
  }
  for (const m of modules) {
    if (m.startsWith('node:_http') || m === 'node:net' || m === 'node:internal/stream_base_commons') return 'HTTP layer (node:http, @hono/node-server Request/streams, hono)';
    if (m.startsWith('node:internal/crypto')) return 'crypto, other (random ids)';
  }
  return 'runtime, other (microtasks, timers, program)';
}

const ROOT = /^file:\/\/\/work\/main\//;

function moduleOf(url: string): string {
  if (!url) return '(native / V8)';
  if (url.startsWith('node:')) return url;
  const path = url.replace(/^file:\/\//, '');
  const nm = path.lastIndexOf('/node_modules/');
  if (nm >= 0) {
    const rest = path.slice(nm + '/node_modules/'.length).split('/');
    return rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]!;
  }
  const src = /\/(src|bench|test)\/(.*)$/.exec(path);
  if (src) return `${src[1]}/${src[2]}`;
  return path;
}

function frameName(f: CallFrame): string {
  const where = f.url ? `${moduleOf(f.url)}:${f.lineNumber + 1}` : '';
  return `${f.functionName || '(anonymous)'}${where ? ` ${where}` : ''}`;
}

export function summarizeProfile(file: string, top = 15): ProfileSummary {
  const p = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map<number, ProfileNode>();
  for (const n of p.nodes) byId.set(n.id, n);
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

  // Self time per node from samples and their time deltas (microseconds).
  const selfUs = new Map<number, number>();
  for (let i = 0; i < p.samples.length; i++) {
    const id = p.samples[i]!;
    const dt = p.timeDeltas[i + 1] ?? p.timeDeltas[i] ?? 0;
    selfUs.set(id, (selfUs.get(id) ?? 0) + Math.max(0, dt));
  }
  let totalUs = 0;
  for (const v of selfUs.values()) totalUs += v;

  const bySelf = new Map<string, number>();
  const byModule = new Map<string, number>();
  let idleUs = 0;
  let gcUs = 0;
  for (const [id, us] of selfUs) {
    const f = byId.get(id)!.callFrame;
    if (f.functionName === '(idle)') { idleUs += us; continue; }
    if (f.functionName === '(garbage collector)') gcUs += us;
    if (f.functionName === '(program)' || f.functionName === '(garbage collector)') {
      byModule.set(f.functionName, (byModule.get(f.functionName) ?? 0) + us);
      bySelf.set(f.functionName, (bySelf.get(f.functionName) ?? 0) + us);
      continue;
    }
    const name = frameName(f);
    bySelf.set(name, (bySelf.get(name) ?? 0) + us);
    const m = moduleOf(f.url);
    byModule.set(m, (byModule.get(m) ?? 0) + us);
  }

  // Inclusive time of src/ functions: each sample counts once for every distinct src frame above it.
  const inclusive = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const f = byId.get(cur)!.callFrame;
      if (!ROOT.test(f.url) || !f.url.includes('/src/')) continue;
      const name = frameName(f);
      if (seen.has(name)) continue;
      seen.add(name);
      inclusive.set(name, (inclusive.get(name) ?? 0) + us);
    }
  }

  // Owner of each sampled stack.
  const owners = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const leaf = byId.get(id)!.callFrame.functionName;
    if (leaf === '(idle)') continue;
    let owner: string;
    if (leaf === '(garbage collector)') owner = 'garbage collection';
    else {
      const modules: string[] = [];
      for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
        const f = byId.get(cur)!.callFrame;
        if (f.url) modules.push(moduleOf(f.url));
      }
      owner = ownerOf(modules);
    }
    owners.set(owner, (owners.get(owner) ?? 0) + us);
  }

  const busyUs = Math.max(1, totalUs - idleUs);
  const rank = (m: Map<string, number>): HotSpot[] =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, us]) => ({ name, ms: us / 1000, pct: (100 * us) / busyUs }));
  return {
    totalMs: totalUs / 1000,
    idlePct: (100 * idleUs) / Math.max(1, totalUs),
    gcPct: (100 * gcUs) / busyUs,
    topSelf: rank(bySelf),
    topModules: rank(byModule),
    topLeashInclusive: rank(inclusive),
    byOwner: rank(owners),
  };
}

export function formatProfile(s: ProfileSummary): string {
  const rows = (title: string, list: HotSpot[]): string =>
    [`#### ${title}`, '', '| % of busy CPU | ms | where |', '|---:|---:|---|', ...list.map((h) => `| ${h.pct.toFixed(1)} | ${h.ms.toFixed(0)} | \`${h.name}\` |`), ''].join('\n');
  return [
    `Profile: ${(s.totalMs / 1000).toFixed(1)} s sampled, ${s.idlePct.toFixed(0)}% idle, GC ${s.gcPct.toFixed(1)}% of busy time.`,
    '',
    rows('By component (each sample charged to the innermost package or Leash module on its stack)', s.byOwner),
    rows('Self time by module', s.topModules),
    rows('Self time by function', s.topSelf),
    rows('Inclusive time of Leash functions (src/)', s.topLeashInclusive),
  ].join('\n');
}

/** A node of a V8 sampling heap profile (`HeapProfiler.stopSampling`). */
export interface AllocationNode {
  callFrame: CallFrame;
  selfSize: number;
  children: AllocationNode[];
}

/**
 * The bytes a sampling heap profile saw allocated, in all and by site (the allocating function and
 * its two callers), largest first. Unlike CPU time on this shared machine, the figure repeats from
 * run to run to a fraction of a per cent, so it compares two builds where their timings cannot.
 */
export function allocationSites(head: AllocationNode, top = 20): { total: number; sites: { site: string; bytes: number }[] } {
  const bySite = new Map<string, number>();
  let total = 0;
  const walk = (n: AllocationNode, callers: string[]): void => {
    const here = frameName(n.callFrame);
    if (n.selfSize > 0) {
      const site = [here, ...callers.slice(0, 2)].join(' < ');
      bySite.set(site, (bySite.get(site) ?? 0) + n.selfSize);
      total += n.selfSize;
    }
    for (const c of n.children) walk(c, [here, ...callers]);
  };
  walk(head, []);
  const sites = [...bySite].map(([site, bytes]) => ({ site, bytes })).sort((a, b) => b.bytes - a.bytes).slice(0, top);
  return { total, sites };
}
