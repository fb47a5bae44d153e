/**
 * The block picker of one download: which blocks to request from which peer. Pure: no timers, no
 * I/O, randomness injected; the data path feeds it events and asks it for requests. The strategy
 * and its reasons are in NOTES.md beside this file.
 */
import { ProtocolError } from '../../common/errors.js';
import { Bitfield, popcountByte } from '../bitfield.js';
import { Availability } from './availability.js';
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
  /** Global block indices (piece * blocksPerPiece + block) requested from it and not yet answered. */
  readonly requests: Set<number>;
  /** Pieces it has that we have not verified (unused for seeders). */
  wanted: number;
  /** `freshEpoch` when a search for a new piece for it found nothing: skip until that changes. */
  dryEpoch: number;
}

/**
 * Decides which blocks to request from which peer, tracks every request in flight and every block
 * received, and knows how available each piece is.
 *
 * Invariants: a piece is in exactly one state (missing, partial, received, verified; see
 * {@link PiecePhase}); outside endgame a block is requested from at most one peer; every block
 * in flight is in the request set of each peer it was requested from; a received or verified piece
 * is never handed out again unless {@link pieceFailed} resets it.
 *
 * Cost: next() and blockReceived() are O(1) per block in the common case (a handful of partial
 * pieces, seeders), O(pieces / 8) at worst for a sparse peer. Memory is a few bytes per block of
 * the file (about 6 bytes per 16 KiB block: 400 KB per GiB).
 */
export class Picker {
  readonly pieceCount: number;
  readonly pieceLength: number;
  readonly totalLength: number;
  readonly blockSize: number;
  /** Blocks in every piece but the last. */
  private readonly bpp: number;
  private readonly lastPieceLength: number;
  private readonly lastPieceBlocks: number;
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
  /** All partial pieces (for endgame duplicates). */
  private readonly active: IndexSet;
  private readonly avail: Availability;
  /** MISSING blocks in pieces not verified. Zero (and not complete) means endgame. */
  private unrequestedTotal = 0;
  /** Bumped whenever a piece becomes a candidate again, to wake peers that found nothing. */
  private freshEpoch = 0;
  private readonly peers = new Map<PeerKey, PeerState>();

  constructor(opts: PickerOptions, have?: Bitfield) {
    const { pieceCount, pieceLength, totalLength } = opts;
    const blockSize = opts.blockSize ?? 16384;
    if (!Number.isSafeInteger(pieceCount) || pieceCount < 0 || !Number.isSafeInteger(pieceLength) || pieceLength <= 0
      || !Number.isSafeInteger(blockSize) || blockSize <= 0 || !Number.isSafeInteger(totalLength)
      || totalLength > pieceCount * pieceLength || totalLength <= (pieceCount - 1) * pieceLength) {
      throw new RangeError(`inconsistent picker geometry: ${pieceCount} pieces of ${pieceLength}, ${totalLength} bytes`);
    }
    this.pieceCount = pieceCount; this.pieceLength = pieceLength; this.totalLength = totalLength;
    this.blockSize = blockSize;
    this.bpp = Math.ceil(pieceLength / blockSize);
    this.lastPieceLength = pieceCount === 0 ? 0 : totalLength - (pieceCount - 1) * pieceLength;
    this.lastPieceBlocks = Math.ceil(this.lastPieceLength / blockSize);
    this.randomFirst = opts.randomFirstPieces ?? 4;
    this.dupMax = Math.max(1, opts.endgameDuplicates ?? 2);
    const rng = opts.rng ?? Math.random;

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
    this.avail = new Availability(pieceCount, rng);
    for (let p = 0; p < pieceCount; p++) {
      if (this.haveBf.get(p)) { this.pieceState[p] = VERIFIED; continue; }
      const nb = this.blocksIn(p);
      this.unrequested[p] = nb;
      this.unrequestedTotal += nb;
      this.avail.addCandidate(p);
    }
  }

  // ---- geometry -------------------------------------------------------------------------------

  /** Number of blocks in `piece`. */
  blocksIn(piece: number): number { return piece === this.pieceCount - 1 ? this.lastPieceBlocks : this.bpp; }

  /** Byte length of `piece`. */
  pieceSize(piece: number): number { return piece === this.pieceCount - 1 ? this.lastPieceLength : this.pieceLength; }

  /** The length of the block at `begin` in `piece`, or -1 if that is not a block boundary. */
  blockLength(piece: number, begin: number): number {
    if (piece >>> 0 !== piece || piece >= this.pieceCount || begin >>> 0 !== begin || begin % this.blockSize !== 0) return -1;
    const size = this.pieceSize(piece);
    return begin < size ? Math.min(this.blockSize, size - begin) : -1;
  }

  /** Global index of the block at `begin` of `piece`, or -1 if that is not a block. */
  private blockIndex(piece: number, begin: number): number {
    if (this.blockLength(piece, begin) < 0) return -1;
    return piece * this.bpp + begin / this.blockSize;
  }

  private request(piece: number, b: number): BlockRequest {
    const begin = b * this.blockSize;
    const end = piece === this.pieceCount - 1 ? this.lastPieceLength : this.pieceLength;
    return { piece, begin, length: Math.min(this.blockSize, end - begin) };
  }

  // ---- peers ----------------------------------------------------------------------------------

  /** A peer connected with these pieces. Joining again under the same key replaces it. */
  peerJoined(peer: PeerKey, has: Bitfield | 'all' | 'none'): void {
    if (this.peers.has(peer)) this.peerLeft(peer);
    const ps: PeerState = { key: peer, has: null, hasBytes: null, requests: new Set(), wanted: 0, dryEpoch: -1 };
    if (has === 'all' || (has !== 'none' && has.full)) {
      if (has !== 'all' && has.length !== this.pieceCount) throw new ProtocolError('bitfield of the wrong length');
      this.avail.seeds++;
    } else {
      const bf = has === 'none' ? new Bitfield(this.pieceCount) : has.clone();
      if (bf.length !== this.pieceCount) throw new ProtocolError('bitfield of the wrong length');
      ps.has = bf;
      ps.hasBytes = bf.bytes();
      for (const p of bf) this.avail.increment(p);
      ps.wanted = this.countWanted(ps.hasBytes);
    }
    this.peers.set(peer, ps);
  }

  /** The peer announced a piece (HAVE). An unknown peer is taken to have joined with nothing. */
  peerHave(peer: PeerKey, piece: number): void {
    if (piece >>> 0 !== piece || piece >= this.pieceCount) throw new ProtocolError(`HAVE for piece ${piece} out of range`);
    let ps = this.peers.get(peer);
    if (ps === undefined) { this.peerJoined(peer, 'none'); ps = this.peers.get(peer)!; }
    const has = ps.has;
    if (has === null || has.get(piece)) return;
    has.set(piece);
    this.avail.increment(piece);
    if (this.pieceState[piece] !== VERIFIED) ps.wanted++;
    ps.dryEpoch = -1;
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
  }

  /** The peer choked us: BEP 3 says it dropped our requests, so they go back to the pool. */
  peerChoked(peer: PeerKey): void {
    const ps = this.peers.get(peer);
    if (ps !== undefined) this.releaseAll(ps);
  }

  /** The peer rejected a request, or it timed out: the block goes back to the pool. */
  requestRejected(peer: PeerKey, req: BlockRequest): void {
    const ps = this.peers.get(peer);
    if (ps === undefined) return;
    const g = this.blockIndex(req.piece, req.begin);
    if (g < 0 || !ps.requests.delete(g)) return;
    this.unlinkRequester(ps.key, g);
  }

  /** Requests in flight to this peer. */
  outstanding(peer: PeerKey): number { return this.peers.get(peer)?.requests.size ?? 0; }

  /** The peer has a piece we have not verified. O(1). */
  isInteresting(peer: PeerKey): boolean {
    const ps = this.peers.get(peer);
    if (ps === undefined) return false;
    return ps.has === null ? !this.complete : ps.wanted > 0;
  }

  /** How many connected peers have `piece`. */
  availability(piece: number): number { return this.avail.of(piece); }

  private hasPiece(ps: PeerState, p: number): boolean {
    const b = ps.hasBytes;
    return b === null || (b[p >>> 3]! & (0x80 >>> (p & 7))) !== 0;
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
    const ps = this.peers.get(peer);
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
      const p = this.haveBf.count < this.randomFirst ? this.avail.random(ps.hasBytes) : this.avail.rarest(ps.hasBytes);
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
    const base = p * this.bpp, state = this.blockState;
    let b = this.hint[p]!, left = this.unrequested[p]!, got = 0;
    while (got < k && left > 0) {
      while (state[base + b] !== MISSING) b++;
      const g = base + b;
      state[g] = REQUESTED;
      this.owner[g] = ps.key;
      ps.requests.add(g);
      out.push(this.request(p, b));
      left--; got++; b++;
    }
    this.hint[p] = b;
    this.unrequested[p] = left;
    this.unrequestedTotal -= got;
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
      const base = p * this.bpp, nb = this.blocksIn(p);
      for (let b = 0; b < nb && got < k; b++) {
        const g = base + b;
        if (state[g] !== REQUESTED || ps.requests.has(g)) continue;
        let ex = this.extra.get(g);
        if (1 + (ex?.length ?? 0) >= this.dupMax) continue;
        if (ex === undefined) { ex = []; this.extra.set(g, ex); }
        ex.push(ps.key);
        ps.requests.add(g);
        out.push(this.request(p, b));
        got++;
      }
    }
    return got;
  }

  // ---- arrivals and verification ---------------------------------------------------------------

  /**
   * A block arrived from `peer`. False if it was not in flight to anyone (never requested, given
   * back, or already received). Other peers it was also requested from are appended to `cancels`.
   */
  blockReceived(peer: PeerKey, piece: number, begin: number, cancels: Array<{ peer: PeerKey; req: BlockRequest }>): boolean {
    const g = this.blockIndex(piece, begin);
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
    if (++this.received[piece]! === this.blocksIn(piece)) {
      this.pieceState[piece] = DONE;
      this.active.delete(piece);
    }
    return true;
  }

  /** Forgets that block `g` is in flight to `holder`; a CANCEL is due unless it is the sender. */
  private dropRequest(holder: PeerKey, g: number, sender: PeerKey, cancels: Array<{ peer: PeerKey; req: BlockRequest }>): void {
    this.peers.get(holder)?.requests.delete(g);
    if (holder !== sender) {
      const p = Math.floor(g / this.bpp);
      cancels.push({ peer: holder, req: this.request(p, g - p * this.bpp) });
    }
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
    for (const ps of this.peers.values()) if (ps.has !== null && ps.has.get(piece)) ps.wanted--;
  }

  /** The piece's hash did not match (or verified data turned out bad): fetch all of it again. */
  pieceFailed(piece: number): void {
    const st = this.pieceState[piece];
    if (st === undefined || st === FRESH) return; // nothing received: already a candidate
    if (st === VERIFIED) {
      this.haveBf.clear(piece);
      for (const ps of this.peers.values()) if (ps.has !== null && ps.has.get(piece)) ps.wanted++;
    } else {
      this.forgetRequests(piece);
      this.unrequestedTotal -= this.unrequested[piece]!;
    }
    const base = piece * this.bpp, nb = this.blocksIn(piece);
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
    const base = piece * this.bpp, nb = this.blocksIn(piece);
    for (let g = base; g < base + nb; g++) {
      if (this.blockState[g] !== REQUESTED) continue;
      this.peers.get(this.owner[g]!)?.requests.delete(g);
      for (const e of this.extra.get(g) ?? []) this.peers.get(e)?.requests.delete(g);
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
    for (const g of ps.requests) this.unlinkRequester(ps.key, g);
    ps.requests.clear();
  }

  /** `peer` no longer has block `g` in flight (its set is updated by the caller). */
  private unlinkRequester(peer: PeerKey, g: number): void {
    if (this.blockState[g] !== REQUESTED) return;
    const ex = this.extra.get(g);
    if (this.owner[g] === peer) {
      if (ex !== undefined) {
        this.owner[g] = ex.pop()!;
        if (ex.length === 0) this.extra.delete(g);
        return;
      }
    } else {
      if (ex !== undefined) {
        const i = ex.indexOf(peer);
        if (i >= 0) ex.splice(i, 1);
        if (ex.length === 0) this.extra.delete(g);
      }
      return;
    }
    // Nobody has it in flight any more: back to MISSING.
    this.owner[g] = -1;
    this.blockState[g] = MISSING;
    const p = Math.floor(g / this.bpp), b = g - p * this.bpp;
    this.unrequestedTotal++;
    const left = ++this.unrequested[p]!;
    if (b < this.hint[p]!) this.hint[p] = b;
    if (left === this.blocksIn(p)) this.toFresh(p);
    else this.open.add(p);
  }

  // ---- status ---------------------------------------------------------------------------------

  /** Verified pieces (the picker's own bitfield: read it, don't mutate it). */
  get have(): Bitfield { return this.haveBf; }

  get complete(): boolean { return this.haveBf.full; }

  /** Every missing block is in flight: duplicates are allowed. */
  get inEndgame(): boolean { return this.unrequestedTotal === 0 && !this.haveBf.full; }
}
