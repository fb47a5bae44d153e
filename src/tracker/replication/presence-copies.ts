/**
 * Soft state: the copies of other trackers' presence leases that gossip brought here.
 *
 * A copy is keyed by (holder, user, clientId): a client that fails over from tracker A to B has a
 * lease on both for a while, and A dropping its lease must not hide the client that B now holds.
 * A copy lives `ttlMs` after it arrived (the remaining lease at its holder), so a copy expires a
 * few seconds after renewals stop, whether the client or its holder went silent. `gen` orders the
 * updates of one copy: an older one that took a longer path is ignored, and a removal (`ttlMs` 0)
 * is remembered briefly as a tombstone so a stale renewal cannot bring the copy back.
 *
 * Never written to disk. Pure apart from the injected clock.
 */
import type { Clock } from './types.js';
import type { PresenceEntry } from './wire.js';

/** How long a removal is remembered (longer than any lease, so a stale renewal cannot resurrect). */
const TOMBSTONE_MS = 60_000;
/** Most copies held; beyond it new holders' entries are refused (bounded memory against a flood). */
export const MAX_COPIES = 500_000;

interface Copy { e: PresenceEntry; expiresAt: number; gone: boolean }

export class PresenceCopies {
  /** (user, clientId) -> holder -> copy. */
  private readonly copies = new Map<string, Map<string, Copy>>();
  private count = 0;

  constructor(private readonly selfOrigin: string, private readonly clock: Clock) {}

  /**
   * Merges gossiped entries; returns those that changed something (to relay further). Entries this
   * tracker holds itself are ignored: its own table is the truth about them.
   */
  apply(entries: readonly PresenceEntry[]): PresenceEntry[] {
    const now = this.clock.now();
    const changed: PresenceEntry[] = [];
    for (const e of entries) {
      if (e.holder === this.selfOrigin) continue;
      const k = clientKey(e.user, e.clientId);
      let byHolder = this.copies.get(k);
      const cur = byHolder?.get(e.holder);
      if (cur && cur.e.gen >= e.gen && cur.expiresAt > now) continue;
      if (!cur && this.count >= MAX_COPIES) { this.sweep(); if (this.count >= MAX_COPIES) continue; }
      if (!byHolder) { byHolder = new Map(); this.copies.set(k, byHolder); }
      if (!cur) this.count++;
      if (e.ttlMs === 0) byHolder.set(e.holder, { e, expiresAt: now + TOMBSTONE_MS, gone: true });
      else byHolder.set(e.holder, { e, expiresAt: now + e.ttlMs, gone: false });
      changed.push(e);
    }
    return changed;
  }

  /** The live copies of a client's presence (one per holder), newest first. */
  get(user: string, clientId: string): PresenceEntry[] {
    const now = this.clock.now();
    const out: PresenceEntry[] = [];
    for (const c of this.copies.get(clientKey(user, clientId))?.values() ?? []) {
      if (!c.gone && c.expiresAt > now) out.push(c.e);
    }
    return out.sort((a, b) => b.gen - a.gen);
  }

  /** The live copy of a client that lasts longest, with its remaining lease. */
  best(user: string, clientId: string): { entry: PresenceEntry; remainingMs: number } | undefined {
    const now = this.clock.now();
    let best: Copy | undefined;
    for (const c of this.copies.get(clientKey(user, clientId))?.values() ?? []) {
      if (!c.gone && c.expiresAt > now && (!best || c.expiresAt > best.expiresAt)) best = c;
    }
    return best ? { entry: best.e, remainingMs: best.expiresAt - now } : undefined;
  }

  isOnline(user: string, clientId: string): boolean {
    return this.get(user, clientId).length > 0;
  }

  /** Every live copy and tombstone, with its remaining time, for relaying to a new link. */
  entries(): PresenceEntry[] {
    const now = this.clock.now();
    const out: PresenceEntry[] = [];
    for (const byHolder of this.copies.values()) {
      for (const c of byHolder.values()) {
        if (c.expiresAt <= now) continue;
        out.push({ ...c.e, ttlMs: c.gone ? 0 : Math.min(c.e.ttlMs, c.expiresAt - now) });
      }
    }
    return out;
  }

  /** Live copies (not tombstones), e.g. to answer "who is online sharing X". */
  live(): PresenceEntry[] {
    const now = this.clock.now();
    const out: PresenceEntry[] = [];
    for (const byHolder of this.copies.values()) {
      for (const c of byHolder.values()) if (!c.gone && c.expiresAt > now) out.push(c.e);
    }
    return out;
  }

  /** Forgets expired copies and tombstones. */
  sweep(): void {
    const now = this.clock.now();
    for (const [k, byHolder] of this.copies) {
      for (const [h, c] of byHolder) if (c.expiresAt <= now) { byHolder.delete(h); this.count--; }
      if (byHolder.size === 0) this.copies.delete(k);
    }
  }

  /** Copies and tombstones held. */
  get size(): number { return this.count; }
}

function clientKey(user: string, clientId: string): string {
  return `${user}\u0000${clientId}`;
}
