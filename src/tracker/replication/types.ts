/**
 * What replication needs from the rest of the tracker, as narrow ports. The tracker's store and
 * presence table are adapted to these in `adapters.ts`; tests plug in-memory versions in.
 */
import type { PresenceEntry, WireChange } from './wire.js';

/** `{origin: highest contiguous seq held}`; a missing origin means 0. */
export type VersionVector = Record<string, number>;

/** One change of the per-origin log (see docs/replicated-state.md, "Change log and versions"). */
export type Change = WireChange;

/**
 * The replicated store as replication sees it: a structural subset of the tracker's `Store`
 * (src/tracker/store/store.ts), so the real store plugs in as is.
 * Invariants the implementation keeps: a change is durable before `versionVector` counts it;
 * `changesSince` returns, per origin, a contiguous run of seqs starting right after `vector[origin]`
 * in seq order; `applyRemote` merges idempotently and skips duplicates and gaps.
 */
export interface ReplicaStore {
  /** This tracker's origin id (changes made here carry it). */
  readonly origin: string;
  versionVector(): VersionVector;
  /** At most `limit` changes the holder of `vector` lacks. */
  changesSince(vector: VersionVector, limit: number): Change[];
  /**
   * Merges changes received from another tracker and appends them to the log under their origin
   * and seq, in one transaction; returns how many were applied. Throws (a CoterieError: PROTOCOL,
   * CLOCK_SKEW) if a change is unacceptable; then nothing of the call is applied.
   */
  applyRemote(changes: readonly Change[]): number;
  /** SHA-256 hex over all rows in (kind, key) order: equal digests mean equal state. */
  digest(): string;
  /** Called after every committed batch, local or merged from a remote; returns an unsubscribe. */
  subscribe(listener: (changes: readonly Change[], source: 'local' | 'remote') => void): () => void;
}

/**
 * The presence table as gossip sees it. The tracker holding a client's session owns its entry
 * (`holder` = its origin); other trackers keep copies that expire when renewals stop.
 */
export interface PresencePort {
  /** Entries this tracker holds itself, with their remaining lease, for a full push to a new link. */
  localEntries(): PresenceEntry[];
  /** Copies held for other trackers, with their remaining lease, so that gossip can be relayed. */
  remoteEntries(): PresenceEntry[];
  /**
   * Local entries that changed since the last poll (new, renewed, other peer or shares) and
   * removals (`ttlMs` 0) of leases that ended: what to gossip to every link now.
   */
  pollLocal(): PresenceEntry[];
  /**
   * Merges entries received from a peer; returns those that changed something (newer `gen`), which
   * gossip relays to the other links. Entries whose holder is this tracker are ignored.
   */
  applyRemote(entries: PresenceEntry[]): PresenceEntry[];
  /** Forgets expired copies; called every replication tick. */
  sweep?(): void;
}

/** Signs with this tracker's Ed25519 key. */
export interface Signer {
  /** SPKI DER, base64. */
  readonly publicKey: string;
  sign(data: Buffer): Buffer;
}

/** A clock in milliseconds (injected so that tests can drive time). */
export interface Clock { now(): number }

export const systemClock: Clock = { now: () => Date.now() };
