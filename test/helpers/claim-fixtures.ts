import { readFileSync } from 'node:fs';

/** The documented vendor claim sets (a copy of shared/fixtures/claims, so a clone alone runs the tests). */
export type FixtureFile = 'github-actions' | 'gitlab-ci' | 'kubernetes-sa' | 'spiffe-jwt-svid' | 'circleci' | 'buildkite';

export interface FixtureExample {
  name: string;
  description: string;
  header: Record<string, unknown>;
  claims: Record<string, unknown>;
}

const FIXTURES = new URL('../fixtures/claims/', import.meta.url);

/** Every documented example of one issuer; a fresh copy each call. */
export function fixtureExamples(file: FixtureFile): FixtureExample[] {
  const doc = JSON.parse(readFileSync(new URL(`${file}.json`, FIXTURES), 'utf8')) as { examples: FixtureExample[] };
  return structuredClone(doc.examples);
}

/** The claims of one documented example (the first when unnamed); a fresh copy each call. */
export function fixtureClaims(file: FixtureFile, exampleName?: string): Record<string, unknown> {
  const examples = fixtureExamples(file);
  const ex = exampleName === undefined ? examples[0] : examples.find((e) => e.name === exampleName);
  if (!ex) throw new Error(`no example ${exampleName ?? '(first)'} in fixtures/claims/${file}.json`);
  return ex.claims;
}
