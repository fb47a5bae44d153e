/**
 * The block picker of one download: which blocks to request from which peer. Pure: no timers, no
 * I/O, randomness injected; the data path feeds it events and asks it for requests. The strategy
 * and its reasons are in NOTES.md beside this file.
 */
import { ProtocolError } from '../../common/errors.js';
import { Bitfield, popcountByte } from '../bitfield.js';
import { Availability, RarestMemo } from './availability.js';
import { Geometry } from './geometry.js';
import { IndexSet } from './index-set.js';
import type { BlockRequest, PeerKey, PickerOptions, PiecePhase } from './types.js';

// Block states (per block, in `blockState`).
const MISSING = 0, REQUESTED = 1, RECEIVED = 2;
// Piece states (per piece, in `pieceState`); the order matters: >= DONE means "never pick again".
const FRESH = 0, ACTIVE = 1, DONE = 2, VERIFIED = 3;
const PHASES: readonly PiecePhase[] = ['missing', 'partial', 'received', 'verified'];

/** What the picker knows of one connected peer. */
interface PeerState {
  readonly key: PeerKey;
  /** Its pieces, or null when it has them all (a seeder: not counted per piece). */
  has: Bitfield | null;
  /** `has.bytes()` (or null), cached for the hot loops. */
  hasBytes: Uint8Array | null;
  /**
   * Blocks requested from it and not yet answered. The blocks themselves are found through
   * `owner` / `extra` (a per-peer Set would cost two hash operations per block on the hot path;
   * listing a peer's requests is only needed when it chokes or leaves).
   */
  inflight: number;
  /** Pieces it has that we have not verified (unused for seeders). */
  wanted: number;
  /** `freshEpoch` when a search for a new piece for it found nothing: skip until that changes. */
  dryEpoch: number;
  /** Its rarest-first scan memo (sparse peers only). */
  readonly memo: RarestMemo;
}

/**
 * Decides which blocks to request from which peer, tracks every request in flight and every block
 * received, and knows how available each piece is.
 *
 * Invariants: a piece is in exactly one state (missing, partial, received, verified; see
 * {@link PiecePhase}); outside endgame a block is requested from at most one peer, in endgame
 * from at most `endgameDuplicates`; a block in flight is in a partial piece; a received or
 * verified piece is never handed out again unless {@link pieceFailed} resets it.
 *
 * Cost: next() and blockReceived() are O(1) per block in the common case (a handful of partial
 * pieces, seeders); a sparse peer pays one O(pieces / 8) scan per rarity level it works through.
 * peerChoked and peerLeft cost O(blocks of partial pieces). Memory is about 6 bytes per block of
 * the file (400 KB per GiB at 16 KiB blocks).
 */
export class Picker {
  private readonly geo: Geometry;
  private readonly bpp: number;
  private readonly randomFirst: number;
  private readonly dupMax: number;

  private readonly haveBf: Bitfield;
  private readonly blockState: Uint8Array;
  /** First peer a block is requested from, or -1. Endgame duplicates go to `extra`. */
  private readonly owner: Int32Array;
  private readonly extra = new Map<number, PeerKey[]>();
  private readonly pieceState: Uint8Array;
  /** Per piece: blocks in state MISSING / RECEIVED. */
  private readonly unrequested: Int32Array;
  private readonly received: Int32Array;
  /** Per piece: every block below this index is not MISSING (where to resume the scan). */
  private readonly hint: Int32Array;
  /** Partial pieces with blocks still to request: handed out before any new piece. */
  private readonly open: IndexSet;
  /** All partial pieces (for endgame duplicates and for listing a peer's requests). */
  private readonly active: IndexSet;
  private readonly avail: Availability;
  /** MISSING blocks in pieces not verified. Zero (and not complete) means endgame. */
  private unrequestedTotal = 0;
  /** Bumped whenever a piece becomes a candidate again, to wake peers that found nothing. */
  private freshEpoch = 0;
  private readonly peers = new Map<PeerKey, PeerState>();
  /** The last peer looked up: consecutive blocks mostly come from the same peer. */
  private lastPeer: PeerState | undefined;

  constructor(opts: PickerOptions, have?: Bitfield) {
    const geo = new Geometry(opts.pieceCount, opts.pieceLength, opts.totalLength, opts.blockSize ?? 16384);
    const pieceCount = geo.pieceCount;
    this.geo = geo;
    this.bpp = geo.blocksPerPiece;
    this.randomFirst = opts.randomFirstPieces ?? 4;
    this.dupMax = Math.max(1, opts.endgameDuplicates ?? 2);
    if (have !== undefined && have.length !== pieceCount) throw new RangeError('have bitfield of the wrong length');
    this.haveBf = have === undefined ? new Bitfield(pieceCount) : have.clone();
    const slots = pieceCount * this.bpp;
    this.blockState = new Uint8Array(slots);
    this.owner = new Int32Array(slots).fill(-1);
    this.pieceState = new Uint8Array(pieceCount);
    this.unrequested = new Int32Array(pieceCount);
    this.received = new Int32Array(pieceCount);
    this.hint = new Int32Array(pieceCount);
    this.open = new IndexSet(pieceCount);
    this.active = new IndexSet(pieceCount);
    this.avail = new Availability(pieceCount, opts.rng ?? Math.random);
    for (let p = 0; p < pieceCount; p++) {
      if (this.haveBf.get(p)) { this.pieceState[p] = VERIFIED; continue; }
      const nb = geo.blocksIn(p);
      this.unrequested[p] = nb;
      this.unrequestedTotal += nb;
      this.avail.addCandidate(p);
    }
  }

  /** The piece and block sizes this picker works with. */
  get geometry(): Geometry { return this.geo; }

  /** The length of the block at `begin` in `piece`, or -1 if that is not a block boundary. */
  blockLength(piece: number, begin: number): number { return this.geo.blockLength(piece, begin); }

  // ---- peers ----------------------------------------------------------------------------------

  /** A peer connected with these pieces. Joining again under the same key replaces it. */
  peerJoined(peer: PeerKey, has: Bitfield | 'all' | 'none'): void {
    if (this.peers.has(peer)) this.peerLeft(peer);
    const n = this.geo.pieceCount;
    const ps: PeerState = { key: peer, has: null, hasBytes: null, inflight: 0, wanted: 0, dryEpoch: -1, memo: new RarestMemo() };
    if (has !== 'all' && has !== 'none' && has.length !== n) throw new ProtocolError('bitfield of the wrong length');
    if (has === 'all' || (has !== 'none' && has.full)) {
      this.avail.seeds++;
    } else {
      const bf = has === 'none' ? new Bitfield(n) : has.clone();
      ps.has = bf;
      ps.hasBytes = bf.bytes();
      for (const p of bf) this.avail.increment(p);
      ps.wanted = this.countWanted(ps.hasBytes);
    }
    this.peers.set(peer, ps);
  }

  /** The peer announced a piece (HAVE). An unknown peer is taken to have joined with nothing. */
  peerHave(peer: PeerKey, piece: number): void {
    if (piece >>> 0 !== piece || piece >= this.geo.pieceCount) throw new ProtocolError(`HAVE for piece ${piece} out of range`);
    let ps = this.peers.get(peer);
    if (ps === undefined) { this.peerJoined(peer, 'none'); ps = this.peers.get(peer)!; }
    const has = ps.has;
    if (has === null || has.get(piece)) return;
    has.set(piece);
    this.avail.increment(piece);
    if (this.pieceState[piece] !== VERIFIED) ps.wanted++;
    ps.dryEpoch = -1;
    ps.memo.epoch = -1;
    if (has.full) {
      // Now a seeder: uncount it per piece, which makes next() for it O(1) from here on.
      this.avail.promoteToSeed();
      ps.has = null;
      ps.hasBytes = null;
    }
  }

  /** The peer disconnected: its requests go back to the pool, its pieces out of availability. */
  peerLeft(peer: PeerKey): void {
    const ps = this.peers.get(peer);
    if (ps === undefined) return;
    this.releaseAll(ps);
    if (ps.has === null) this.avail.seeds--;
    else for (const p of ps.has) this.avail.decrement(p);
    this.peers.delete(peer);
    if (this.lastPeer === ps) this.lastPeer = undefined;
  }

  /** The peer choked us: BEP 3 says it dropped our requests, so they go back to the pool. */
  peerChoked(peer: PeerKey): void {
    const ps = this.peers.get(peer);
    if (ps !== undefined) this.releaseAll(ps);
  }

  /** The peer rejected a request, or it timed out: the block goes back to the pool. */
  requestRejected(peer: PeerKey, req: BlockRequest): void {
    const ps = this.peers.get(peer);
    const g = this.geo.blockIndex(req.piece, req.begin);
    if (ps === undefined || g < 0 || !this.holds(peer, g)) return;
    this.unlinkRequester(ps, g);
  }

  /** Requests in flight to this peer. */
  outstanding(peer: PeerKey): number { return this.peers.get(peer)?.inflight ?? 0; }

  /** The peer has a piece we have not verified. O(1). */
  isInteresting(peer: PeerKey): boolean {
    const ps = this.peers.get(peer);
    if (ps === undefined) return false;
    return ps.has === null ? !this.complete : ps.wanted > 0;
  }

  /** How many connected peers have `piece`. */
  availability(piece: number): number { return this.avail.of(piece); }

  private peer(key: PeerKey): PeerState | undefined {
    const last = this.lastPeer;
    if (last !== undefined && last.key === key) return last;
    const ps = this.peers.get(key);
    if (ps !== undefined) this.lastPeer = ps;
    return ps;
  }

  private hasPiece(ps: PeerState, p: number): boolean {
    const b = ps.hasBytes;
    return b === null || (b[p >>> 3]! & (0x80 >>> (p & 7))) !== 0;
  }

  /** Block `g` is in flight to `peer`. */
  private holds(peer: PeerKey, g: number): boolean {
    if (this.blockState[g] !== REQUESTED) return false;
    if (this.owner[g] === peer) return true;
    const ex = this.extra.get(g);
    return ex !== undefined && ex.includes(peer);
  }

  /** Pieces marked in `has` that we have not verified. */
  private countWanted(has: Uint8Array): number {
    const mine = this.haveBf.bytes();
    let n = 0;
    for (let k = 0; k < has.length; k++) n += popcountByte(has[k]! & ~mine[k]!);
    return n;
  }

  // ---- picking --------------------------------------------------------------------------------

  /**
   * Up to `max` new requests for `peer`, appended to `out`; returns how many. Order: partial
   * pieces first; then, while we have fewer than `randomFirstPieces`, random pieces, else the
   * rarest; in endgame, duplicates of blocks in flight elsewhere (at most `endgameDuplicates`
   * peers per block). Only pieces the peer has; never a block it already has in flight.
   */
  next(peer: PeerKey, max: number, out: BlockRequest[]): number {
    const ps = this.peer(peer);
    if (ps === undefined || max <= 0 || this.haveBf.full) return 0;
    let n = 0;
    const open = this.open, items = open.items;
    for (let i = 0; i < open.size && n < max;) {
      const p = items[i]!;
      if (this.hasPiece(ps, p)) {
        n += this.take(ps, p, max - n, out);
        // take() removes p from `open` once it has nothing left to request; the slot then holds
        // a member not yet visited.
        if (!open.has(p)) continue;
      }
      i++;
    }
    while (n < max && ps.dryEpoch !== this.freshEpoch) {
      const p = this.haveBf.count < this.randomFirst ? this.avail.random(ps.hasBytes) : this.avail.rarest(ps.hasBytes, ps.memo);
      if (p < 0) { ps.dryEpoch = this.freshEpoch; break; }
      this.avail.removeCandidate(p);
      this.pieceState[p] = ACTIVE;
      this.open.add(p);
      this.active.add(p);
      n += this.take(ps, p, max - n, out);
    }
    if (n < max && this.unrequestedTotal === 0) n += this.duplicate(ps, max - n, out);
    return n;
  }

  /** Requests up to `k` MISSING blocks of partial piece `p` from `ps`. */
  private take(ps: PeerState, p: number, k: number, out: BlockRequest[]): number {
    const base = p * this.bpp, state = this.blockState, owner = this.owner, geo = this.geo, key = ps.key;
    let b = this.hint[p]!, left = this.unrequested[p]!, got = 0;
    while (got < k && left > 0) {
      while (state[base + b] !== MISSING) b++;
      state[base + b] = REQUESTED;
      owner[base + b] = key;
      out.push(geo.request(p, b));
      left--; got++; b++;
    }
    this.hint[p] = b;
    this.unrequested[p] = left;
    this.unrequestedTotal -= got;
    ps.inflight += got;
    if (left === 0) this.open.delete(p);
    return got;
  }

  /** Endgame: requests blocks already in flight elsewhere, up to `dupMax` peers per block. */
  private duplicate(ps: PeerState, k: number, out: BlockRequest[]): number {
    const act = this.active, state = this.blockState;
    let got = 0;
    for (let i = 0; i < act.size && got < k; i++) {
      const p = act.items[i]!;
      if (!this.hasPiece(ps, p)) continue;
      const base = p * this.bpp, nb = this.geo.blocksIn(p);
      for (let b = 0; b < nb && got < k; b++) {
        const g = base + b;
        if (state[g] !== REQUESTED || this.owner[g] === ps.key) continue;
        let ex = this.extra.get(g);
        if (ex !== undefined && (1 + ex.length >= this.dupMax || ex.includes(ps.key))) continue;
        if (this.dupMax < 2) continue;
        if (ex === undefined) { ex = []; this.extra.set(g, ex); }
        ex.push(ps.key);
        out.push(this.geo.request(p, b));
        got++;
      }
    }
    ps.inflight += got;
    return got;
  }

  // ---- arrivals and verification ---------------------------------------------------------------

  /**
   * A block arrived from `peer`. False if it was not in flight to anyone (never requested, given
   * back, or already received). Other peers it was also requested from are appended to `cancels`.
   */
  blockReceived(peer: PeerKey, piece: number, begin: number, cancels: Array<{ peer: PeerKey; req: BlockRequest }>): boolean {
    const g = this.geo.blockIndex(piece, begin);
    if (g < 0 || this.blockState[g] !== REQUESTED) return false;
    this.blockState[g] = RECEIVED;
    const o = this.owner[g]!;
    this.owner[g] = -1;
    this.dropRequest(o, g, peer, cancels);
    if (this.extra.size !== 0) {
      const ex = this.extra.get(g);
      if (ex !== undefined) {
        this.extra.delete(g);
        for (const e of ex) this.dropRequest(e, g, peer, cancels);
      }
    }
    if (++this.received[piece]! === this.geo.blocksIn(piece)) {
      this.pieceState[piece] = DONE;
      this.active.delete(piece);
    }
    return true;
  }

  /** Forgets that block `g` is in flight to `holder`; a CANCEL is due unless it is the sender. */
  private dropRequest(holder: PeerKey, g: number, sender: PeerKey, cancels: Array<{ peer: PeerKey; req: BlockRequest }>): void {
    const ps = this.peer(holder);
    if (ps !== undefined) ps.inflight--;
    if (holder !== sender) cancels.push({ peer: holder, req: this.geo.requestOf(g) });
  }

  /** Every block of `piece` has arrived (or it is verified): time to check its hash. */
  pieceReceived(piece: number): boolean { return this.pieceState[piece]! >= DONE; }

  /** Where `piece` stands. */
  piecePhase(piece: number): PiecePhase { return PHASES[this.pieceState[piece]!]!; }

  /** The piece's hash matched: it is ours. */
  pieceVerified(piece: number): void {
    const st = this.pieceState[piece];
    if (st === undefined || st === VERIFIED) return;
    if (st === FRESH) this.avail.removeCandidate(piece);
    this.forgetRequests(piece);
    this.unrequestedTotal -= this.unrequested[piece]!;
    this.unrequested[piece] = 0;
    this.open.delete(piece);
    this.active.delete(piece);
    this.pieceState[piece] = VERIFIED;
    this.haveBf.set(piece);
    for (const ps of this.peers.values()) if (ps.hasBytes !== null && this.hasPiece(ps, piece)) ps.wanted--;
  }

  /** The piece's hash did not match (or verified data turned out bad): fetch all of it again. */
  pieceFailed(piece: number): void {
    const st = this.pieceState[piece];
    if (st === undefined || st === FRESH) return; // nothing received: already a candidate
    if (st === VERIFIED) {
      this.haveBf.clear(piece);
      for (const ps of this.peers.values()) if (ps.hasBytes !== null && this.hasPiece(ps, piece)) ps.wanted++;
    } else {
      this.forgetRequests(piece);
      this.unrequestedTotal -= this.unrequested[piece]!;
    }
    const base = piece * this.bpp, nb = this.geo.blocksIn(piece);
    this.blockState.fill(MISSING, base, base + nb);
    this.owner.fill(-1, base, base + nb);
    this.unrequested[piece] = nb;
    this.unrequestedTotal += nb;
    this.received[piece] = 0;
    this.toFresh(piece);
  }

  /** Drops every request in flight for blocks of `piece` (the data it brings is no longer wanted). */
  private forgetRequests(piece: number): void {
    if (this.pieceState[piece] !== ACTIVE) return;
    const base = piece * this.bpp, nb = this.geo.blocksIn(piece);
    for (let g = base; g < base + nb; g++) {
      if (this.blockState[g] !== REQUESTED) continue;
      const o = this.peer(this.owner[g]!);
      if (o !== undefined) o.inflight--;
      for (const e of this.extra.get(g) ?? []) { const ps = this.peer(e); if (ps !== undefined) ps.inflight--; }
      this.extra.delete(g);
      this.owner[g] = -1;
      this.blockState[g] = MISSING;
      this.unrequested[piece]!++;
      this.unrequestedTotal++;
    }
    this.hint[piece] = 0;
  }

  private toFresh(piece: number): void {
    this.open.delete(piece);
    this.active.delete(piece);
    this.hint[piece] = 0;
    this.pieceState[piece] = FRESH;
    this.avail.addCandidate(piece);
    this.freshEpoch++;
  }

  /** Gives every request in flight to `ps` back to the pool. */
  private releaseAll(ps: PeerState): void {
    if (ps.inflight === 0) return;
    // Listed first, released after: releasing can move a piece out of `active` mid-walk.
    const mine: number[] = [];
    const act = this.active;
    for (let i = 0; i < act.size; i++) {
      const p = act.items[i]!;
      const base = p * this.bpp, end = base + this.geo.blocksIn(p);
      for (let g = base; g < end; g++) if (this.holds(ps.key, g)) mine.push(g);
    }
    for (const g of mine) this.unlinkRequester(ps, g);
  }

  /** `ps` no longer has block `g` in flight. */
  private unlinkRequester(ps: PeerState, g: number): void {
    ps.inflight--;
    const ex = this.extra.get(g);
    if (this.owner[g] !== ps.key) {
      if (ex !== undefined) {
        const i = ex.indexOf(ps.key);
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
    // Nobody has it in flight any more: back to MISSING.
    this.owner[g] = -1;
    this.blockState[g] = MISSING;
    const p = Math.floor(g / this.bpp), b = g - p * this.bpp;
    this.unrequestedTotal++;
    const left = ++this.unrequested[p]!;
    if (b < this.hint[p]!) this.hint[p] = b;
    if (left === this.geo.blocksIn(p)) this.toFresh(p);
    else this.open.add(p);
  }

  // ---- status ---------------------------------------------------------------------------------

  /** Verified pieces (the picker's own bitfield: read it, don't mutate it). */
  get have(): Bitfield { return this.haveBf; }

  get complete(): boolean { return this.haveBf.full; }

  /** Every missing block is in flight: duplicates are allowed. */
  get inEndgame(): boolean { return this.unrequestedTotal === 0 && !this.haveBf.full; }
}
