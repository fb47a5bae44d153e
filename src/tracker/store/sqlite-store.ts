/**
 * {@link Store} on SQLite (better-sqlite3): one file, WAL mode, one connection per process.
 *
 * Durability: `synchronous = NORMAL` in WAL mode. A commit has been written to the WAL file (in
 * the OS page cache) before it returns, so it survives the tracker process dying in any way,
 * `kill -9` included; only a power loss or kernel crash can lose the last commits (never corrupt
 * the database). `FULL` would fsync the WAL on every commit to survive power loss too, at a cost
 * of milliseconds per write on most disks; trackers replicate, so a recent write lost by one
 * machine's power failure is normally held by another tracker. Set `synchronous: 'FULL'` to choose otherwise.
 *
 * `locking_mode = EXCLUSIVE` keeps the database locked while the tracker runs, so a second tracker
 * pointed at the same data dir fails at once (IO) instead of sharing an origin id and forking its log.
 *
 * Keys are stored as BLOBs (UTF-8) because they contain NUL separators, which SQLite TEXT
 * functions do not handle; BLOB order is byte order, the order the digest is defined in.
 */
import { ByteCappedCache } from './byte-cache.js';
import Database from 'better-sqlite3';
import { CoterieError } from '../../common/errors.js';
import { KEY_SEP, KINDS, digestOrderedRows, type Kind, type ValueOf } from './merge.js';
import { BaseStore, META_ORIGIN, newOriginId, type Change, type Row, type StoreOptions, type VersionVector } from './store.js';

export interface SqliteStoreOptions extends StoreOptions {
  /** Path of the database file (created if missing), or ':memory:'. */
  path: string;
  synchronous?: 'NORMAL' | 'FULL';
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS rows (kind TEXT NOT NULL, key BLOB NOT NULL, value TEXT NOT NULL, PRIMARY KEY (kind, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS log (origin TEXT NOT NULL, seq INTEGER NOT NULL, kind TEXT NOT NULL, key BLOB NOT NULL,
  delta TEXT NOT NULL, hlc TEXT NOT NULL, PRIMARY KEY (origin, seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL) WITHOUT ROWID;
`;

/** Smallest byte string greater than every string starting with `p`, or null if there is none. */
function prefixEnd(p: Buffer): Buffer | null {
  let end = p.length;
  while (end > 0 && p[end - 1] === 0xff) end--;
  if (end === 0) return null;
  const out = Buffer.from(p.subarray(0, end));
  out[end - 1]! += 1;
  return out;
}

/**
 * Read caches: parsed rows by (kind, key) and scan results by (kind, prefix), each capped at
 * {@link CACHE_BYTES} of row JSON (the oldest entries go first). Under the bench's load (200
 * clients, list_files + get_peers) the tracker spent 31 % of its CPU in `scan` and 8 % in
 * `readJson` (SQLite statement + Buffer key + JSON.parse of every row, the manifests included,
 * on every call); served from memory, those reads cost a Map lookup. Invalidation is exact:
 * every write goes through `writeJson`, which drops that row and every cached scan whose prefix
 * the key starts with (scans are cached only for prefixes that end at a key separator, so those
 * prefixes are few). Reads inside a transaction bypass the caches (and fill nothing), so a
 * rolled-back write can never leave a value in them. Cached values are frozen: a caller that
 * tried to modify one would throw instead of corrupting the cache.
 */
const CACHE_BYTES = 4 << 20;
/**
 * What one cached row is counted as: its JSON text twice plus a fixed overhead, roughly its heap
 * size once parsed (small rows, stamps and tags, are mostly object overhead). Counting the JSON
 * alone, with 8 MiB caps, the bench's 100,000-file tracker peaked at 331 MiB instead of 174 MiB.
 */
const rowCost = (jsonLength: number, keyLength: number): number => 2 * jsonLength + 2 * keyLength + 300;
/** A cached "no such row". */
const MISSING = Symbol('missing');

interface LogRow { origin: string; seq: number; kind: Kind; key: Buffer; delta: string; hlc: string }

export class SqliteStore extends BaseStore {
  readonly origin: string;
  private db: Database.Database;
  private seqs = new Map<string, number>();
  private st: {
    get: Database.Statement; put: Database.Statement; scanFrom: Database.Statement; scanRange: Database.Statement;
    append: Database.Statement; since: Database.Statement; getMeta: Database.Statement; setMeta: Database.Statement;
  };

  private readonly rowCache = new ByteCappedCache<unknown>(CACHE_BYTES);
  private readonly scanCache = new ByteCappedCache<Row[]>(CACHE_BYTES);
  /**
   * Inside {@link transaction} (all writes go through it). Kept here rather than asking
   * better-sqlite3's `inTransaction`, a call into native code on every cached read (the cached
   * read path, with that call and LRU reordering on each hit, was 6.6 % of the CPU under the bench).
   */
  private inTx = false;

  constructor(opts: SqliteStoreOptions) {
    super(opts.clock);
    try {
      this.db = new Database(opts.path, { timeout: 0 });
      this.db.pragma('locking_mode = EXCLUSIVE');
      this.db.pragma('journal_mode = WAL');
      this.db.pragma(`synchronous = ${opts.synchronous ?? 'NORMAL'}`);
      this.db.exec(SCHEMA);
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED') {
        throw new CoterieError('IO', `the database ${opts.path} is in use by another process (is another tracker using this data dir?)`, { cause: err });
      }
      throw new CoterieError('IO', `cannot open the database ${opts.path}: ${(err as Error).message}`, { cause: err });
    }
    this.st = {
      get: this.db.prepare('SELECT value FROM rows WHERE kind = ? AND key = ?').pluck(),
      put: this.db.prepare('INSERT INTO rows (kind, key, value) VALUES (?, ?, ?) ON CONFLICT (kind, key) DO UPDATE SET value = excluded.value'),
      scanFrom: this.db.prepare('SELECT key, value FROM rows WHERE kind = ? AND key >= ? ORDER BY key'),
      scanRange: this.db.prepare('SELECT key, value FROM rows WHERE kind = ? AND key >= ? AND key < ? ORDER BY key'),
      append: this.db.prepare('INSERT INTO log (origin, seq, kind, key, delta, hlc) VALUES (?, ?, ?, ?, ?, ?)'),
      since: this.db.prepare('SELECT origin, seq, kind, key, delta, hlc FROM log WHERE origin = ? AND seq > ? ORDER BY seq LIMIT ?'),
      getMeta: this.db.prepare('SELECT v FROM meta WHERE k = ?').pluck(),
      setMeta: this.db.prepare('INSERT INTO meta (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v'),
    };
    let origin = this.getMeta(META_ORIGIN);
    if (origin === undefined) {
      origin = newOriginId(opts.random);
      this.setMeta(META_ORIGIN, origin);
    }
    this.origin = origin;
    for (const r of this.db.prepare('SELECT origin, MAX(seq) AS s FROM log GROUP BY origin').all() as { origin: string; s: number }[]) {
      this.seqs.set(r.origin, r.s);
    }
    // Never re-issue a stamp this data dir has already used, even if the wall clock went back.
    const newest = this.db.prepare('SELECT MAX(hlc) FROM log').pluck().get() as string | null;
    if (newest) this.clock.restore(newest);
  }

  protected readJson(kind: Kind, key: string): string | undefined {
    return this.st.get.get(kind, Buffer.from(key, 'utf8')) as string | undefined;
  }

  protected writeJson(kind: Kind, key: string, json: string): void {
    this.st.put.run(kind, Buffer.from(key, 'utf8'), json);
    this.invalidate(kind, key);
  }

  override get<K extends Kind>(kind: K, key: string): ValueOf[K] | undefined {
    if (this.inTx) return super.get(kind, key);
    const ck = kind + KEY_SEP + key;
    // Eviction is oldest-filled first (no reordering on a hit: it measured cheaper, and a miss costs one indexed read).
    const hit = this.rowCache.get(ck);
    if (hit !== undefined) return hit === MISSING ? undefined : (hit as ValueOf[K]);
    const json = this.readJson(kind, key);
    const v = json === undefined ? undefined : (Object.freeze(JSON.parse(json)) as ValueOf[K]);
    this.rowCache.set(ck, v === undefined ? MISSING : v, rowCost(json?.length ?? 0, ck.length));
    return v;
  }

  /** Drops the cached row and every cached scan that covers `key`. */
  private invalidate(kind: Kind, key: string): void {
    const ck = kind + KEY_SEP + key;
    this.rowCache.delete(ck);
    if (this.scanCache.size === 0) return;
    this.scanCache.delete(kind + KEY_SEP);
    for (let i = key.indexOf(KEY_SEP); i !== -1; i = key.indexOf(KEY_SEP, i + 1)) this.scanCache.delete(kind + KEY_SEP + key.slice(0, i + 1));
  }

  protected appendLog(c: Change, json: string): void {
    this.st.append.run(c.origin, c.seq, c.kind, Buffer.from(c.key, 'utf8'), json, c.hlc);
    this.seqs.set(c.origin, c.seq);
  }

  protected transaction<T>(fn: () => T): T {
    if (this.inTx) return fn();
    // The in-memory seq cache must roll back with the database.
    const saved = new Map(this.seqs);
    this.inTx = true;
    try {
      return this.db.transaction(fn).immediate();
    } catch (err) {
      this.seqs = saved;
      // Nothing is filled inside a transaction, so the caches hold no rolled-back value; cleared anyway.
      this.clearCaches();
      throw err;
    } finally {
      this.inTx = false;
    }
  }

  protected maxSeq(origin: string): number {
    return this.seqs.get(origin) ?? 0;
  }

  private clearCaches(): void {
    this.rowCache.clear();
    this.scanCache.clear();
  }

  /** Rows in key order; the array and its rows are frozen when it comes from (or goes to) the cache. */
  scan<K extends Kind>(kind: K, keyPrefix: string): Row<K>[] {
    const cacheable = !this.inTx && (keyPrefix === '' || keyPrefix.endsWith(KEY_SEP));
    const ck = kind + KEY_SEP + keyPrefix;
    if (cacheable) {
      const hit = this.scanCache.get(ck);
      if (hit) return hit as Row<K>[];
    }
    const lo = Buffer.from(keyPrefix, 'utf8');
    const hi = prefixEnd(lo);
    const rows = (hi ? this.st.scanRange.all(kind, lo, hi) : this.st.scanFrom.all(kind, lo)) as { key: Buffer; value: string }[];
    if (!cacheable) return rows.map((r) => ({ key: r.key.toString('utf8'), value: JSON.parse(r.value) as ValueOf[K] }));
    let n = rowCost(0, ck.length);
    const out = rows.map((r) => {
      n += rowCost(r.value.length, r.key.length);
      return Object.freeze({ key: r.key.toString('utf8'), value: Object.freeze(JSON.parse(r.value)) as ValueOf[K] }) as Row<K>;
    });
    Object.freeze(out);
    // A result bigger than a quarter of the budget is not kept (it would evict everything else).
    if (n <= CACHE_BYTES / 4) this.scanCache.set(ck, out, n);
    return out;
  }

  changesSince(vector: VersionVector, limit: number): Change[] {
    const out: Change[] = [];
    for (const origin of [...this.seqs.keys()].sort()) {
      if (out.length >= limit) break;
      const rows = this.st.since.all(origin, Math.max(0, vector[origin] ?? 0), limit - out.length) as LogRow[];
      for (const r of rows) {
        out.push({ origin: r.origin, seq: r.seq, kind: r.kind, key: r.key.toString('utf8'), delta: JSON.parse(r.delta), hlc: r.hlc });
      }
    }
    return out;
  }

  versionVector(): VersionVector {
    return Object.fromEntries(this.seqs);
  }

  /**
   * Rows read in (kind, key) order straight from the primary key (BINARY collation on the ASCII
   * kind, memcmp on the BLOB key: the order digestRows defines) and hashed as they stream by. The
   * previous read-all-then-sort-in-JS held every row at once (the bench's 100,000 files carry
   * 329 MiB of base64 manifests: a status call would have more than doubled the tracker's 174 MiB
   * peak) and compared keys by allocating two Buffers per comparison.
   */
  digest(): string {
    const it = this.db.prepare('SELECT kind, key, value FROM rows ORDER BY kind, key').iterate() as IterableIterator<{ kind: Kind; key: Buffer; value: string }>;
    return digestOrderedRows((function* () {
      for (const r of it) yield { kind: r.kind, key: r.key.toString('utf8'), json: r.value };
    })());
  }

  counts(): Record<Kind, number> {
    const c = {} as Record<Kind, number>;
    for (const k of KINDS) c[k] = 0;
    for (const r of this.db.prepare('SELECT kind, COUNT(*) AS n FROM rows GROUP BY kind').all() as { kind: Kind; n: number }[]) c[r.kind] = r.n;
    return c;
  }

  getMeta(key: string): string | undefined {
    return this.st.getMeta.get(key) as string | undefined;
  }

  setMeta(key: string, value: string): void {
    this.st.setMeta.run(key, value);
  }

  close(): void {
    this.clearCaches();
    if (this.db.open) this.db.close();
  }
}
