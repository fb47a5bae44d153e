/**
 * Rate measurement and limiting, with the clock injected so tests run on virtual time.
 *
 * {@link TokenBucket} is the global upload/download limit: the seeder's write path reserves the
 * bytes of a run of blocks before writing it, the downloader's request path reserves the bytes it
 * is about to request. Reservations may overdraw the bucket (a single run can be larger than the
 * burst), and the caller then waits the returned delay before its next reservation: the long-run
 * rate is exact and no large run is ever starved.
 *
 * {@link RateMeter} measures bytes per second over a short sliding window (per peer and per download).
 */

/** Milliseconds, monotonic. */
export type Clock = () => number;

export const monotonicMs: Clock = () => performance.now();

/**
 * A token bucket of `rate` bytes per second holding at most `burst` bytes. Invariants: tokens
 * never exceed `burst`; they may go negative (debt) after a reservation, and are refilled at
 * `rate` per second from the clock.
 */
export class TokenBucket {
  private tokens: number;
  private last: number;
  readonly burst: number;

  constructor(readonly rate: number, private readonly now: Clock = monotonicMs, burst?: number) {
    if (!(rate > 0) || !Number.isFinite(rate)) throw new RangeError(`rate must be a positive number of bytes per second, got ${rate}`);
    // A quarter of a second of traffic, at least 64 KiB: enough for a few coalesced block runs
    // without letting a burst exceed the configured rate by much over any one second.
    this.burst = burst ?? Math.max(64 * 1024, rate / 4);
    this.tokens = this.burst;
    this.last = now();
  }

  private refill(): void {
    const t = this.now();
    const dt = t - this.last;
    if (dt > 0) {
      this.tokens = Math.min(this.burst, this.tokens + (dt * this.rate) / 1000);
      this.last = t;
    }
  }

  /** Milliseconds until the bucket is out of debt (0 = a reservation may be made now). */
  delay(): number {
    this.refill();
    return this.tokens >= 0 ? 0 : Math.ceil((-this.tokens * 1000) / this.rate);
  }

  /**
   * Takes `bytes` tokens, going into debt if needed. Returns the milliseconds the caller must
   * wait before its next reservation (0 if the bucket still has tokens).
   */
  reserve(bytes: number): number {
    this.refill();
    this.tokens -= bytes;
    return this.tokens >= 0 ? 0 : Math.ceil((-this.tokens * 1000) / this.rate);
  }

  /** Tokens now (negative = debt), for tests and status. */
  get available(): number { this.refill(); return this.tokens; }
}

/** A bucket for a limit that may be absent: `undefined` or 0 means unlimited. */
export function bucketFor(rate: number | undefined, now: Clock = monotonicMs): TokenBucket | null {
  return rate !== undefined && rate > 0 ? new TokenBucket(rate, now) : null;
}

const SLOT_MS = 250;
const SLOTS = 8; // 2 s window: smooth enough for a pipeline depth, quick to notice a stall

/**
 * Bytes per second over the last ~2 s, in 250 ms slots. O(1) per `add`; no timers.
 */
export class RateMeter {
  private readonly slots = new Float64Array(SLOTS);
  private slotAt: number; // start time of the current slot
  private cur = 0;
  private readonly started: number;
  /** Bytes counted since creation. */
  total = 0;

  constructor(private readonly now: Clock = monotonicMs) {
    this.started = now();
    this.slotAt = this.started;
  }

  private advance(t: number): void {
    let steps = Math.floor((t - this.slotAt) / SLOT_MS);
    if (steps <= 0) return;
    if (steps > SLOTS) steps = SLOTS;
    for (let i = 0; i < steps; i++) {
      this.cur = (this.cur + 1) % SLOTS;
      this.slots[this.cur] = 0;
    }
    this.slotAt += Math.floor((t - this.slotAt) / SLOT_MS) * SLOT_MS;
  }

  /** Counts `bytes` at time `t` (pass a time already read to save a clock call per block). */
  add(bytes: number, t: number = this.now()): void {
    this.advance(t);
    this.slots[this.cur] = this.slots[this.cur]! + bytes;
    this.total += bytes;
  }

  /** Bytes per second over the window (a younger meter divides by its age, at least one slot). */
  rate(t: number = this.now()): number {
    this.advance(t);
    let sum = 0;
    for (let i = 0; i < SLOTS; i++) sum += this.slots[i]!;
    // The window is the full older slots plus the elapsed part of the current one.
    const span = Math.max(SLOT_MS, Math.min(t - this.started, (SLOTS - 1) * SLOT_MS + (t - this.slotAt)));
    return (sum * 1000) / span;
  }
}
