/**
 * Frame accumulation between socket reads and the {@link WireDecoder}. One reused buffer per
 * connection: the bytes of an incomplete frame are moved to its front and the next read lands
 * right after them, so frames split across reads are parsed in place, without copying block data
 * (the socket's `onread` option reads straight into {@link readTarget}). PERF-NOTES: a new buffer
 * per read (`'data'` events) cost about one extra CPU-second per GiB on this machine.
 */
import type { WireDecoder } from './codec.js';

/** Default size: reads on loopback come in 64-700 KiB; 1 MiB keeps callbacks few (PERF-NOTES: 1-4 MiB). */
export const READ_BUFFER_SIZE = 1024 * 1024;

/** Free read buffers kept for the next connection: first touch of fresh memory is slow on this VM. */
const pool: Buffer[] = [];
const POOL_MAX = 16;

function takeBuffer(size: number): Buffer {
  if (size === READ_BUFFER_SIZE) {
    const b = pool.pop();
    if (b) return b;
  }
  return Buffer.allocUnsafeSlow(size);
}

/**
 * Invariant: `buf[0, pending)` holds the start of one incomplete frame (fewer bytes than a
 * capped frame), never anything the decoder has already seen complete.
 */
export class ReadBuffer {
  private buf: Buffer | null;
  private pending = 0;

  constructor(private readonly decoder: WireDecoder, size = READ_BUFFER_SIZE) {
    this.buf = takeBuffer(size);
  }

  /** Bytes held of an incomplete frame. */
  get held(): number { return this.pending; }

  /** Where the next read should land (a view after the held bytes). */
  readTarget(): Buffer {
    const b = this.buf;
    if (b === null) return Buffer.alloc(0);
    return b.subarray(this.pending);
  }

  /** `n` bytes were read into the last {@link readTarget}: parse every complete frame. */
  commit(n: number): void {
    const b = this.buf;
    if (b === null) return;
    this.consume(b, this.pending + n);
  }

  /**
   * Feeds a chunk that lives elsewhere (a `'data'` event, a test). When nothing is held the chunk
   * is parsed where it is and only its incomplete tail is copied.
   */
  push(chunk: Buffer): void {
    let off = 0;
    while (off < chunk.length && this.buf !== null) {
      const b = this.buf;
      if (this.pending === 0) {
        const used = this.decoder.feed(chunk, off, chunk.length);
        if (this.decoder.isStopped || this.buf === null) return;
        const rest = chunk.length - used;
        if (rest > b.length) throw new RangeError('read buffer smaller than a frame');
        chunk.copy(b, 0, used);
        this.pending = rest;
        return;
      }
      const n = Math.min(b.length - this.pending, chunk.length - off);
      chunk.copy(b, this.pending, off, off + n);
      off += n;
      this.consume(b, this.pending + n);
    }
  }

  private consume(b: Buffer, end: number): void {
    const used = this.decoder.feed(b, 0, end);
    if (this.decoder.isStopped) { this.pending = 0; return; }
    const rest = end - used;
    // An incomplete frame is moved to the front; it is at most one capped frame (a few KiB to
    // 16 KiB), so this copy is small next to the read it came with.
    if (rest > 0 && used > 0) b.copyWithin(0, used, end);
    this.pending = rest;
    if (rest === b.length) throw new RangeError('read buffer smaller than a frame');
  }

  /** Returns the buffer to the pool; the ReadBuffer is unusable afterwards. */
  release(): void {
    const b = this.buf;
    this.buf = null;
    this.pending = 0;
    if (b !== null && b.length === READ_BUFFER_SIZE && pool.length < POOL_MAX) pool.push(b);
  }
}
