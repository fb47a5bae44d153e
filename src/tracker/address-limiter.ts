/**
 * Token buckets per remote address: how many requests (or new connections) one IP may make per
 * second, with a burst. The RPC server asks {@link AddressLimiter.take} before it handles each
 * request; a positive answer is how long to wait, and the server waits rather than refuse, so an
 * address that sends too fast is slowed down (its socket stops being read once its queue fills)
 * while an honest client, far below the rate, never notices.
 *
 * Pure: the clock is passed in. Memory is bounded: at most `maxAddresses` buckets; when full,
 * buckets that have refilled completely are dropped first (a full bucket is the same as a fresh
 * one, so forgetting it changes nothing), then the least recently used ones.
 */

export interface AddressLimiterOptions {
  /** Tokens added per second. */
  ratePerSecond: number;
  /** Most tokens a bucket holds (the burst an idle address may spend at once). */
  burst: number;
  /** Buckets kept at most (default 10,000). */
  maxAddresses?: number;
}

interface Bucket { tokens: number; last: number }

export class AddressLimiter {
  /** Map order = least recently used first. */
  private readonly buckets = new Map<string, Bucket>();
  private readonly max: number;

  constructor(private readonly opts: AddressLimiterOptions) {
    if (!(opts.ratePerSecond > 0) || !(opts.burst >= 1)) throw new RangeError('rate and burst must be positive');
    this.max = opts.maxAddresses ?? 10_000;
  }

  /**
   * Takes one token for `addr` at time `now` (ms). Returns 0 if it was available, otherwise the
   * milliseconds until one will be (the token is then taken in advance: the caller waits that long
   * and goes ahead, so waiting callers queue up in order instead of polling).
   */
  take(addr: string, now: number): number {
    const b = this.bucket(addr, now);
    b.tokens -= 1;
    return b.tokens >= 0 ? 0 : Math.ceil((-b.tokens * 1000) / this.opts.ratePerSecond);
  }

  /** Whether `addr` may go ahead right now without going into debt; takes a token if so. */
  tryTake(addr: string, now: number): boolean {
    const b = this.bucket(addr, now);
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  /** Addresses tracked (for tests and status). */
  get size(): number { return this.buckets.size; }

  private bucket(addr: string, now: number): Bucket {
    let b = this.buckets.get(addr);
    if (b === undefined) {
      b = { tokens: this.opts.burst, last: now };
      if (this.buckets.size >= this.max) this.evict(now);
    } else {
      this.buckets.delete(addr);
      const dt = now - b.last;
      if (dt > 0) {
        b.tokens = Math.min(this.opts.burst, b.tokens + (dt * this.opts.ratePerSecond) / 1000);
        b.last = now;
      }
    }
    this.buckets.set(addr, b);
    return b;
  }

  private evict(now: number): void {
    for (const [k, b] of this.buckets) {
      if (b.tokens + ((now - b.last) * this.opts.ratePerSecond) / 1000 >= this.opts.burst) this.buckets.delete(k);
    }
    while (this.buckets.size >= this.max) this.buckets.delete(this.buckets.keys().next().value!);
  }
}
