/**
 * Applies the {@link Choker}'s decisions to the sessions of one torrent (a seed or a download):
 * runs a round every 10 s and a quick one when a peer's interest changes or it leaves, and sends
 * CHOKE/UNCHOKE for whatever changed.
 *
 * Slots: 8 regular + 1 optimistic. On loopback benchmarks up to 8 downloaders all get a slot at
 * once, so the choker never limits throughput there; on real links 8 uploads per file is still
 * within what BitTorrent clients use (libtorrent's default is automatic, 4 to 8 typically).
 */
import { Choker } from './choker.js';
import type { PeerSession } from './session.js';

export const UNCHOKE_SLOTS = 8;
export const ROUND_MS = 10_000;

/**
 * Invariant: after each round exactly the sessions the choker chose are unchoked (active ones);
 * a session that leaves frees its slot at once.
 */
export class Unchoker {
  private readonly choker: Choker;
  readonly sessions = new Set<PeerSession>();
  private lastRound = 0;

  /**
   * `rateOf` ranks peers: what we upload to them for a seed, what they send us for a download
   * (tit-for-tat). `snubbed` marks peers that stopped sending while unchoked.
   */
  constructor(
    private readonly rateOf: (s: PeerSession) => number,
    private readonly snubbed: (s: PeerSession) => boolean = () => false,
    opts: { slots?: number; rng?: () => number } = {},
  ) {
    this.choker = new Choker({ slots: opts.slots ?? UNCHOKE_SLOTS, optimisticEvery: 3, ...(opts.rng ? { rng: opts.rng } : {}) });
  }

  add(s: PeerSession): void { this.sessions.add(s); }

  remove(s: PeerSession): void {
    if (!this.sessions.delete(s)) return;
    // A slot may have freed up: let a waiting peer in now rather than at the next round.
    if (!s.amChoking || s.peerInterested) this.round(false);
  }

  /** Interest changed: unchoke or choke at once (does not age the optimistic slot). */
  interestChanged(): void { this.round(false); }

  /** Periodic rounds; call every second or so with the current time. */
  tick(now: number): void {
    if (now - this.lastRound >= ROUND_MS) {
      this.lastRound = now;
      this.round(true);
    }
  }

  round(newRound: boolean): void {
    const peers = [];
    for (const s of this.sessions) {
      if (s.state !== 'active') continue;
      peers.push({ key: s.key, interested: s.peerInterested, rate: this.rateOf(s), snubbed: this.snubbed(s) });
    }
    const unchoke = this.choker.decide(peers, newRound);
    for (const s of this.sessions) {
      if (s.state !== 'active') continue;
      if (unchoke.has(s.key)) s.unchoke();
      else s.choke();
    }
  }
}
