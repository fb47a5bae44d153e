/**
 * How a file splits into pieces and blocks, and the global block numbering the picker uses:
 * block `b` of piece `p` is `p * blocksPerPiece + b`, so every per-block array is one flat typed
 * array (the last piece leaves a few slots unused).
 */
import type { BlockRequest } from './types.js';

/**
 * Piece and block sizes of one file. Invariants: every piece but the last is `pieceLength` bytes,
 * the last is 1..pieceLength bytes (`totalLength` fits exactly); every block but the last of a
 * piece is `blockSize` bytes.
 */
export class Geometry {
  /** Blocks in every piece but the last. */
  readonly blocksPerPiece: number;
  readonly lastPieceLength: number;
  readonly lastPieceBlocks: number;

  constructor(readonly pieceCount: number, readonly pieceLength: number, readonly totalLength: number,
    readonly blockSize: number) {
    const int = (x: number) => Number.isSafeInteger(x);
    if (!int(pieceCount) || pieceCount < 0 || !int(pieceLength) || pieceLength <= 0 || !int(blockSize) || blockSize <= 0
      || !int(totalLength) || totalLength > pieceCount * pieceLength || totalLength <= (pieceCount - 1) * pieceLength) {
      throw new RangeError(`inconsistent geometry: ${pieceCount} pieces of ${pieceLength}, ${totalLength} bytes, blocks of ${blockSize}`);
    }
    this.blocksPerPiece = Math.ceil(pieceLength / blockSize);
    this.lastPieceLength = pieceCount === 0 ? 0 : totalLength - (pieceCount - 1) * pieceLength;
    this.lastPieceBlocks = Math.ceil(this.lastPieceLength / blockSize);
  }

  /** Number of blocks in `piece`. */
  blocksIn(piece: number): number { return piece === this.pieceCount - 1 ? this.lastPieceBlocks : this.blocksPerPiece; }

  /** Byte length of `piece`. */
  pieceSize(piece: number): number { return piece === this.pieceCount - 1 ? this.lastPieceLength : this.pieceLength; }

  /** The length of the block at `begin` in `piece`, or -1 if that is not a block of this file. */
  blockLength(piece: number, begin: number): number {
    if (piece >>> 0 !== piece || piece >= this.pieceCount || begin >>> 0 !== begin || begin % this.blockSize !== 0) return -1;
    const size = this.pieceSize(piece);
    return begin < size ? Math.min(this.blockSize, size - begin) : -1;
  }

  /** Global index of the block at `begin` of `piece`, or -1 if that is not a block. */
  blockIndex(piece: number, begin: number): number {
    if (this.blockLength(piece, begin) < 0) return -1;
    return piece * this.blocksPerPiece + begin / this.blockSize;
  }

  /** The request for block `b` of `piece` (a new object: callers keep it). */
  request(piece: number, b: number): BlockRequest {
    const begin = b * this.blockSize;
    const end = piece === this.pieceCount - 1 ? this.lastPieceLength : this.pieceLength;
    const left = end - begin;
    return { piece, begin, length: left < this.blockSize ? left : this.blockSize };
  }

  /** The request for global block `g`. */
  requestOf(g: number): BlockRequest {
    const p = Math.floor(g / this.blocksPerPiece);
    return this.request(p, g - p * this.blocksPerPiece);
  }
}
