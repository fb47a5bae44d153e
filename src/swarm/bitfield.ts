/**
 * A fixed-length set of piece indices in BitTorrent wire order (BEP 3): piece 0 is the high bit of
 * byte 0, piece 8 the high bit of byte 1, and so on. The spare bits after the last piece must be
 * zero on the wire; a peer that sets them is broken or hostile, so {@link Bitfield.fromWire} refuses
 * them with a ProtocolError (grounds for disconnecting).
 */
import { ProtocolError } from '../common/errors.js';

/** Number of set bits in each byte value: popcount of a whole bitfield is then one pass of lookups. */
const POPCOUNT = new Uint8Array(256);
for (let i = 1; i < 256; i++) POPCOUNT[i] = (i & 1) + POPCOUNT[i >> 1]!;

/** Bits set in one byte (0..255). */
export function popcountByte(b: number): number { return POPCOUNT[b & 0xff]!; }

/** Bits set in `bytes` (any length). */
export function popcount(bytes: Uint8Array): number {
  let n = 0;
  for (let i = 0; i < bytes.length; i++) n += POPCOUNT[bytes[i]!]!;
  return n;
}

/** Why `bytes` is not a valid bitfield for `length` pieces, or null if it is. */
function bitfieldProblem(length: number, bytes: Uint8Array): string | null {
  const want = (length + 7) >>> 3;
  if (bytes.length !== want) return `bitfield of ${bytes.length} bytes for ${length} pieces (want ${want})`;
  const spare = want * 8 - length;
  // The mask selects the low `spare` bits of the last byte, which lie past the last piece.
  if (spare > 0 && (bytes[want - 1]! & ((1 << spare) - 1)) !== 0) return 'bitfield has spare bits set';
  return null;
}

/**
 * The pieces a peer (or we) have. Invariants: the byte array is exactly ceil(length / 8) bytes,
 * the spare bits are always zero, and `count` equals the number of set bits (kept incrementally,
 * so reading it is O(1)). Indices outside [0, length) throw a RangeError: callers validate remote
 * input (HAVE messages) before it reaches here.
 */
export class Bitfield {
  private readonly buf: Uint8Array;
  private n: number;

  /** An empty bitfield of `length` pieces, or a copy of `bytes` (RangeError if invalid). */
  constructor(readonly length: number, bytes?: Uint8Array) {
    if (!Number.isInteger(length) || length < 0) throw new RangeError(`bad bitfield length ${length}`);
    if (bytes === undefined) {
      this.buf = new Uint8Array((length + 7) >>> 3);
      this.n = 0;
    } else {
      const problem = bitfieldProblem(length, bytes);
      if (problem !== null) throw new RangeError(problem);
      this.buf = new Uint8Array(bytes); // a copy, whatever view `bytes` is
      this.n = popcount(this.buf);
    }
  }

  /** A bitfield received from a peer: ProtocolError if its size or spare bits are wrong. */
  static fromWire(length: number, bytes: Uint8Array): Bitfield {
    const problem = bitfieldProblem(length, bytes);
    if (problem !== null) throw new ProtocolError(problem);
    return new Bitfield(length, bytes);
  }

  /** A bitfield with every piece set. */
  static allSet(length: number): Bitfield {
    const b = new Bitfield(length);
    b.buf.fill(0xff);
    const spare = b.buf.length * 8 - length;
    if (spare > 0) b.buf[b.buf.length - 1] = (0xff << spare) & 0xff;
    b.n = length;
    return b;
  }

  private check(i: number): void {
    // `i >>> 0 !== i` also rejects fractions and negatives in one comparison.
    if (i >>> 0 !== i || i >= this.length) throw new RangeError(`piece ${i} out of range [0, ${this.length})`);
  }

  get(i: number): boolean {
    this.check(i);
    return (this.buf[i >>> 3]! & (0x80 >>> (i & 7))) !== 0;
  }

  set(i: number): void {
    this.check(i);
    const m = 0x80 >>> (i & 7);
    const k = i >>> 3;
    const v = this.buf[k]!;
    if ((v & m) === 0) { this.buf[k] = v | m; this.n++; }
  }

  clear(i: number): void {
    this.check(i);
    const m = 0x80 >>> (i & 7);
    const k = i >>> 3;
    const v = this.buf[k]!;
    if ((v & m) !== 0) { this.buf[k] = v & ~m; this.n--; }
  }

  /** Number of pieces set; O(1). */
  get count(): number { return this.n; }

  /** Every piece is set (true for a zero-length bitfield). */
  get full(): boolean { return this.n === this.length; }

  /** The wire bytes (a copy the caller may keep or send). */
  toBuffer(): Buffer { return Buffer.from(this.buf); }

  /** The internal bytes, no copy: for fast scans. Do not mutate. */
  bytes(): Uint8Array { return this.buf; }

  /** An independent copy. */
  clone(): Bitfield { return new Bitfield(this.length, this.buf); }

  /** Indices of set pieces, ascending. */
  *[Symbol.iterator](): IterableIterator<number> {
    const buf = this.buf;
    for (let k = 0; k < buf.length; k++) {
      let m = buf[k]!;
      while (m !== 0) {
        // clz32 of a byte is 24..31; minus 24 gives the position of its highest set bit, which in
        // wire order is the lowest piece index in that byte.
        const off = Math.clz32(m) - 24;
        yield k * 8 + off;
        m &= ~(0x80 >>> off);
      }
    }
  }
}
