/**
 * In-memory {@link Store}: the same semantics as SqliteStore without a disk, for domain tests and
 * in-process trackers. Transactions are made atomic with an undo journal.
 */
import { HybridClock } from './hlc.js';
import { KINDS, compareRowKeys, digestRows, type Kind, type ValueOf } from './merge.js';
import { BaseStore, META_ORIGIN, newOriginId, type Change, type Row, type StoreOptions, type VersionVector } from './store.js';

export class MemoryStore extends BaseStore {
  readonly origin: string;
  private rows = new Map<Kind, Map<string, string>>(KINDS.map((k) => [k, new Map()]));
  private log = new Map<string, { c: Change; json: string }[]>();
  private meta = new Map<string, string>();
  private journal: (() => void)[] | null = null;

  constructor(opts: StoreOptions & { origin?: string } = { clock: new HybridClock() }) {
    super(opts.clock);
    this.origin = opts.origin ?? newOriginId(opts.random);
    this.meta.set(META_ORIGIN, this.origin);
  }

  protected readJson(kind: Kind, key: string): string | undefined {
    return this.rows.get(kind)!.get(key);
  }

  protected writeJson(kind: Kind, key: string, json: string): void {
    const m = this.rows.get(kind)!;
    const had = m.has(key), prev = m.get(key);
    this.journal?.push(() => { if (had) m.set(key, prev!); else m.delete(key); });
    m.set(key, json);
  }

  protected appendLog(c: Change, json: string): void {
    let l = this.log.get(c.origin);
    if (!l) { l = []; this.log.set(c.origin, l); }
    const list = l;
    this.journal?.push(() => { list.pop(); if (list.length === 0) this.log.delete(c.origin); });
    list.push({ c: { ...c, delta: JSON.parse(json) }, json });
  }

  protected transaction<T>(fn: () => T): T {
    if (this.journal) return fn();
    this.journal = [];
    try {
      const r = fn();
      this.journal = null;
      return r;
    } catch (err) {
      const j = this.journal ?? [];
      this.journal = null;
      for (let i = j.length - 1; i >= 0; i--) j[i]!();
      throw err;
    }
  }

  protected maxSeq(origin: string): number {
    return this.log.get(origin)?.length ?? 0;
  }

  scan<K extends Kind>(kind: K, keyPrefix: string): Row<K>[] {
    const out: { kind: K; key: string; json: string }[] = [];
    for (const [key, json] of this.rows.get(kind)!) if (key.startsWith(keyPrefix)) out.push({ kind, key, json });
    out.sort(compareRowKeys);
    return out.map((r) => ({ key: r.key, value: JSON.parse(r.json) as ValueOf[K] }));
  }

  changesSince(vector: VersionVector, limit: number): Change[] {
    const out: Change[] = [];
    for (const origin of [...this.log.keys()].sort()) {
      const have = vector[origin] ?? 0;
      for (const e of this.log.get(origin)!.slice(Math.max(0, have))) {
        if (out.length >= limit) return out;
        out.push({ ...e.c, delta: JSON.parse(e.json) });
      }
    }
    return out;
  }

  versionVector(): VersionVector {
    const v: VersionVector = {};
    for (const [o, l] of this.log) v[o] = l.length;
    return v;
  }

  digest(): string {
    const rows: { kind: Kind; key: string; json: string }[] = [];
    for (const [kind, m] of this.rows) for (const [key, json] of m) rows.push({ kind, key, json });
    return digestRows(rows);
  }

  counts(): Record<Kind, number> {
    const c = {} as Record<Kind, number>;
    for (const k of KINDS) c[k] = this.rows.get(k)!.size;
    return c;
  }

  getMeta(key: string): string | undefined { return this.meta.get(key); }
  setMeta(key: string, value: string): void { this.meta.set(key, value); }
  close(): void { /* nothing to release */ }

}
