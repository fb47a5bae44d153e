/**
 * Counts failures per key (a user id, a remote address) over a sliding window and refuses with
 * RATE_LIMITED once a key has `limit` failures in the last `windowMs`. Used to slow down password
 * guessing: each failed login costs the caller a slot, a success clears the user's count.
 *
 * Pure: the clock is injected. Memory is bounded: at most `maxKeys` keys are tracked (the oldest
 * are forgotten first), each holding at most `limit` timestamps.
 */
import { CoterieError } from '../../common/errors.js';

export interface FailureLimiterOptions {
  limit: number;
  windowMs: number;
  now: () => number;
  /** Keys tracked at most (default 100,000). */
  maxKeys?: number;
  /** Names the key in the error message ("user", "address"). */
  what?: string;
}

export class FailureLimiter {
  /** key -> failure times, oldest first; Map order = least recently failed first. */
  private failures = new Map<string, number[]>();

  constructor(private readonly opts: FailureLimiterOptions) {}

  /** Throws RATE_LIMITED if `key` has used up its failures in the current window. */
  check(key: string): void {
    const times = this.recent(key);
    if (times.length >= this.opts.limit) {
      const wait = Math.max(1, Math.ceil((times[0]! + this.opts.windowMs - this.opts.now()) / 1000));
      throw new CoterieError('RATE_LIMITED', `too many failed attempts for this ${this.opts.what ?? 'key'}; try again in ${wait} s`);
    }
  }

  /** Records one failure of `key`. */
  fail(key: string): void {
    const times = this.recent(key);
    times.push(this.opts.now());
    if (times.length > this.opts.limit) times.shift();
    // Re-insert so the Map's order stays "least recently failed first" for eviction.
    this.failures.delete(key);
    this.failures.set(key, times);
    const max = this.opts.maxKeys ?? 100_000;
    while (this.failures.size > max) this.failures.delete(this.failures.keys().next().value!);
  }

  /** Forgets `key`'s failures (after a success). */
  reset(key: string): void {
    this.failures.delete(key);
  }

  /** Number of keys tracked (for tests and status). */
  get size(): number { return this.failures.size; }

  private recent(key: string): number[] {
    const times = this.failures.get(key);
    if (!times) return [];
    const cutoff = this.opts.now() - this.opts.windowMs;
    while (times.length > 0 && times[0]! <= cutoff) times.shift();
    if (times.length === 0) this.failures.delete(key);
    return times;
  }
}
