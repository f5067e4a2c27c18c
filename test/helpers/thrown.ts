/** What `fn` throws, so a test can assert on its `code` (and fields) rather than its wording. */
export function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected a throw');
}
