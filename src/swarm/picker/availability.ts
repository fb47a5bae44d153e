/**
 * How many connected peers have each piece, and the candidate pieces (not started, not ours)
 * grouped by that count so that "the rarest candidate this peer has" is found without sorting.
 *
 * Two tricks keep this cheap in the common case where most peers are seeders:
 * - Seeders are not counted per piece. A seeder adds one to every piece, which changes no piece's
 *   rank, so it only bumps `seeds` (O(1) join and leave). The availability of a piece is
 *   `counts[p] + seeds`.
 * - Candidates sit in buckets ("levels") by `counts[p]`. Each bucket is kept in random order
 *   (a new member is swapped to a random slot), which is the random tie-break among equally rare
 *   pieces; the rarest pick for a seeder is the first member of the lowest non-empty bucket.
 *
 * Limits: a peer that has only a few scattered pieces may make a bucket walk long; after
 * {@link PROBE_BUDGET} misses the search falls back to one pass over its bitfield ANDed with the
 * candidate bitmap (O(pieces / 8 + matches)), whose ties are kept in a {@link RarestMemo} so the
 * next picks for that peer are O(1).
 */
import { popcountByte } from '../bitfield.js';

/** Bucket members tested for a non-seed peer before switching to the bitmap scan. */
export const PROBE_BUDGET = 64;
/** Random probes for a random-first pick before falling back to a scan. */
export const RANDOM_TRIES = 16;

/**
 * One peer's memo of its last exhaustive rarest scan: every candidate it has at the minimum
 * count then. Valid while no count was lowered and no candidate added since (`epoch`) and the peer
 * gained no piece (the owner resets `epoch` to -1): counts only rose and candidates only left, so
 * a member still a candidate at count `min` is still a rarest pick, and the members left are all
 * the ties. This turns a sparse peer's repeated scans into one scan per rarity level.
 */
export class RarestMemo {
  epoch = -1;
  min = 0;
  readonly list: number[] = [];
}

/**
 * Availability counts plus the candidate buckets. Invariants: a piece is a candidate exactly when
 * it sits in `levels[counts[p]]` at index `slot[p]` and its bit is set in `candidates`;
 * `candidateCount` is the number of candidates. Not thread-safe, not persistent.
 */
export class Availability {
  /** Per piece, the number of connected non-seed peers that have it. */
  readonly counts: Int32Array;
  /** Connected peers that have every piece (not included in `counts`). */
  seeds = 0;
  /** Candidate pieces in wire-order bits (same layout as a Bitfield), for the bitmap scans. */
  readonly candidates: Uint8Array;
  candidateCount = 0;
  /** Bumped when a count drops or a candidate appears: the events that invalidate a {@link RarestMemo}. */
  private lowerEpoch = 0;
  /** levels[c] holds the candidates with counts[p] === c, in random order. */
  private readonly levels: number[][] = [];
  /** Index of a candidate within its level, -1 when the piece is not a candidate. */
  private readonly slot: Int32Array;
  /** No candidate sits in a byte of `candidates` below this one ({@link lowest}'s cursor). */
  private lowByte = 0;

  constructor(pieceCount: number, private readonly rng: () => number) {
    this.counts = new Int32Array(pieceCount);
    this.candidates = new Uint8Array((pieceCount + 7) >>> 3);
    this.slot = new Int32Array(pieceCount).fill(-1);
  }

  /** Availability of `piece`: how many connected peers have it. */
  of(piece: number): number { return this.counts[piece]! + this.seeds; }

  isCandidate(piece: number): boolean { return this.slot[piece]! >= 0; }

  addCandidate(p: number): void {
    if (this.slot[p]! >= 0) return;
    this.lowerEpoch++;
    this.insert(p, this.counts[p]!);
    this.candidates[p >>> 3] |= 0x80 >>> (p & 7);
    if (p >>> 3 < this.lowByte) this.lowByte = p >>> 3;
    this.candidateCount++;
  }

  removeCandidate(p: number): void {
    if (this.slot[p]! < 0) return;
    this.unlink(p, this.counts[p]!);
    this.slot[p] = -1;
    this.candidates[p >>> 3] &= ~(0x80 >>> (p & 7));
    this.candidateCount--;
  }

  /** One more non-seed peer has `p`. */
  increment(p: number): void {
    const c = this.counts[p]!;
    this.counts[p] = c + 1;
    if (this.slot[p]! >= 0) { this.unlink(p, c); this.insert(p, c + 1); }
  }

  /** One fewer non-seed peer has `p`. */
  decrement(p: number): void {
    const c = this.counts[p]!;
    if (c <= 0) throw new RangeError(`availability of piece ${p} would go negative`);
    this.counts[p] = c - 1;
    this.lowerEpoch++;
    if (this.slot[p]! >= 0) { this.unlink(p, c); this.insert(p, c - 1); }
  }

  /**
   * A non-seed peer, already counted piece by piece, turned out to have every piece: move it to
   * `seeds`. Every count drops by one, so the buckets just shift down a level (level 0 is empty,
   * as every piece was counted at least once).
   */
  promoteToSeed(): void {
    const counts = this.counts;
    for (let p = 0; p < counts.length; p++) counts[p]!--;
    const empty = this.levels.shift();
    if (empty !== undefined && empty.length !== 0) throw new Error('promoteToSeed: a piece was not counted');
    this.seeds++;
    this.lowerEpoch++;
  }

  /**
   * The rarest candidate among the pieces `has` marks (wire-order bits), or among all candidates
   * when `has` is null (a seeder); ties broken at random; -1 if there is none. `memo` is the
   * peer's own (see {@link RarestMemo}).
   */
  rarest(has: Uint8Array | null, memo: RarestMemo): number {
    const levels = this.levels;
    if (has === null) {
      for (let c = 0; c < levels.length; c++) { const l = levels[c]!; if (l.length > 0) return l[0]!; }
      return -1;
    }
    if (memo.epoch === this.lowerEpoch) {
      const list = memo.list;
      while (list.length > 0) {
        // Random member, swap-removed: the tie-break costs one rng call per pick.
        const i = Math.min(list.length - 1, Math.floor(this.rng() * list.length));
        const p = list[i]!;
        list[i] = list[list.length - 1]!;
        list.pop();
        if (this.slot[p]! >= 0 && this.counts[p] === memo.min) return p;
      }
    }
    // Level 0 holds pieces no non-seed peer has, so this (non-seed) peer cannot have them.
    let probes = 0;
    for (let c = 1; c < levels.length; c++) {
      const l = levels[c]!;
      for (let i = 0; i < l.length; i++) {
        const p = l[i]!;
        if ((has[p >>> 3]! & (0x80 >>> (p & 7))) !== 0) return p;
        if (++probes > PROBE_BUDGET) return this.rarestByScan(has, memo);
      }
    }
    return -1;
  }

  /**
   * The candidate with the lowest index; -1 if none. Amortised O(1): candidates mostly leave, and
   * the cursor only moves back when one is added below it.
   */
  lowest(): number {
    const cand = this.candidates;
    for (let k = this.lowByte; k < cand.length; k++) {
      const m = cand[k]!;
      if (m !== 0) { this.lowByte = k; return k * 8 + Math.clz32(m) - 24; }
    }
    this.lowByte = cand.length;
    return -1;
  }

  /** A uniformly random candidate among those `has` marks (all when null); -1 if none. */
  random(has: Uint8Array | null): number {
    if (this.candidateCount === 0) return -1;
    // Rejection sampling keeps the pick uniform over the peer's candidates; a sparse peer falls
    // back to counting them.
    for (let t = has === null ? 1 : RANDOM_TRIES; t > 0; t--) {
      const p = this.nth(Math.floor(this.rng() * this.candidateCount));
      if (p >= 0 && (has === null || (has[p >>> 3]! & (0x80 >>> (p & 7))) !== 0)) return p;
    }
    if (has === null) return -1;
    const cand = this.candidates;
    let n = 0;
    for (let k = 0; k < cand.length; k++) n += popcountByte(has[k]! & cand[k]!);
    if (n === 0) return -1;
    let r = Math.min(n - 1, Math.floor(this.rng() * n));
    for (let k = 0; k < cand.length; k++) {
      let m = has[k]! & cand[k]!;
      const c = popcountByte(m);
      if (r >= c) { r -= c; continue; }
      for (;;) {
        const off = Math.clz32(m) - 24;
        if (r-- === 0) return k * 8 + off;
        m &= ~(0x80 >>> off);
      }
    }
    return -1; // unreachable: r < n
  }

  /** The i-th candidate counting through the levels in order; -1 if out of range. */
  private nth(i: number): number {
    for (const l of this.levels) {
      if (i < l.length) return l[i]!;
      i -= l.length;
    }
    return -1;
  }

  /** The exhaustive form of {@link rarest} for a sparse peer; records every tie in `memo`. */
  private rarestByScan(has: Uint8Array, memo: RarestMemo): number {
    const cand = this.candidates, counts = this.counts, list = memo.list;
    let best = Infinity;
    list.length = 0;
    for (let k = 0; k < cand.length; k++) {
      let m = has[k]! & cand[k]!;
      while (m !== 0) {
        const off = Math.clz32(m) - 24;
        m &= ~(0x80 >>> off);
        const p = k * 8 + off;
        const c = counts[p]!;
        if (c < best) { best = c; list.length = 0; list.push(p); } else if (c === best) list.push(p);
      }
    }
    memo.epoch = this.lowerEpoch;
    memo.min = best;
    if (list.length === 0) return -1;
    const i = Math.min(list.length - 1, Math.floor(this.rng() * list.length));
    const p = list[i]!;
    list[i] = list[list.length - 1]!;
    list.pop();
    return p;
  }

  /** Puts `p` into level `c` at a random slot (the displaced member moves to the end). */
  private insert(p: number, c: number): void {
    while (this.levels.length <= c) this.levels.push([]);
    const l = this.levels[c]!;
    const n = l.length;
    // `>= n` also absorbs an injected rng that returns exactly 1.
    const j = Math.floor(this.rng() * (n + 1));
    if (j >= n) {
      l.push(p);
      this.slot[p] = n;
    } else {
      const q = l[j]!;
      l.push(q);
      this.slot[q] = n;
      l[j] = p;
      this.slot[p] = j;
    }
  }

  /** Removes `p` from level `c` by swapping the last member into its slot. */
  private unlink(p: number, c: number): void {
    const l = this.levels[c]!;
    const at = this.slot[p]!;
    const last = l.pop()!;
    if (last !== p) { l[at] = last; this.slot[last] = at; }
  }
}
