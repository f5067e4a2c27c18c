/**
 * `f` over `items` with at most `lanes` calls in flight, results in the items' order. Rejects with
 * the first failure, after which no further call starts (those under way run on).
 */
export async function mapInLanes<T, R>(items: readonly T[], lanes: number, f: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  let failed = false;
  const lane = async (): Promise<void> => {
    while (!failed && next < items.length) {
      const i = next++;
      try {
        out[i] = await f(items[i]!);
      } catch (err) {
        failed = true;
        throw err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(lanes, items.length)) }, lane));
  return out;
}
