/**
 * Blocks to verified pieces: copies each accepted block into its piece's pooled buffer, and when
 * the picker says the piece is whole, checks its SHA-1 against the manifest and writes it with one
 * positional write. Memory is bounded by the pieces in flight (the picker finishes partial pieces
 * first), never by the file size.
 *
 * Blame for a bad piece ("smart ban", as libtorrent does): when a piece fails, the SHA-1 of each of
 * its blocks is kept with the peer that sent it; when the piece later verifies, every peer whose
 * block differed from the good one is named a culprit. So a peer that sent one bad block among
 * good peers' blocks is caught exactly, and the good peers are not blamed.
 *
 * PERF-NOTES: SHA-1 is about half of the downloader's CPU (at the hardware's ~1.6 GB/s); hashing
 * the whole piece once beat hashing block by block, and copying a block out of the read buffer
 * (0.1 s/GiB) beat reading straight into piece buffers.
 */
import { createHash } from 'node:crypto';
import type { Manifest } from './api.js';
import type { BlockRequest, PeerKey, Picker } from './picker/index.js';
import { BufferPool } from './buffer-pool.js';
import { MAX_ASYNC_WRITES, type PartFile } from './storage.js';
import { MAX_UNVERIFIED_BYTES } from './limits.js';

/**
 * What became of one block. 'writing': the piece passed its hash and is being written on the
 * thread pool; {@link AssemblerHooks.written} follows. 'dropped': a requested block that would
 * start one partial piece too many ({@link MAX_UNVERIFIED_BYTES}); it goes back to the picker.
 */
export type BlockResult = 'ignored' | 'dropped' | 'stored' | 'verified' | 'writing' | 'failed';

/** Completion of asynchronous piece writes. */
export interface AssemblerHooks {
  /** The piece is on disk and verified in the picker. */
  written(piece: number): void;
  /** The write failed (disk full...): the download cannot go on. */
  writeFailed(err: Error): void;
}

interface InFlight {
  buf: Buffer;
  /** Identities of the peers that sent blocks of it (for strikes). */
  from: string[];
  /** Who sent each block, by block index. */
  senders: string[];
}

/** A block of a failed piece: who sent it and what it hashed to. */
interface Suspect { block: number; who: string; digest: Buffer }

const BLOCK = 16384;

/**
 * Invariant: a piece has a buffer here iff at least one of its blocks was accepted by the picker
 * since it was last verified or failed.
 */
export class PieceAssembler {
  /** CANCELs due after the last {@link block} call (endgame duplicates). */
  readonly cancels: Array<{ peer: PeerKey; req: BlockRequest }> = [];
  /** Who sent the piece that last failed. */
  lastContributors: string[] = [];
  /** Peers proven to have sent bad blocks, found when the last verified piece had failed before. */
  culprits: string[] = [];
  private readonly suspects = new Map<number, Suspect[]>();
  /** Blocks dropped as unrequested or duplicate, in bytes. */
  wasted = 0;
  private readonly inflight = new Map<number, InFlight>();
  private readonly pool: BufferPool;
  private disposed = false;

  /** With `hooks`, verified pieces are written on the thread pool (see PartFile.writePieceAsync). */
  constructor(private readonly manifest: Manifest, private readonly part: PartFile, private readonly picker: Picker,
    private readonly hooks: AssemblerHooks | null = null) {
    this.pool = new BufferPool(manifest.pieceLength);
  }

  /** Pieces with a buffer (partially received). */
  get piecesInFlight(): number { return this.inflight.size; }

  /**
   * A block from peer `peer` (identity `who`). Throws CoterieError IO if the verified piece
   * cannot be written (the download cannot go on).
   */
  block(peer: PeerKey, who: string, piece: number, begin: number, data: Buffer): BlockResult {
    const picker = this.picker;
    this.cancels.length = 0;
    // A block of another length than the one we asked for answers no request of ours.
    if (picker.blockLength(piece, begin) !== data.length) { this.wasted += data.length; return 'ignored'; }
    let f = this.inflight.get(piece);
    if (f === undefined && (this.inflight.size + 1) * this.manifest.pieceLength > MAX_UNVERIFIED_BYTES) {
      // Peers that start many pieces and finish none must not grow memory: refuse the block and
      // give its request back (fetched again later, when partial pieces have completed).
      picker.requestRejected(peer, { piece, begin, length: data.length });
      this.wasted += data.length;
      return 'dropped';
    }
    if (!picker.blockReceived(peer, piece, begin, this.cancels)) {
      this.wasted += data.length;
      return 'ignored';
    }
    if (f === undefined) {
      f = { buf: this.pool.take(), from: [], senders: [] };
      this.inflight.set(piece, f);
    }
    data.copy(f.buf, begin);
    f.senders[begin / BLOCK] = who;
    const from = f.from;
    if (from.length === 0 || (from[from.length - 1] !== who && !from.includes(who))) from.push(who);
    if (!picker.pieceReceived(piece)) return 'stored';
    return this.verify(piece, f);
  }

  private verify(piece: number, f: InFlight): BlockResult {
    const m = this.manifest;
    const size = piece === m.pieceCount - 1 ? m.length - piece * m.pieceLength : m.pieceLength;
    const digest = createHash('sha1').update(f.buf.subarray(0, size)).digest();
    this.inflight.delete(piece);
    this.culprits = [];
    if (!digest.equals(m.pieces.subarray(piece * 20, piece * 20 + 20))) {
      let list = this.suspects.get(piece);
      if (list === undefined) { list = []; this.suspects.set(piece, list); }
      for (let b = 0; b * BLOCK < size; b++) {
        list.push({ block: b, who: f.senders[b] ?? '?', digest: blockDigest(f.buf, b, size) });
      }
      this.pool.give(f.buf);
      this.picker.pieceFailed(piece);
      this.lastContributors = f.from;
      return 'failed';
    }
    const sus = this.suspects.get(piece);
    if (sus !== undefined) {
      this.suspects.delete(piece);
      const bad = new Set<string>();
      for (const x of sus) if (!blockDigest(f.buf, x.block, size).equals(x.digest)) bad.add(x.who);
      this.culprits = [...bad];
    }
    const hooks = this.hooks;
    if (hooks !== null && this.part.writesInFlight < MAX_ASYNC_WRITES) {
      const buf = f.buf;
      this.part.writePieceAsync(piece, buf, size, (err) => {
        this.pool.give(buf);
        if (this.disposed) return;
        if (err) { hooks.writeFailed(err); return; }
        this.picker.pieceVerified(piece);
        hooks.written(piece);
      });
      return 'writing';
    }
    // Synchronous path (also the backpressure when too many writes are in flight).
    try {
      this.part.writePiece(piece, f.buf, size);
    } finally {
      this.pool.give(f.buf);
    }
    this.picker.pieceVerified(piece);
    return 'verified';
  }

  /** Pieces that failed and have not verified since (for tests and status). */
  get suspectPieces(): number { return this.suspects.size; }

  /** Drops the partial pieces (pause, failure, completion). */
  dispose(): void {
    this.disposed = true;
    for (const f of this.inflight.values()) this.pool.give(f.buf);
    this.inflight.clear();
    this.suspects.clear();
    this.pool.drain();
  }
}

function blockDigest(buf: Buffer, block: number, size: number): Buffer {
  const start = block * BLOCK;
  return createHash('sha1').update(buf.subarray(start, Math.min(size, start + BLOCK))).digest();
}
