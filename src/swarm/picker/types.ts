/** Types shared by the picker and its callers (the download's peer sessions). */

/** One BEP 3 REQUEST: `length` bytes at offset `begin` of piece `piece`. */
export interface BlockRequest { piece: number; begin: number; length: number }

/** How a {@link Picker} is set up for one download. */
export interface PickerOptions {
  pieceCount: number;
  pieceLength: number;
  /** File length in bytes: the last piece holds `totalLength - (pieceCount - 1) * pieceLength`. */
  totalLength: number;
  /** Default 16384; the last block of the last piece may be shorter. */
  blockSize?: number;
  /** Default 4: while we have fewer verified pieces than this, new pieces are picked at random. */
  randomFirstPieces?: number;
  /** Default 2: the most peers one block is requested from at once, in endgame only. */
  endgameDuplicates?: number;
  /** Uniform in [0, 1); default Math.random. Injected so tests and simulations are reproducible. */
  rng?: () => number;
}

/** The data path's small integer id for one peer session; must be >= 0 (the picker uses -1 for "none"). */
export type PeerKey = number;

/** Where a piece stands in the download. */
export type PiecePhase =
  /** No block requested or received: a candidate for a new pick. */
  | 'missing'
  /** Some blocks requested or received, not all received. */
  | 'partial'
  /** Every block received, waiting for its hash check: never picked again unless it fails. */
  | 'received'
  | 'verified';
