/**
 * A map capped by a byte budget: each entry carries its own cost, and inserting past the budget
 * evicts the oldest-inserted entries first. A hit does not reorder (FIFO, not LRU): in the
 * tracker's read caches that measured cheaper, and a miss costs one indexed read. Invariant:
 * `bytes` is the sum of the costs of the entries held, and is at most `budget` after every `set`.
 */
export class ByteCappedCache<V> {
  private readonly map = new Map<string, { v: V; n: number }>();
  private bytes = 0;

  constructor(readonly budget: number) {}

  get size(): number { return this.map.size; }

  get(key: string): V | undefined { return this.map.get(key)?.v; }

  /** Inserts (or replaces) `key` counted as `cost` bytes, then evicts the oldest while over budget. */
  set(key: string, v: V, cost: number): void {
    this.delete(key);
    this.map.set(key, { v, n: cost });
    this.bytes += cost;
    while (this.bytes > this.budget) {
      const [k, e] = this.map.entries().next().value as [string, { n: number }];
      this.map.delete(k);
      this.bytes -= e.n;
    }
  }

  delete(key: string): void {
    const e = this.map.get(key);
    if (e) { this.map.delete(key); this.bytes -= e.n; }
  }

  clear(): void { this.map.clear(); this.bytes = 0; }
}
