/**
 * Connects the tracker's presence table (src/tracker/presence.ts) to gossip.
 *
 * Outbound: `pollLocal` diffs the local leases against what was last gossiped and stamps each
 * change with a `gen` (monotonic per client on this holder, seeded from the wall clock so that a
 * restarted holder's gens still exceed its old ones); a lease that ended since the last poll is
 * sent once as a removal (`ttlMs` 0), so a logout or a dropped connection is seen everywhere at
 * once instead of after the lease runs out.
 *
 * Inbound: copies are kept per holder in {@link PresenceCopies} (ordering, tombstones); for every
 * client they change, the copy that lasts longest is what the presence table holds as that
 * client's remote lease (or it is dropped when no copy is left). Get_peers and list_files read
 * only the presence table, so they see clients online via any tracker.
 */
import { PresenceCopies } from './presence-copies.js';
import type { Clock, PresencePort } from './types.js';
import type { PresenceEntry } from './wire.js';

/** A lease as the presence table gossips it (see presence.ts `GossipEntry`). */
export interface TableEntry {
  user: string; clientId: string; peer: string;
  shares: { group: string; infoHash: string }[];
  ttlMs: number;
  origin: string;
}

/** What the bridge needs of the presence table. */
export interface PresenceTable {
  /** Live leases this tracker holds, with their remaining lease. */
  exportLocal(): TableEntry[];
  /** Takes other trackers' leases (a local lease of the same client wins). */
  importRemote(entries: readonly TableEntry[]): void;
  /** Forgets the remote lease of a client (a local lease is kept). */
  dropRemote(user: string, clientId: string): void;
}

/** Renewals that move the expiry by less than this are not worth a gossip message. */
const RENEWAL_SLACK_MS = 250;

interface Sent { gen: number; expiresAt: number; sig: string; entry: PresenceEntry }

export class PresenceBridge implements PresencePort {
  readonly copies: PresenceCopies;
  private readonly sent = new Map<string, Sent>();

  constructor(private readonly table: PresenceTable, private readonly origin: string, private readonly clock: Clock) {
    this.copies = new PresenceCopies(origin, clock);
  }

  localEntries(): PresenceEntry[] {
    const now = this.clock.now();
    return this.table.exportLocal().map((e) => {
      const prev = this.sent.get(key(e.user, e.clientId));
      return this.wire(e, prev ? prev.gen : now);
    });
  }

  remoteEntries(): PresenceEntry[] {
    return this.copies.entries();
  }

  pollLocal(): PresenceEntry[] {
    const now = this.clock.now();
    const out: PresenceEntry[] = [];
    const seen = new Set<string>();
    for (const e of this.table.exportLocal()) {
      const k = key(e.user, e.clientId);
      seen.add(k);
      const expiresAt = now + e.ttlMs;
      const sig = `${e.peer}\u0000${JSON.stringify(e.shares)}`;
      const prev = this.sent.get(k);
      if (prev && prev.sig === sig && expiresAt < prev.expiresAt + RENEWAL_SLACK_MS) continue;
      const gen = Math.max(now, (prev?.gen ?? 0) + 1);
      const w = this.wire(e, gen);
      this.sent.set(k, { gen, expiresAt, sig, entry: w });
      out.push(w);
    }
    for (const [k, prev] of this.sent) {
      if (seen.has(k)) continue;
      this.sent.delete(k);
      out.push({ ...prev.entry, shares: [], gen: Math.max(now, prev.gen + 1), ttlMs: 0 });
    }
    return out;
  }

  applyRemote(entries: PresenceEntry[]): PresenceEntry[] {
    const changed = this.copies.apply(entries);
    const done = new Set<string>();
    for (const e of changed) {
      const k = key(e.user, e.clientId);
      if (done.has(k)) continue;
      done.add(k);
      const best = this.copies.best(e.user, e.clientId);
      if (best) {
        const b = best.entry;
        this.table.importRemote([{ user: b.user, clientId: b.clientId, peer: b.peer, shares: b.shares, ttlMs: best.remainingMs, origin: b.holder }]);
      } else {
        this.table.dropRemote(e.user, e.clientId);
      }
    }
    return changed;
  }

  /** Forgets expired copies (call now and then). */
  sweep(): void { this.copies.sweep(); }

  private wire(e: TableEntry, gen: number): PresenceEntry {
    return { holder: this.origin, user: e.user, clientId: e.clientId, peer: e.peer, shares: e.shares, gen, ttlMs: Math.max(1, Math.round(e.ttlMs)) };
  }
}

function key(user: string, clientId: string): string {
  return `${user}\u0000${clientId}`;
}
