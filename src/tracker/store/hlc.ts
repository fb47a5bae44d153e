/**
 * Hybrid logical clock (see docs/replicated-state.md, "Clocks and stamps").
 *
 * An HLC value is `{wall, logical}`: `wall` follows the physical clock (ms since the epoch) but
 * never goes backwards, and `logical` orders events within one millisecond. Encoded as the
 * fixed-width string `wall(13 digits)-logical(6 digits)`, so that string order is time order and
 * the encoded form can be compared, stored and indexed as plain text.
 *
 * Pure: the physical clock is injected, nothing here reads the system time by itself.
 */
import { CoterieError } from '../../common/errors.js';

/** A remote stamp further ahead of our physical clock than this is refused (CLOCK_SKEW). */
export const MAX_SKEW_MS = 60_000;
/** Largest logical counter the 6-digit encoding holds; past it the wall part is bumped by 1 ms. */
export const MAX_LOGICAL = 999_999;
/** Largest wall value the 13-digit encoding holds (year 2286). */
const MAX_WALL = 9_999_999_999_999;

/** A decoded HLC value. Invariant: integers, 0 <= wall <= MAX_WALL, 0 <= logical <= MAX_LOGICAL. */
export interface Hlc { wall: number; logical: number }

/** Matches an encoded HLC string exactly. */
export const HLC_RE = /^\d{13}-\d{6}$/;

export function encodeHlc(h: Hlc): string {
  if (!Number.isInteger(h.wall) || h.wall < 0 || h.wall > MAX_WALL
    || !Number.isInteger(h.logical) || h.logical < 0 || h.logical > MAX_LOGICAL) {
    throw new CoterieError('BAD_REQUEST', `HLC out of range: ${h.wall}/${h.logical}`);
  }
  return `${String(h.wall).padStart(13, '0')}-${String(h.logical).padStart(6, '0')}`;
}

/** Decodes an encoded HLC; throws BAD_REQUEST on anything that is not exactly that format. */
export function decodeHlc(s: string): Hlc {
  if (typeof s !== 'string' || !HLC_RE.test(s)) throw new CoterieError('BAD_REQUEST', 'malformed HLC stamp');
  return { wall: Number(s.slice(0, 13)), logical: Number(s.slice(14)) };
}

export function compareHlc(a: Hlc, b: Hlc): number {
  return a.wall !== b.wall ? (a.wall < b.wall ? -1 : 1) : a.logical - b.logical;
}

/**
 * The clock of one tracker. `now()` returns strictly increasing values; `observe()` moves the
 * clock past a remote value so that anything stamped afterwards sorts after what was received.
 */
export class HybridClock {
  private last: Hlc = { wall: 0, logical: 0 };

  /** @param physical milliseconds since the epoch (inject a fake in tests). */
  constructor(private readonly physical: () => number = Date.now) {}

  /** A fresh value, strictly greater than every value this clock returned or observed before. */
  now(): string {
    const pt = Math.floor(this.physical());
    if (pt > this.last.wall) this.last = { wall: pt, logical: 0 };
    else this.bump();
    return encodeHlc(this.last);
  }

  /**
   * Advances past a remote value. Refuses (CLOCK_SKEW, clock unchanged) a value more than
   * MAX_SKEW_MS ahead of our physical clock: one tracker with a clock far in the future would
   * otherwise drag every clock forward with it, and its writes would win every LWW race.
   */
  observe(remote: string): void {
    const r = decodeHlc(remote);
    const pt = Math.floor(this.physical());
    if (r.wall > pt + MAX_SKEW_MS) {
      throw new CoterieError('CLOCK_SKEW', `remote clock is ${r.wall - pt} ms ahead of ours (limit ${MAX_SKEW_MS} ms)`);
    }
    this.advanceTo(r);
  }

  /**
   * Advances past a value without the skew check: for values this tracker wrote itself (its own
   * log on restart), which must never be re-issued even if the physical clock went backwards.
   */
  restore(value: string): void {
    this.advanceTo(decodeHlc(value));
  }

  /** The last value issued or observed (encoded). */
  peek(): string { return encodeHlc(this.last); }

  private advanceTo(r: Hlc): void {
    if (compareHlc(r, this.last) > 0) this.last = { wall: r.wall, logical: r.logical };
  }

  private bump(): void {
    if (this.last.logical < MAX_LOGICAL) this.last = { wall: this.last.wall, logical: this.last.logical + 1 };
    // Counter exhausted within one ms: borrow the next millisecond rather than wrap (wrapping
    // would break monotonicity). Physical time catches up within a millisecond.
    else this.last = { wall: this.last.wall + 1, logical: 0 };
  }
}

/**
 * A stamp: when (HLC) and where (origin tracker id) a change was made. Totally ordered by hlc,
 * then origin, so that every tracker resolves a race the same way.
 */
export interface Stamp { hlc: string; origin: string }

/** Origin ids: 16 lower-case hex characters, random per data dir. */
export const ORIGIN_RE = /^[0-9a-f]{16}$/;

export function compareStamps(a: Stamp, b: Stamp): number {
  if (a.hlc !== b.hlc) return a.hlc < b.hlc ? -1 : 1;
  if (a.origin !== b.origin) return a.origin < b.origin ? -1 : 1;
  return 0;
}

export function stampEquals(a: Stamp, b: Stamp): boolean {
  return a.hlc === b.hlc && a.origin === b.origin;
}
