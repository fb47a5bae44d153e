/**
 * The choker: which interested peers we upload to. Pure (no timers, no I/O, rng injected); the
 * peer server calls it every 10 seconds and when peers come and go, then sends CHOKE / UNCHOKE for
 * whatever changed.
 *
 * Strategy (BEP 3's tit-for-tat, as in the reference client): the `slots` interested peers with the
 * best rate get regular slots (rate is what we upload to them when seeding, so bandwidth goes where
 * it flows best, and what they send us when leeching, so we reward who gives); one more interested
 * peer gets the optimistic slot, chosen at random and kept for `optimisticEvery` rounds, so a new
 * peer with no rate yet gets a chance to show what it can do. Snubbed peers (unchoked but sending
 * nothing for a while) never get a regular slot, only the optimistic one.
 */
import type { PeerKey } from './picker/types.js';

/** What the choker needs to know of one connected peer, as of this round. */
export interface ChokerPeer {
  key: PeerKey;
  /** The peer told us it is interested: only interested peers are ever unchoked. */
  interested: boolean;
  /** Bytes/s: upload rate to it when seeding, download rate from it when leeching. */
  rate: number;
  /** It has sent us nothing for a while although unchoked (leeching only). */
  snubbed?: boolean;
}

/** Setup of a {@link Choker}. */
export interface ChokerOptions {
  /** Regular unchoke slots; default 4. */
  slots?: number;
  /** Rounds an optimistic unchoke lasts before it rotates; default 3 (30 s at 10 s rounds). */
  optimisticEvery?: number;
  /** Uniform in [0, 1); default Math.random. */
  rng?: () => number;
}

/**
 * Decides the unchoked set. Invariants of each answer: only interested peers; at most `slots`
 * regular peers, ranked by rate; plus at most one optimistic peer not among the regular ones.
 * State kept between rounds: the current optimistic peer, its age, and the last regular peers
 * (rate ties go to peers already holding a regular slot, so equal peers do not churn).
 */
export class Choker {
  private readonly slots: number;
  private readonly every: number;
  private readonly rng: () => number;
  private optimistic: PeerKey | null = null;
  private optimisticAge = 0;
  /** Regular (not optimistic) peers of the last answer. */
  private lastRegular = new Set<PeerKey>();

  constructor(opts: ChokerOptions = {}) {
    this.slots = Math.max(0, Math.floor(opts.slots ?? 4));
    this.every = Math.max(1, Math.floor(opts.optimisticEvery ?? 3));
    this.rng = opts.rng ?? Math.random;
  }

  /** The optimistic peer of the last answer, or null. */
  get optimisticPeer(): PeerKey | null { return this.optimistic; }

  /**
   * The peers to unchoke. `newRound` is true for the periodic call (it ages the optimistic
   * unchoke) and false for a call made because peers came or went, which must not speed up the
   * rotation.
   */
  decide(peers: ChokerPeer[], newRound = true): Set<PeerKey> {
    // One random number per peer, drawn before sorting, so the comparator is consistent.
    const ranked = peers.filter((p) => p.interested)
      .map((p) => ({ p, tie: this.rng(), was: this.lastRegular.has(p.key) }));
    ranked.sort((a, b) =>
      Number(a.p.snubbed === true) - Number(b.p.snubbed === true)
      || b.p.rate - a.p.rate
      || Number(b.was) - Number(a.was)
      || a.tie - b.tie);
    const out = new Set<PeerKey>();
    for (const r of ranked) {
      if (out.size >= this.slots || r.p.snubbed === true) break;
      out.add(r.p.key);
    }

    this.lastRegular = new Set(out);
    if (newRound) this.optimisticAge++;
    const others = ranked.filter((r) => !out.has(r.p.key));
    const current = this.optimistic;
    const valid = current !== null && others.some((r) => r.p.key === current);
    if (!valid || this.optimisticAge >= this.every) {
      // Rotate to someone else when there is anyone else; the current one may keep the slot
      // only if it is the sole candidate.
      const pool = others.length > 1 && valid ? others.filter((r) => r.p.key !== current) : others;
      const pick = pool.length === 0 ? null : pool[Math.min(pool.length - 1, Math.floor(this.rng() * pool.length))]!.p.key;
      this.optimisticAge = 0;
      this.optimistic = pick;
    }
    if (this.optimistic !== null) out.add(this.optimistic);
    return out;
  }
}
