/** One newest-first source: each call returns the next items after the last ones it returned. */
export type FetchNext<T> = (count: number) => Promise<T[]>;

/**
 * Merges sources that are each sorted newest first (the 16 shards' listing indexes or audit
 * streams) into one newest-first sequence, fetching a batch per source only when its buffer runs
 * dry. A source that returns fewer than `batch` items is done.
 */
export class DescMerge<T> {
  private readonly bufs: T[][];
  private readonly pos: number[];
  private readonly done: boolean[];

  constructor(
    private readonly sources: FetchNext<T>[],
    /** > 0 when a comes before b (a is newer). */
    private readonly newer: (a: T, b: T) => number,
    private readonly batch: number,
  ) {
    this.bufs = sources.map(() => []);
    this.pos = sources.map(() => 0);
    this.done = sources.map(() => false);
  }

  async next(): Promise<T | null> {
    await this.fill();
    let best = -1;
    for (let i = 0; i < this.sources.length; i++) {
      if (this.pos[i]! >= this.bufs[i]!.length) continue;
      if (best < 0 || this.newer(this.bufs[i]![this.pos[i]!]!, this.bufs[best]![this.pos[best]!]!) > 0) best = i;
    }
    if (best < 0) return null;
    return this.bufs[best]![this.pos[best]!++]!;
  }

  /** True when every source is done and every buffered item was taken (no round trip). */
  get exhausted(): boolean {
    return this.sources.every((_, i) => this.done[i] && this.pos[i]! >= this.bufs[i]!.length);
  }

  private async fill(): Promise<void> {
    const dry = this.sources.flatMap((_, i) => (!this.done[i] && this.pos[i]! >= this.bufs[i]!.length ? [i] : []));
    if (dry.length === 0) return;
    await Promise.all(
      dry.map(async (i) => {
        const items = await this.sources[i]!(this.batch);
        this.bufs[i] = items;
        this.pos[i] = 0;
        if (items.length < this.batch) this.done[i] = true;
      }),
    );
  }
}
