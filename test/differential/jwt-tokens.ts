/**
 * Token recipes for the differential proof tests: a fast-check arbitrary describing a compact JWS
 * (header, claims, how each segment is spelled, which key signs it, what is done to it after), and
 * the code that builds the token from a recipe with node:crypto. Nothing here uses Leash's code:
 * the tokens must be as strange as real senders (and attackers) can make them.
 */
import { constants, createHmac, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import fc from 'fast-check';
import { fixtureExamples, type FixtureFile } from '../helpers/claim-fixtures.ts';

export const ISS = 'https://issuer.differential.example';
export const AUDS = ['https://leash.test', 'https://leash-b.test'];
export const SKEW = 30;
export const MAX_AGE = 600;
/** Leash's default limit on a subject token (ProofVerifier maxTokenBytes). */
export const MAX_TOKEN_BYTES = 16_384;

/** Every JWS algorithm Leash accepts for proofs (src/policy/schema.ts ALGORITHMS), spelled out independently. */
export const LEASH_ALGS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'] as const;
type LeashAlg = (typeof LEASH_ALGS)[number];
const OTHER_ALGS = ['none', 'None', 'HS256', 'HS512', 'ES256K', 'Ed25519', 'RS1', ''] as const;

type KeyName = 'rsa' | 'rsaPinned' | 'rsaSmall' | 'p256' | 'p384' | 'p521' | 'ed25519';
interface TestKey {
  kid: string;
  privateKey: KeyObject;
  publicKey: KeyObject;
  /** The algorithm this key signs with when the header names one it cannot use. */
  natural: LeashAlg;
  /** JWK `alg` published with it, if any. */
  pinned?: LeashAlg;
}
export interface Keys {
  published: Record<KeyName, TestKey>;
  /** Same types, never published: a signature by one of these is a forgery. */
  unpublished: Record<KeyName, TestKey>;
  jwks: { keys: Record<string, unknown>[] };
}

function pair(name: KeyName): { privateKey: KeyObject; publicKey: KeyObject } {
  switch (name) {
    case 'rsa':
    case 'rsaPinned':
      return generateKeyPairSync('rsa', { modulusLength: 2048 });
    case 'rsaSmall':
      return generateKeyPairSync('rsa', { modulusLength: 1024 });
    case 'p256':
      return generateKeyPairSync('ec', { namedCurve: 'P-256' });
    case 'p384':
      return generateKeyPairSync('ec', { namedCurve: 'P-384' });
    case 'p521':
      return generateKeyPairSync('ec', { namedCurve: 'P-521' });
    case 'ed25519':
      return generateKeyPairSync('ed25519');
  }
}

const NATURAL: Record<KeyName, LeashAlg> = { rsa: 'RS256', rsaPinned: 'PS384', rsaSmall: 'RS256', p256: 'ES256', p384: 'ES384', p521: 'ES512', ed25519: 'EdDSA' };
const KEY_NAMES = Object.keys(NATURAL) as KeyName[];

export function makeKeys(): Keys {
  const make = (prefix: string): Record<KeyName, TestKey> =>
    Object.fromEntries(
      KEY_NAMES.map((n) => [n, { kid: `${prefix}-${n}`, natural: NATURAL[n], ...pair(n), ...(n === 'rsaPinned' ? { pinned: 'PS384' as const } : {}), ...(n === 'ed25519' ? { pinned: 'EdDSA' as const } : {}) }]),
    ) as Record<KeyName, TestKey>;
  const published = make('pub');
  const unpublished = make('unpub');
  // rsaSmall last: both Leash and jose's documented multiple-keys loop stop at the first key they
  // cannot use, so its place decides what kid-less RS/PS tokens by other keys meet.
  const order: KeyName[] = ['rsa', 'rsaPinned', 'p256', 'p384', 'p521', 'ed25519', 'rsaSmall'];
  const jwks = {
    keys: order.map((n) => {
      const k = published[n];
      return { ...(k.publicKey.export({ format: 'jwk' }) as Record<string, unknown>), kid: k.kid, use: 'sig', ...(k.pinned ? { alg: k.pinned } : {}) };
    }),
  };
  return { published, unpublished, jwks };
}

/** The key family an algorithm needs (or null for algorithms no key here can sign). */
function familyOf(alg: string): 'rsa' | 'ec256' | 'ec384' | 'ec521' | 'ed' | null {
  if (/^(RS|PS)(256|384|512)$/.test(alg)) return 'rsa';
  return ({ ES256: 'ec256', ES384: 'ec384', ES512: 'ec521', EdDSA: 'ed' } as Record<string, 'ec256' | 'ec384' | 'ec521' | 'ed'>)[alg] ?? null;
}
const FAMILY_OF_KEY: Record<KeyName, string> = { rsa: 'rsa', rsaPinned: 'rsa', rsaSmall: 'rsa', p256: 'ec256', p384: 'ec384', p521: 'ec521', ed25519: 'ed' };
const RIGHT_KEY: Record<string, KeyName> = { rsa: 'rsa', ec256: 'p256', ec384: 'p384', ec521: 'p521', ed: 'ed25519' };

/** A JWS signature with node:crypto, raw (r || s) for ECDSA as RFC 7518 wants it. */
function jwsSign(alg: LeashAlg, key: KeyObject, input: Buffer): Buffer {
  const hash = alg === 'EdDSA' ? null : `sha${alg.slice(2)}`;
  if (alg.startsWith('ES')) return sign(hash, input, { key, dsaEncoding: 'ieee-p1363' });
  if (alg.startsWith('PS')) return sign(hash, input, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_DIGEST });
  return sign(hash, input, key);
}

// ---- recipes ---------------------------------------------------------------------------------

/** A claim value that is not an ordinary one: raw JSON text spliced into the payload. */
export type RawNumber = { raw: string };
export type ClaimValue = unknown | RawNumber | undefined;

export interface Recipe {
  alg: string;
  signer: 'right' | 'unpublished' | 'small' | 'wrongType' | 'pinnedRsa';
  kid: 'signer' | 'absent' | 'unknown' | 'number' | 'otherPublished';
  headerExtra: Record<string, unknown>;
  headerText: 'plain' | 'dupAlgFirst' | 'dupAlgLast' | 'loneSurrogate' | 'array' | 'badUtf8';
  fixture: [FixtureFile, number];
  claims: Partial<Record<'iss' | 'aud' | 'sub' | 'jti' | 'exp' | 'iat' | 'nbf', ClaimValue>>;
  payloadText: 'plain' | 'dupSubFirst' | 'dupExpLast' | 'loneSurrogateValue' | 'loneSurrogateKey' | 'surrogatePair' | 'badUtf8' | 'bom' | 'spaced'
    | 'notJson' | 'array' | 'null' | 'string' | 'number' | 'empty' | 'huge';
  headerEnc: Encoding;
  payloadEnc: Encoding;
  sigEnc: SigEncoding;
  tokenShape: 'three' | 'fourSegments' | 'twoSegments' | 'leadingSpace' | 'trailingNewline' | 'fiveSegments';
  /** Milliseconds past the whole second `now` falls in. */
  nowMs: number;
}

export type Encoding = 'canonical' | 'dangling' | 'padded' | 'space' | 'newline' | 'trailingBits' | 'stdAlphabet';
export type SigEncoding = Encoding | 'truncated' | 'extraByte' | 'bitFlip' | 'empty' | 'der';

const FIXTURES: [FixtureFile, number][] = (['github-actions', 'gitlab-ci', 'kubernetes-sa', 'circleci', 'buildkite'] as FixtureFile[]).flatMap((f) =>
  fixtureExamples(f).map((_, i) => [f, i] as [FixtureFile, number]),
);

const raw = (text: string): RawNumber => ({ raw: text });
/** Offsets from now, in seconds, dense around every bound Leash and jose compare against. */
const around = (bounds: number[]): fc.Arbitrary<number> =>
  fc.oneof(
    { arbitrary: fc.constantFrom(...bounds.flatMap((b) => [b - 1, b - 0.5, b, b + 0.5, b + 1])), weight: 4 },
    { arbitrary: fc.integer({ min: -2 * MAX_AGE, max: 2 * MAX_AGE }), weight: 1 },
  );
const oddTime = fc.constantFrom<ClaimValue>('123', null, true, [1], {}, raw('1e999'), raw('-1e999'), raw('1e2'), raw('-0'));

export interface ClaimOffsets {
  exp: ClaimValue;
  iat: ClaimValue;
  nbf: ClaimValue;
}

const claimsArb = fc.record({
  iss: fc.oneof(
    { arbitrary: fc.constant<ClaimValue>(ISS), weight: 12 },
    { arbitrary: fc.constantFrom<ClaimValue>(`${ISS}/`, ISS.toUpperCase(), 'https://other.example', undefined, 7, null, [ISS]), weight: 1 },
  ),
  aud: fc.oneof(
    { arbitrary: fc.constantFrom<ClaimValue>(AUDS[0], AUDS[1], [AUDS[1]!], ['https://x.example', AUDS[0]!]), weight: 10 },
    {
      arbitrary: fc.constantFrom<ClaimValue>('https://x.example', ['https://x.example', 'https://y.example'], [], undefined, 7, null, [7, AUDS[0]!], [null], `${AUDS[0]}/`, { a: AUDS[0] }),
      weight: 3,
    },
  ),
  sub: fc.oneof({ arbitrary: fc.constant<ClaimValue>('fixture'), weight: 12 }, { arbitrary: fc.constantFrom<ClaimValue>('', 42, undefined, null, ['a']), weight: 1 }),
  jti: fc.oneof({ arbitrary: fc.constantFrom<ClaimValue>('fixture', undefined), weight: 12 }, { arbitrary: fc.constantFrom<ClaimValue>('', 5, null), weight: 1 }),
  // Offsets: exp is judged against now - skew, iat against now + skew and now - max_age - skew, nbf against now + skew.
  exp: fc.oneof({ arbitrary: around([-SKEW, 0, SKEW]), weight: 12 }, { arbitrary: fc.constantFrom<ClaimValue>(undefined, 3600), weight: 2 }, { arbitrary: oddTime, weight: 1 }),
  iat: fc.oneof({ arbitrary: around([SKEW, 0, -MAX_AGE - SKEW, -MAX_AGE]), weight: 12 }, { arbitrary: fc.constantFrom<ClaimValue>(undefined), weight: 1 }, { arbitrary: oddTime, weight: 1 }),
  nbf: fc.oneof({ arbitrary: fc.constant<ClaimValue>(undefined), weight: 6 }, { arbitrary: around([SKEW, 0]), weight: 4 }, { arbitrary: oddTime, weight: 1 }),
});

const critArb = fc.constantFrom<Record<string, unknown>>(
  { crit: ['b64'], b64: true },
  { crit: ['b64'] },
  { crit: ['b64'], b64: false },
  { crit: ['exp'], exp: 1 },
  { crit: ['x-unknown'], 'x-unknown': 1 },
  { crit: [] },
  { crit: 'b64', b64: true },
  { crit: [''] },
  { crit: ['b64', 'b64'], b64: true },
);
const headerExtraArb = fc.oneof(
  { arbitrary: fc.constantFrom<Record<string, unknown>>({}, { typ: 'JWT' }, { typ: 'at+jwt' }, { typ: 'JOSE' }, { typ: 7 }, { cty: 'JWT' }), weight: 8 },
  { arbitrary: critArb, weight: 3 },
  {
    arbitrary: fc.constantFrom<Record<string, unknown>>({ b64: false }, { jku: 'https://evil.example/jwks' }, { jwk: { kty: 'oct', k: 'AAAA' } }, { x5u: 'https://evil.example/c' }, { zip: 'DEF' }),
    weight: 2,
  },
);

const encodingArb = fc.oneof(
  { arbitrary: fc.constant<Encoding>('canonical'), weight: 14 },
  { arbitrary: fc.constantFrom<Encoding>('dangling', 'padded', 'space', 'newline', 'trailingBits', 'stdAlphabet'), weight: 3 },
);
const sigEncodingArb = fc.oneof(
  { arbitrary: fc.constant<SigEncoding>('canonical'), weight: 12 },
  { arbitrary: fc.constantFrom<SigEncoding>('dangling', 'padded', 'space', 'newline', 'trailingBits', 'stdAlphabet', 'truncated', 'extraByte', 'bitFlip', 'empty', 'der'), weight: 4 },
);

/** Any recipe: every field drawn from its whole range, so most of these are refused several times over. */
const wildArb: fc.Arbitrary<Recipe> = fc.record({
  alg: fc.oneof({ arbitrary: fc.constantFrom<string>(...LEASH_ALGS), weight: 12 }, { arbitrary: fc.constantFrom<string>(...OTHER_ALGS), weight: 1 }),
  signer: fc.oneof({ arbitrary: fc.constant<Recipe['signer']>('right'), weight: 10 }, { arbitrary: fc.constantFrom<Recipe['signer']>('unpublished', 'small', 'wrongType', 'pinnedRsa'), weight: 2 }),
  kid: fc.oneof({ arbitrary: fc.constant<Recipe['kid']>('signer'), weight: 8 }, { arbitrary: fc.constantFrom<Recipe['kid']>('absent', 'unknown', 'number', 'otherPublished'), weight: 2 }),
  headerExtra: headerExtraArb,
  headerText: fc.oneof({ arbitrary: fc.constant<Recipe['headerText']>('plain'), weight: 12 }, { arbitrary: fc.constantFrom<Recipe['headerText']>('dupAlgFirst', 'dupAlgLast', 'loneSurrogate', 'array', 'badUtf8'), weight: 1 }),
  fixture: fc.constantFrom(...FIXTURES),
  claims: claimsArb,
  payloadText: fc.oneof(
    { arbitrary: fc.constant<Recipe['payloadText']>('plain'), weight: 12 },
    {
      arbitrary: fc.constantFrom<Recipe['payloadText']>('dupSubFirst', 'dupExpLast', 'loneSurrogateValue', 'loneSurrogateKey', 'surrogatePair', 'badUtf8', 'bom', 'spaced', 'notJson', 'array', 'null', 'string', 'number', 'empty', 'huge'),
      weight: 2,
    },
  ),
  headerEnc: encodingArb,
  payloadEnc: encodingArb,
  sigEnc: sigEncodingArb,
  tokenShape: fc.oneof({ arbitrary: fc.constant<Recipe['tokenShape']>('three'), weight: 16 }, { arbitrary: fc.constantFrom<Recipe['tokenShape']>('fourSegments', 'twoSegments', 'leadingSpace', 'trailingNewline', 'fiveSegments'), weight: 1 }),
  nowMs: fc.integer({ min: 0, max: 999 }),
});

/** A proof both must accept: any algorithm, kid or not, any fixture, times well inside every bound. */
const calmArb: fc.Arbitrary<Recipe> = fc.record({
  alg: fc.constantFrom<string>(...LEASH_ALGS),
  signer: fc.constant<Recipe['signer']>('right'),
  kid: fc.constantFrom<Recipe['kid']>('signer', 'absent'),
  headerExtra: fc.constantFrom<Record<string, unknown>>({}, { typ: 'JWT' }, { typ: 'at+jwt' }),
  headerText: fc.constant<Recipe['headerText']>('plain'),
  fixture: fc.constantFrom(...FIXTURES),
  claims: fc.record({
    iss: fc.constant<ClaimValue>(ISS),
    aud: fc.constantFrom<ClaimValue>(AUDS[0], AUDS[1], [AUDS[1]!], ['https://x.example', AUDS[0]!]),
    sub: fc.constant<ClaimValue>('fixture'),
    jti: fc.constantFrom<ClaimValue>('fixture', undefined),
    exp: fc.integer({ min: -SKEW + 2, max: 3600 }),
    iat: fc.integer({ min: -MAX_AGE - SKEW + 2, max: SKEW - 2 }),
    nbf: fc.option(fc.integer({ min: -MAX_AGE, max: SKEW - 2 }), { nil: undefined }),
  }),
  payloadText: fc.constant<Recipe['payloadText']>('plain'),
  headerEnc: fc.constant<Encoding>('canonical'),
  payloadEnc: fc.constant<Encoding>('canonical'),
  sigEnc: fc.constant<SigEncoding>('canonical'),
  tokenShape: fc.constant<Recipe['tokenShape']>('three'),
  nowMs: fc.integer({ min: 0, max: 999 }),
});

const CLAIM_FIELDS = ['iss', 'aud', 'sub', 'jti', 'exp', 'iat', 'nbf'] as const;
const RECIPE_FIELDS = ['alg', 'signer', 'kid', 'headerExtra', 'headerText', 'payloadText', 'headerEnc', 'payloadEnc', 'sigEnc', 'tokenShape'] as const;
type Field = (typeof CLAIM_FIELDS)[number] | (typeof RECIPE_FIELDS)[number];

/**
 * A calm proof with up to three things taken from a wild one: most cases then differ from an
 * accepted proof in one or two ways, so each rule is met alone and next to the bounds of others.
 */
export const recipeArb: fc.Arbitrary<Recipe> = fc
  .tuple(calmArb, wildArb, fc.subarray<Field>([...CLAIM_FIELDS, ...RECIPE_FIELDS], { maxLength: 3 }))
  .map(([calm, wild, fields]) => {
    const out: Recipe = { ...calm, claims: { ...calm.claims } };
    for (const f of fields) {
      if ((CLAIM_FIELDS as readonly string[]).includes(f)) out.claims[f as (typeof CLAIM_FIELDS)[number]] = wild.claims[f as (typeof CLAIM_FIELDS)[number]];
      else (out as unknown as Record<string, unknown>)[f] = (wild as unknown as Record<string, unknown>)[f];
    }
    return out;
  });

// ---- building --------------------------------------------------------------------------------

const b64u = (b: Uint8Array | string): string => Buffer.from(b).toString('base64url');

/** JSON text of an object whose values may be raw JSON number spellings (1e999 has no JS value). */
function jsonWithRaw(obj: Record<string, ClaimValue>): string {
  const parts: string[] = [];
  for (const [k, v] of Object.entries(obj)) {
    if (v === undefined) continue;
    const text = typeof v === 'object' && v !== null && 'raw' in v ? (v as RawNumber).raw : JSON.stringify(v);
    parts.push(`${JSON.stringify(k)}:${text}`);
  }
  return `{${parts.join(',')}}`;
}

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/** Re-spells canonical base64url text `s` (RFC 7515 section 2 wants exactly the canonical form). */
export function respell(s: string, how: Encoding): string {
  switch (how) {
    case 'canonical':
      return s;
    case 'dangling': {
      // A length of 4n + 1 is never valid base64: the last character carries too few bits for a byte.
      let out = s;
      while (out.length % 4 !== 1) out += 'A';
      return out;
    }
    case 'padded':
      return s.length % 4 === 0 ? `${s}====`.slice(0, s.length + 1) : s + '='.repeat(4 - (s.length % 4));
    case 'space':
      return `${s.slice(0, 4)} ${s.slice(4)}`;
    case 'newline':
      return `${s.slice(0, 8)}\n${s.slice(8)}`;
    case 'trailingBits': {
      // Unused low bits of the last character set: the same bytes, a non-canonical spelling.
      const rem = s.length % 4;
      if (rem === 0 || s.length === 0) return s;
      const last = ALPHABET.indexOf(s[s.length - 1]!);
      const unused = rem === 2 ? 0b1111 : 0b11;
      return s.slice(0, -1) + ALPHABET[last | unused]!;
    }
    case 'stdAlphabet':
      return s.replaceAll('-', '+').replaceAll('_', '/') + (s.includes('-') || s.includes('_') ? '' : '+');
  }
}

function respellSignature(sig: Buffer, how: SigEncoding, alg: string): string {
  switch (how) {
    case 'truncated':
      return b64u(sig.subarray(0, Math.max(0, sig.length - 1)));
    case 'extraByte':
      return b64u(Buffer.concat([sig, Buffer.from([0])]));
    case 'bitFlip': {
      const out = Buffer.from(sig);
      if (out.length > 0) out[out.length >> 1]! ^= 0x10;
      return b64u(out);
    }
    case 'empty':
      return '';
    case 'der':
      return b64u(alg.startsWith('ES') && sig.length % 2 === 0 ? p1363ToDer(sig) : sig);
    default:
      return respell(b64u(sig), how);
  }
}

/** An ECDSA (r || s) signature as the DER SEQUENCE of two INTEGERs (what JWS must not carry). */
function p1363ToDer(sig: Buffer): Buffer {
  const int = (b: Buffer): Buffer => {
    let i = 0;
    while (i < b.length - 1 && b[i] === 0) i++;
    let v = b.subarray(i);
    if (v[0]! & 0x80) v = Buffer.concat([Buffer.from([0]), v]);
    return Buffer.concat([Buffer.from([0x02, v.length]), v]);
  };
  const body = Buffer.concat([int(sig.subarray(0, sig.length / 2)), int(sig.subarray(sig.length / 2))]);
  const len = body.length < 0x80 ? Buffer.from([body.length]) : Buffer.from([0x81, body.length]);
  return Buffer.concat([Buffer.from([0x30]), len, body]);
}

function headerBytes(r: Recipe, header: Record<string, unknown>): Buffer {
  const json = JSON.stringify(header);
  switch (r.headerText) {
    case 'plain':
      return Buffer.from(json);
    case 'dupAlgFirst': // an earlier alg the last one overrides: every parser here keeps the last
      return Buffer.from(`{"alg":"none",${json.slice(1)}`);
    case 'dupAlgLast':
      return Buffer.from(`${json.slice(0, -1)},"alg":"HS256"}`);
    case 'loneSurrogate':
      return Buffer.from(`${json.slice(0, -1)},"x":"\\udc00"}`);
    case 'array':
      return Buffer.from(`[${json}]`);
    case 'badUtf8':
      return Buffer.concat([Buffer.from(`${json.slice(0, -1)},"x":"`), Buffer.from([0xc3, 0x28]), Buffer.from('"}')]);
  }
}

function payloadBytes(r: Recipe, claims: Record<string, ClaimValue>): Buffer {
  const json = jsonWithRaw(claims);
  switch (r.payloadText) {
    case 'plain':
      return Buffer.from(json);
    case 'dupSubFirst':
      return Buffer.from(`{"sub":"shadowed",${json.slice(1)}`);
    case 'dupExpLast':
      return Buffer.from(`${json.slice(0, -1)},"exp":1}`);
    case 'loneSurrogateValue':
      return Buffer.from(`${json.slice(0, -1)},"x":{"y":["\\ud800"]}}`);
    case 'loneSurrogateKey':
      return Buffer.from(`${json.slice(0, -1)},"\\udbff":1}`);
    case 'surrogatePair':
      return Buffer.from(`${json.slice(0, -1)},"x":"\\ud83d\\ude00 \\\\ud800"}`);
    case 'badUtf8':
      return Buffer.concat([Buffer.from(`${json.slice(0, -1)},"x":"`), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from('"}')]);
    case 'bom':
      return Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(json)]);
    case 'spaced':
      return Buffer.from(` \n${json}\t `);
    case 'notJson':
      return Buffer.from(json.slice(0, -1));
    case 'array':
      return Buffer.from(`[${json}]`);
    case 'null':
      return Buffer.from('null');
    case 'string':
      return Buffer.from(JSON.stringify(json));
    case 'number':
      return Buffer.from('12');
    case 'empty':
      return Buffer.alloc(0);
    case 'huge':
      return Buffer.from(`${json.slice(0, -1)},"pad":"${'p'.repeat(MAX_TOKEN_BYTES)}"}`);
  }
}

/** The signing key a recipe asks for, given its header alg. */
function signerOf(r: Recipe, keys: Keys): { key: TestKey; published: boolean } {
  const family = familyOf(r.alg);
  const right: KeyName = family ? RIGHT_KEY[family]! : 'p256';
  switch (r.signer) {
    case 'right':
      return { key: keys.published[right], published: true };
    case 'unpublished':
      return { key: keys.unpublished[right], published: false };
    case 'small':
      return { key: keys.published.rsaSmall, published: true };
    case 'pinnedRsa':
      return { key: keys.published.rsaPinned, published: true };
    case 'wrongType': {
      const other = KEY_NAMES.find((n) => FAMILY_OF_KEY[n] !== (family ?? 'ec256') && n !== 'rsaSmall')!;
      return { key: keys.published[other], published: true };
    }
  }
}

export interface Built {
  token: string;
  /** Epoch milliseconds both verifiers are asked at. */
  nowMs: number;
}

/** Builds the token of a recipe at `baseSec` (a whole second) plus the recipe's milliseconds. */
export function build(r: Recipe, keys: Keys, baseSec: number): Built {
  const { key, published } = signerOf(r, keys);
  const kid =
    r.kid === 'signer' ? (published ? key.kid : keys.published[(Object.keys(NATURAL) as KeyName[]).find((n) => keys.unpublished[n] === key)!].kid)
    : r.kid === 'absent' ? undefined
    : r.kid === 'unknown' ? 'no-such-kid'
    : r.kid === 'number' ? 7
    : keys.published[key === keys.published.p256 ? 'p384' : 'p256'].kid;
  const header: Record<string, unknown> = { alg: r.alg, ...(kid === undefined ? {} : { kid }), ...r.headerExtra };
  const [file, index] = r.fixture;
  const base = fixtureExamples(file)[index]!.claims;
  const claims: Record<string, ClaimValue> = { ...base };
  for (const name of ['iss', 'aud', 'sub', 'jti', 'exp', 'iat', 'nbf'] as const) {
    const v = r.claims[name];
    if (v === undefined) {
      delete claims[name];
    } else if (name === 'sub' && v === 'fixture') {
      claims.sub = typeof base.sub === 'string' && base.sub !== '' ? base.sub : 'workload';
    } else if (name === 'jti' && v === 'fixture') {
      claims.jti = typeof base.jti === 'string' && base.jti !== '' ? base.jti : 'jti-1';
    } else if ((name === 'exp' || name === 'iat' || name === 'nbf') && typeof v === 'number') {
      claims[name] = baseSec + v;
    } else {
      claims[name] = v;
    }
  }
  const h = respell(b64u(headerBytes(r, header)), r.headerEnc);
  const p = respell(b64u(payloadBytes(r, claims)), r.payloadEnc);
  const input = Buffer.from(`${h}.${p}`);
  let sig: Buffer;
  if (r.alg.toLowerCase() === 'none') {
    sig = Buffer.alloc(0);
  } else if (/^HS\d+$/.test(r.alg)) {
    // The classic confusion: HMAC keyed with the public key's PEM.
    sig = createHmac(`sha${r.alg.slice(2)}`, key.publicKey.export({ type: 'spki', format: 'pem' }) as string).update(input).digest();
  } else {
    const fits = familyOf(r.alg) !== null && familyOf(r.alg) === FAMILY_OF_KEY[(Object.keys(NATURAL) as KeyName[]).find((n) => keys.published[n] === key || keys.unpublished[n] === key)!];
    try {
      sig = jwsSign(fits ? (r.alg as LeashAlg) : key.natural, key.privateKey, input);
    } catch {
      // PS512 cannot be made with the 1024-bit key (salt and digest do not fit): sign as the key would.
      sig = jwsSign(key.natural, key.privateKey, input);
    }
  }
  const s = respellSignature(sig, r.sigEnc, r.alg);
  const compact = `${h}.${p}.${s}`;
  const token =
    r.tokenShape === 'three' ? compact
    : r.tokenShape === 'fourSegments' ? `${compact}.${s}`
    : r.tokenShape === 'fiveSegments' ? `${compact}.${p}.${s}`
    : r.tokenShape === 'twoSegments' ? `${h}.${p}`
    : r.tokenShape === 'leadingSpace' ? ` ${compact}`
    : `${compact}\n`;
  return { token, nowMs: baseSec * 1000 + r.nowMs };
}
