/**
 * The tracker's durable state: replicated rows plus the per-origin change log they came from
 * (docs/replicated-state.md). Everything above this interface (domain rules, replication) is
 * written against {@link Store}; {@link SqliteStore} and {@link MemoryStore} implement it and
 * one conformance suite runs against both.
 */
import { randomBytes } from 'node:crypto';
import { CoterieError, ProtocolError } from '../../common/errors.js';
import { HLC_RE, ORIGIN_RE, type HybridClock } from './hlc.js';
import { canonicalJson, isKind, keyProblem, mergeRow, parseValue, type Kind, type ValueOf } from './merge.js';

/** A local write: merge `value` into the row `(kind, key)`. */
export interface Delta<K extends Kind = Kind> { kind: K; key: string; value: ValueOf[K] }

/**
 * One entry of the change log. `seq` counts from 1 per `origin` with no gaps; `delta` is the
 * (normalized) value that was merged into the row; `hlc` is when the origin committed it.
 */
export interface Change { origin: string; seq: number; kind: Kind; key: string; delta: unknown; hlc: string }

/** `{origin: highest seq held}`: everything up to that seq of each origin is in the log. */
export type VersionVector = Record<string, number>;

/** A row as read back. */
export interface Row<K extends Kind = Kind> { key: string; value: ValueOf[K] }

/** Told after every committed batch, local or remote (replication ships local ones). */
export type CommitListener = (changes: readonly Change[], source: 'local' | 'remote') => void;

/**
 * Replicated rows + change log + node-local metadata.
 *
 * Invariants: each row holds the merge of every delta ever committed or applied to it; the log
 * holds every such delta under its origin and seq, contiguous from 1 per origin; a write is
 * durable (committed) before the call returns. Methods are synchronous: one process, one
 * connection, short transactions.
 */
export interface Store {
  /** This store's origin id: 16 hex chars, created with the data dir (a wiped dir is a new origin). */
  readonly origin: string;
  /** The HLC every local stamp comes from; restored past the log's newest entry on open. */
  readonly clock: HybridClock;
  get<K extends Kind>(kind: K, key: string): ValueOf[K] | undefined;
  /** Rows of `kind` whose key starts with `keyPrefix`, in key (UTF-8 byte) order. */
  scan<K extends Kind>(kind: K, keyPrefix: string): Row<K>[];
  /**
   * In one transaction: merges each delta into its row and appends it to the log under this
   * origin's next seq with a fresh HLC. Returns the appended changes. Throws (and writes nothing)
   * if any delta is invalid.
   */
  commitLocal(deltas: Delta[]): Change[];
  /**
   * Merges changes received from another tracker and appends them under their own origin and seq.
   * A change whose seq is already held is skipped (duplicates are harmless); one that would leave a
   * gap in its origin's seq is skipped too (it will be sent again after the missing ones). Returns
   * how many were applied. All or nothing: a malformed change (PROTOCOL) or a stamp too far ahead
   * (CLOCK_SKEW) refuses the whole batch.
   */
  applyRemote(changes: readonly unknown[]): number;
  /** Changes with `seq > vector[origin]` (absent = 0), ordered by origin then seq, at most `limit`. */
  changesSince(vector: VersionVector, limit: number): Change[];
  versionVector(): VersionVector;
  /** SHA-256 hex over every row (see merge.ts `digestRows`): equal digests mean equal state. */
  digest(): string;
  /** Number of rows per kind (for status). */
  counts(): Record<Kind, number>;
  /** Node-local values (never replicated): origin id, keypair... */
  getMeta(key: string): string | undefined;
  setMeta(key: string, value: string): void;
  /** Registers a listener called after each committed batch; returns an unsubscribe function. */
  subscribe(listener: CommitListener): () => void;
  close(): void;
}

/** Options common to both implementations. */
export interface StoreOptions {
  clock: HybridClock;
  /** Random bytes source (for the origin id of a fresh store). */
  random?: (n: number) => Buffer;
}

/** Meta key of the origin id. */
export const META_ORIGIN = 'origin';

export function newOriginId(random: (n: number) => Buffer = randomBytes): string {
  return random(8).toString('hex');
}

/** Validates one change from a remote; returns it with a normalized delta. Throws PROTOCOL. */
export function parseChange(raw: unknown): Change {
  if (raw === null || typeof raw !== 'object') throw new ProtocolError('a change must be an object');
  const c = raw as Record<string, unknown>;
  for (const k of Object.keys(c)) {
    if (!['origin', 'seq', 'kind', 'key', 'delta', 'hlc'].includes(k)) throw new ProtocolError(`unknown change field ${k}`);
  }
  if (typeof c['origin'] !== 'string' || !ORIGIN_RE.test(c['origin'])) throw new ProtocolError('bad change origin');
  const seq = c['seq'];
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 1) throw new ProtocolError('bad change seq');
  if (!isKind(c['kind'])) throw new ProtocolError('bad change kind');
  if (typeof c['key'] !== 'string') throw new ProtocolError('bad change key');
  const kp = keyProblem(c['kind'], c['key']);
  if (kp) throw new ProtocolError(kp);
  if (typeof c['hlc'] !== 'string' || !HLC_RE.test(c['hlc'])) throw new ProtocolError('bad change hlc');
  const delta = parseValue(c['kind'], c['delta']);
  return { origin: c['origin'], seq, kind: c['kind'], key: c['key'], delta, hlc: c['hlc'] };
}

/**
 * The primitive operations an implementation provides; {@link BaseStore} builds the merge/log
 * logic of the interface on them once, so both implementations share it exactly.
 */
export abstract class BaseStore implements Store {
  abstract readonly origin: string;
  private listeners = new Set<CommitListener>();

  constructor(readonly clock: HybridClock) {}

  protected abstract readJson(kind: Kind, key: string): string | undefined;
  protected abstract writeJson(kind: Kind, key: string, json: string): void;
  protected abstract appendLog(c: Change, deltaJson: string): void;
  /** Runs `fn` atomically: all of its writes or none. */
  protected abstract transaction<T>(fn: () => T): T;
  /** Highest seq held per origin (kept in memory by implementations). */
  protected abstract maxSeq(origin: string): number;
  abstract scan<K extends Kind>(kind: K, keyPrefix: string): Row<K>[];
  abstract changesSince(vector: VersionVector, limit: number): Change[];
  abstract versionVector(): VersionVector;
  abstract digest(): string;
  abstract counts(): Record<Kind, number>;
  abstract getMeta(key: string): string | undefined;
  abstract setMeta(key: string, value: string): void;
  abstract close(): void;

  get<K extends Kind>(kind: K, key: string): ValueOf[K] | undefined {
    const json = this.readJson(kind, key);
    return json === undefined ? undefined : (JSON.parse(json) as ValueOf[K]);
  }

  commitLocal(deltas: Delta[]): Change[] {
    // Validate before writing: a domain bug must not leave half a batch or an unparseable row.
    const checked = deltas.map((d) => {
      const kp = keyProblem(d.kind, d.key);
      if (kp) throw new CoterieError('INTERNAL', `local delta with bad key: ${kp}`);
      return { kind: d.kind, key: d.key, value: parseValue(d.kind, d.value) };
    });
    const out = this.transaction(() => {
      let seq = this.maxSeq(this.origin);
      return checked.map((d) => {
        const c: Change = { origin: this.origin, seq: ++seq, kind: d.kind, key: d.key, delta: d.value, hlc: this.clock.now() };
        this.mergeInto(d.kind, d.key, d.value);
        this.appendLog(c, canonicalJson(d.value));
        return c;
      });
    });
    if (out.length > 0) this.notify(out, 'local');
    return out;
  }

  applyRemote(changes: readonly unknown[]): number {
    const parsed = changes.map(parseChange);
    for (const c of parsed) this.clock.observe(c.hlc);
    const applied = this.transaction(() => {
      const next = new Map<string, number>();
      const done: Change[] = [];
      for (const c of parsed) {
        const expect = next.get(c.origin) ?? this.maxSeq(c.origin) + 1;
        if (c.seq !== expect) continue;
        next.set(c.origin, expect + 1);
        this.mergeInto(c.kind, c.key, c.delta as ValueOf[Kind]);
        this.appendLog(c, canonicalJson(c.delta));
        done.push(c);
      }
      return done;
    });
    if (applied.length > 0) this.notify(applied, 'remote');
    return applied.length;
  }

  subscribe(listener: CommitListener): () => void {
    this.listeners.add(listener);
    return () => { this.listeners.delete(listener); };
  }

  private mergeInto<K extends Kind>(kind: K, key: string, delta: ValueOf[K]): void {
    const old = this.get(kind, key);
    this.writeJson(kind, key, canonicalJson(mergeRow(kind, old, delta)));
  }

  private notify(changes: Change[], source: 'local' | 'remote'): void {
    for (const l of this.listeners) {
      // A listener's failure must not undo or fail a commit that is already durable.
      try { l(changes, source); } catch { /* listeners log their own errors */ }
    }
  }
}
