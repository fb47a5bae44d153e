/**
 * A pool of equal-sized piece buffers, reused across pieces of a download.
 */
/**
 * Free piece buffers of one size. Buffers are taken when a piece's first block arrives and given
 * back after its write, so the pool holds at most the peak number of pieces in flight (memory
 * flat in the file size). Reuse matters: first touch of fresh memory is slow on this VM.
 */
export class BufferPool {
  private readonly free: Buffer[] = [];
  /** Buffers handed out and not yet returned. */
  out = 0;

  constructor(readonly size: number, private readonly maxFree = 64) {}

  take(): Buffer {
    this.out++;
    return this.free.pop() ?? Buffer.allocUnsafeSlow(this.size);
  }

  give(b: Buffer): void {
    this.out--;
    if (b.length === this.size && this.free.length < this.maxFree) this.free.push(b);
  }

  /** Drops the free buffers (the download is over). */
  drain(): void { this.free.length = 0; }
}
