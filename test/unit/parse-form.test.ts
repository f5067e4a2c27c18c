import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseForm } from '../../src/request/parse-form.ts';

const pairsOf = (p: URLSearchParams): [string, string][] => [...p];
// The application/x-www-form-urlencoded parser of the URL standard; the URLSearchParams constructor
// also drops a leading '?' (it takes query strings), which a leading '&' keeps it from doing.
const reference = (body: string): [string, string][] => pairsOf(new URLSearchParams(`&${body}`));

describe('parseForm', () => {
  it('reads a token request as URLSearchParams does', () => {
    const body =
      'grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange&subject_token=eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln' +
      '&scope=deploy+artifacts%3Aread&audience=a&audience=b';
    const form = parseForm(body);
    expect(form.get('grant_type')).toBe('urn:ietf:params:oauth:grant-type:token-exchange');
    expect(form.get('scope')).toBe('deploy artifacts:read');
    expect(form.getAll('audience')).toEqual(['a', 'b']);
    expect(pairsOf(form)).toEqual(reference(body));
  });

  it.each([
    '', '&', '&&a=1&&', 'a', '=x', 'a=', 'a==b=c', '%zz=%', 'a=%E0%A4%A', 'a=%C3%28', 'x=%F0%9F%98%80', 'a%26b=c%3Dd', '+=+', 'é=ü', '?a=1',
  ])('matches URLSearchParams on %j (empty parts, bad escapes, invalid UTF-8)', (body) => {
    expect(pairsOf(parseForm(body))).toEqual(reference(body));
  });

  it('matches URLSearchParams on any input', () => {
    const piece = fc.oneof(
      fc.string(),
      fc.constantFrom('%', '%2', '%25', '%zz', '+', '=', '&', '%C3%A9', '%ED%A0%80', '%FF', '%E2%82', '?'),
    );
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 12 }), (parts) => {
        const body = parts.join('');
        expect(pairsOf(parseForm(body))).toEqual(reference(body));
      }),
      { numRuns: 5000 },
    );
  });
});
