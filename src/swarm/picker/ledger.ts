/**
 * The state of every block of a download and which peers each is in flight to. The picker owns
 * the order (which piece next) and the peers; this ledger owns the blocks, in flat typed arrays
 * indexed by global block number (see {@link Geometry}), so the hot path allocates nothing but the
 * request objects it hands out.
 */
import type { Bitfield } from '../bitfield.js';
import type { Geometry } from './geometry.js';
import { IndexSet } from './index-set.js';
import type { BlockRequest, PeerKey } from './types.js';

// Block states.
const MISSING = 0, REQUESTED = 1, RECEIVED = 2;
/** Piece states; the order matters: >= DONE means "never hand out again". */
export const FRESH = 0, ACTIVE = 1, DONE = 2, VERIFIED = 3;

/**
 * Invariants: a FRESH piece has every block MISSING; an ACTIVE piece has at least one block not
 * MISSING and not all RECEIVED, and is in `active`, and in `open` exactly when it has a MISSING
 * block; a REQUESTED block has an owner (plus endgame duplicates in `extra`); `unrequestedTotal`
 * counts the MISSING blocks of pieces not VERIFIED.
 */
export class BlockLedger {
  readonly pieceState: Uint8Array;
  /** Partial pieces with blocks still to request. */
  readonly open: IndexSet;
  /** All partial (ACTIVE) pieces. */
  readonly active: IndexSet;
  unrequestedTotal = 0;
  private readonly bpp: number;
  private readonly blockState: Uint8Array;
  /** First peer a block is requested from, or -1. */
  private readonly owner: Int32Array;
  /** Endgame: the other peers a block is requested from. */
  private readonly extra = new Map<number, PeerKey[]>();
  /** Per piece: blocks MISSING / RECEIVED. */
  private readonly unrequested: Int32Array;
  private readonly received: Int32Array;
  /** Per piece: every block below this index is not MISSING (where to resume the scan). */
  private readonly hint: Int32Array;

  /** `onFresh` is told when a piece goes back to FRESH (it is a candidate for picking again). */
  constructor(private readonly geo: Geometry, have: Bitfield, private readonly onFresh: (piece: number) => void) {
    const n = geo.pieceCount;
    this.bpp = geo.blocksPerPiece;
    this.blockState = new Uint8Array(n * this.bpp);
    this.owner = new Int32Array(n * this.bpp).fill(-1);
    this.pieceState = new Uint8Array(n);
    this.unrequested = new Int32Array(n);
    this.received = new Int32Array(n);
    this.hint = new Int32Array(n);
    this.open = new IndexSet(n);
    this.active = new IndexSet(n);
    for (let p = 0; p < n; p++) {
      if (have.get(p)) { this.pieceState[p] = VERIFIED; continue; }
      this.unrequested[p] = geo.blocksIn(p);
      this.unrequestedTotal += this.unrequested[p]!;
    }
  }

  /** A FRESH piece was picked: it becomes partial. */
  start(p: number): void {
    this.pieceState[p] = ACTIVE;
    this.open.add(p);
    this.active.add(p);
  }

  /** Requests up to `k` MISSING blocks of partial piece `p` from `peer`; returns how many. */
  take(peer: PeerKey, p: number, k: number, out: BlockRequest[]): number {
    const base = p * this.bpp, state = this.blockState, owner = this.owner, geo = this.geo;
    let b = this.hint[p]!, left = this.unrequested[p]!, got = 0;
    while (got < k && left > 0) {
      while (state[base + b] !== MISSING) b++;
      state[base + b] = REQUESTED;
      owner[base + b] = peer;
      out.push(geo.request(p, b));
      left--; got++; b++;
    }
    this.hint[p] = b;
    this.unrequested[p] = left;
    this.unrequestedTotal -= got;
    if (left === 0) this.open.delete(p);
    return got;
  }

  /**
   * Endgame: requests from `peer` up to `k` blocks in flight elsewhere, in pieces `has` marks
   * (null: all), each to at most `dupMax` peers in all.
   */
  duplicate(peer: PeerKey, has: Uint8Array | null, k: number, dupMax: number, out: BlockRequest[]): number {
    if (dupMax < 2) return 0;
    const act = this.active, state = this.blockState;
    let got = 0;
    for (let i = 0; i < act.size && got < k; i++) {
      const p = act.items[i]!;
      if (has !== null && (has[p >>> 3]! & (0x80 >>> (p & 7))) === 0) continue;
      const base = p * this.bpp, nb = this.geo.blocksIn(p);
      for (let b = 0; b < nb && got < k; b++) {
        const g = base + b;
        if (state[g] !== REQUESTED || this.owner[g] === peer) continue;
        let ex = this.extra.get(g);
        if (ex !== undefined && (1 + ex.length >= dupMax || ex.includes(peer))) continue;
        if (ex === undefined) { ex = []; this.extra.set(g, ex); }
        ex.push(peer);
        out.push(this.geo.request(p, b));
        got++;
      }
    }
    return got;
  }

  /** Block `g` is in flight to `peer`. */
  holds(peer: PeerKey, g: number): boolean {
    if (this.blockState[g] !== REQUESTED) return false;
    if (this.owner[g] === peer) return true;
    if (this.extra.size === 0) return false;
    const ex = this.extra.get(g);
    return ex !== undefined && ex.includes(peer);
  }

  /**
   * Block `g` of `piece` arrived. Returns the peer it was requested from first, or -1 if it was
   * not in flight (nothing changes then); the endgame duplicates follow from {@link takeExtras}.
   */
  receive(piece: number, g: number): PeerKey {
    if (this.blockState[g] !== REQUESTED) return -1;
    this.blockState[g] = RECEIVED;
    const o = this.owner[g]!;
    this.owner[g] = -1;
    if (++this.received[piece]! === this.geo.blocksIn(piece)) {
      this.pieceState[piece] = DONE;
      this.active.delete(piece);
    }
    return o;
  }

  /** The endgame duplicates of a block just received (removed from the ledger). */
  takeExtras(g: number): PeerKey[] | undefined {
    if (this.extra.size === 0) return undefined;
    const ex = this.extra.get(g);
    if (ex !== undefined) this.extra.delete(g);
    return ex;
  }

  /** Every block in flight to `peer` (walks the partial pieces: for chokes and departures). */
  heldBy(peer: PeerKey): number[] {
    const mine: number[] = [];
    const act = this.active;
    for (let i = 0; i < act.size; i++) {
      const p = act.items[i]!;
      const base = p * this.bpp, end = base + this.geo.blocksIn(p);
      for (let g = base; g < end; g++) if (this.holds(peer, g)) mine.push(g);
    }
    return mine;
  }

  /** `peer` no longer has block `g` in flight; if nobody has, the block goes back to MISSING. */
  release(peer: PeerKey, g: number): void {
    const ex = this.extra.get(g);
    if (this.owner[g] !== peer) {
      if (ex !== undefined) {
        const i = ex.indexOf(peer);
        if (i >= 0) ex.splice(i, 1);
        if (ex.length === 0) this.extra.delete(g);
      }
      return;
    }
    if (ex !== undefined) {
      // An endgame duplicate becomes the owner: the block is still in flight.
      this.owner[g] = ex.pop()!;
      if (ex.length === 0) this.extra.delete(g);
      return;
    }
    this.owner[g] = -1;
    this.blockState[g] = MISSING;
    const p = Math.floor(g / this.bpp), b = g - p * this.bpp;
    this.unrequestedTotal++;
    const left = ++this.unrequested[p]!;
    if (b < this.hint[p]!) this.hint[p] = b;
    if (left === this.geo.blocksIn(p)) this.toFresh(p);
    else this.open.add(p);
  }

  /**
   * Drops every request in flight for blocks of `piece` (its data is no longer wanted); `dropped`
   * is told each peer that loses one, once per block.
   */
  forget(piece: number, dropped: (peer: PeerKey) => void): void {
    if (this.pieceState[piece] !== ACTIVE) return;
    const base = piece * this.bpp, nb = this.geo.blocksIn(piece);
    for (let g = base; g < base + nb; g++) {
      if (this.blockState[g] !== REQUESTED) continue;
      dropped(this.owner[g]!);
      for (const e of this.extra.get(g) ?? []) dropped(e);
      this.extra.delete(g);
      this.owner[g] = -1;
      this.blockState[g] = MISSING;
      this.unrequested[piece]!++;
      this.unrequestedTotal++;
    }
    this.hint[piece] = 0;
  }

  /** The piece is ours (call {@link forget} first if blocks may be in flight). */
  verified(piece: number): void {
    this.unrequestedTotal -= this.unrequested[piece]!;
    this.unrequested[piece] = 0;
    this.open.delete(piece);
    this.active.delete(piece);
    this.pieceState[piece] = VERIFIED;
  }

  /** Every block of `piece` back to MISSING (a failed hash; call {@link forget} first). */
  reset(piece: number): void {
    if (this.pieceState[piece] === FRESH) return;
    const base = piece * this.bpp, nb = this.geo.blocksIn(piece);
    this.blockState.fill(MISSING, base, base + nb);
    this.owner.fill(-1, base, base + nb);
    this.unrequestedTotal += nb - this.unrequested[piece]!; // a verified piece has 0 there
    this.unrequested[piece] = nb;
    this.received[piece] = 0;
    this.toFresh(piece);
  }

  private toFresh(piece: number): void {
    this.open.delete(piece);
    this.active.delete(piece);
    this.hint[piece] = 0;
    this.pieceState[piece] = FRESH;
    this.onFresh(piece);
  }
}
