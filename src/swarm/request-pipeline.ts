/**
 * What we ask one peer for, apart from the connection's state machine: a {@link PeerSession}
 * owns one {@link RequestPipeline} and does the sending. It owns the blocks we requested and the
 * peer has not answered, the REQUEST and CANCEL frames that change that set, how deep to keep
 * the pipeline, and what the download reads to spot a stalled (snubbing) peer: when it last
 * delivered a block, and how many bytes it sent that we never asked for.
 *
 * Invariants: a block is in {@link RequestPipeline.requested} from the moment its REQUEST is
 * framed until it is answered, cancelled, or the peer chokes us; only a block taken out of that
 * set by {@link RequestPipeline.answered} counts as delivered; unasked-for bytes past
 * {@link MAX_UNREQUESTED_BYTES} are a protocol error. Per block nothing is allocated: one buffer
 * per batch of REQUESTs, one per CANCEL.
 */
import { ProtocolError } from '../common/errors.js';
import { BLOCK_SIZE, encodeCancel, writeRequest, REQUEST_FRAME_LENGTH, type BlockRef } from './wire/codec.js';
import { MAX_UNREQUESTED_BYTES } from './limits.js';

/** Pipeline depth lower bound, in blocks (PERF-NOTES: 16 -> 780 MB/s, 64 -> 850, 128 -> 910, 256 no better). */
export const MIN_PIPELINE = 64;
/** Seconds of the peer's measured rate we keep requested ahead. */
const PIPELINE_SECONDS = 0.5;

/** The requests in flight to one peer (see the file comment). */
export class RequestPipeline {
  /**
   * Blocks we asked this peer for and it has not answered, by block number (piece * blocks per
   * piece + begin / 16 KiB). Only these reach the owner: a peer cannot slip data into a block we
   * asked someone else for. Kept when the download gives a stalled peer's requests to others
   * (the peer may still answer, and that data is welcome); dropped on CANCEL and when it chokes us.
   */
  readonly requested = new Set<number>();
  /** PIECE bytes from this peer that answered no request of ours. */
  unrequestedBytes = 0;
  /** When the last block arrived (or when we were last unchoked, whichever is later). */
  lastBlockAt: number;
  private blocksPerPiece = 1;

  constructor(now: number) {
    this.lastBlockAt = now;
  }

  /** The torrent is known: block numbers follow its piece length. */
  setPieceLength(pieceLength: number): void {
    this.blocksPerPiece = Math.ceil(pieceLength / BLOCK_SIZE);
  }

  /** Block number of a request (-1 if `begin` is not on a block boundary, which we never request). */
  blockNumber(piece: number, begin: number): number {
    return begin % BLOCK_SIZE === 0 ? piece * this.blocksPerPiece + begin / BLOCK_SIZE : -1;
  }

  /**
   * `reqs[from..to)` as REQUEST frames in one buffer, each block recorded as requested; null
   * when the range is empty.
   */
  frames(reqs: readonly BlockRef[], from: number, to: number): Buffer | null {
    const n = to - from;
    if (n <= 0) return null;
    const b = Buffer.allocUnsafe(n * REQUEST_FRAME_LENGTH);
    let off = 0;
    for (let i = from; i < to; i++) {
      const r = reqs[i]!;
      off = writeRequest(b, off, r.piece, r.begin, r.length);
      this.requested.add(this.blockNumber(r.piece, r.begin));
    }
    return b;
  }

  /** Forgets the request for `r` and returns its CANCEL frame. */
  cancel(r: BlockRef): Buffer {
    this.requested.delete(this.blockNumber(r.piece, r.begin));
    return encodeCancel(r.piece, r.begin, r.length);
  }

  /** The peer choked us. BEP 3: a choking peer drops the requests it had from us. */
  choked(): void { this.requested.clear(); }

  /** The peer unchoked us: the stall clock starts again. */
  unchoked(now: number): void { this.lastBlockAt = now; }

  /**
   * A PIECE of `length` bytes arrived: true when it answers a request of ours (taken off the
   * list). False when it was never asked, cancelled, or a repeat; a few of those are races (CANCEL
   * crossing the block), a stream of them is a flood: ProtocolError past the limit.
   */
  answered(piece: number, begin: number, length: number, now: number): boolean {
    if (!this.requested.delete(this.blockNumber(piece, begin))) {
      this.unrequestedBytes += length;
      if (this.unrequestedBytes > MAX_UNREQUESTED_BYTES) throw new ProtocolError(`more than ${MAX_UNREQUESTED_BYTES} bytes of blocks we did not ask for`);
      return false;
    }
    this.lastBlockAt = now;
    return true;
  }

  /**
   * How many blocks to keep requested from a peer sending `rate` bytes/s: about half a second of
   * it, between {@link MIN_PIPELINE} and `max`, never above what the peer said it accepts (`reqq`).
   */
  depth(rate: number, reqq: number | undefined, max: number): number {
    const want = Math.ceil((rate * PIPELINE_SECONDS) / 16384);
    let d = Math.min(max, Math.max(MIN_PIPELINE, want));
    if (reqq !== undefined && reqq > 0 && reqq < d) d = reqq;
    return d;
  }
}
