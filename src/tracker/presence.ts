/**
 * Presence: who is online right now, at which peer address, serving what. Soft state with
 * leases, never written to disk (docs/replicated-state.md, "Presence").
 *
 * A lease `(user, clientId) -> {peer, shares, expiresAt}` is renewed by the client's heartbeat
 * (every 5 s; a lease lasts {@link LEASE_MS}). It is dropped at once when the connection that last
 * renewed it closes, or at logout, so a client that quits is not handed out as a peer for another
 * 15 s. Entries carry the origin tracker that holds the client's connection: a replication layer
 * gossips {@link Presence.exportLocal} and feeds other trackers' entries to {@link Presence.importRemote}.
 * A lease's `origin` is the tracker that holds the client's connection.
 *
 * The clock is injected; expiry is checked lazily on read and by {@link Presence.sweep}.
 */
import type { ShareRef } from '../protocol/rpc.js';

/** How long a lease lasts without renewal. Clients heartbeat every {@link HEARTBEAT_MS}. */
export const LEASE_MS = 15_000;
export const HEARTBEAT_MS = 5_000;
/** Cap on shares remembered per lease (the RPC schema allows more; presence does not need them all). */
export const MAX_SHARES_PER_LEASE = 10_000;
/** Cap on leases held, so gossip or a flood of logins cannot grow memory without bound. */
export const MAX_LEASES = 200_000;

/** One lease, as held and as gossiped. */
export interface PresenceEntry {
  user: string;
  clientId: string;
  /** The client's peer address "IP:PORT". */
  peer: string;
  shares: ShareRef[];
  /** Absolute expiry, ms on the holder's clock. */
  expiresAt: number;
  /** The tracker holding the client's connection. */
  origin: string;
}

/**
 * A lease as gossiped between trackers: the remaining lifetime instead of an absolute expiry,
 * because the trackers' clocks differ.
 */
export interface GossipEntry { user: string; clientId: string; peer: string; shares: ShareRef[]; ttlMs: number; origin: string }

interface Lease extends PresenceEntry { connId: number | null }

const keyOf = (user: string, clientId: string) => `${user}\u0000${clientId}`;

export class Presence {
  private leases = new Map<string, Lease>();
  private readonly leaseMs: number;
  private onChange: (() => void) | null = null;

  constructor(private readonly opts: { now: () => number; origin: string; leaseMs?: number }) {
    this.leaseMs = opts.leaseMs ?? LEASE_MS;
  }

  /**
   * Registers the one listener told when local presence changes in a way others should hear
   * about soon: a new lease, another peer address or share set, a drop, a lapse found by sweep.
   * Plain renewals do not call it (they only move the expiry). Replication gossips on it.
   */
  setChangeListener(fn: (() => void) | null): void { this.onChange = fn; }

  private changed(): void {
    // A listener's failure must not fail the client's call that changed presence.
    try { this.onChange?.(); } catch { /* the listener logs its own errors */ }
  }

  /**
   * Creates or renews a local lease. `shares` replaces the set served (undefined keeps it);
   * `connId` is the connection that renewed it (its closing drops the lease).
   */
  renew(user: string, clientId: string, peer: string, shares: ShareRef[] | undefined, connId: number | null): PresenceEntry {
    const k = keyOf(user, clientId);
    const old = this.live(k);
    if (!old && this.leases.size >= MAX_LEASES) this.sweep();
    const lease: Lease = {
      user, clientId, peer,
      shares: (shares ?? old?.shares ?? []).slice(0, MAX_SHARES_PER_LEASE),
      expiresAt: this.opts.now() + this.leaseMs,
      origin: this.opts.origin,
      connId,
    };
    if (this.leases.size < MAX_LEASES || old) this.leases.set(k, lease);
    if (!old || old.origin !== lease.origin || old.peer !== peer || !sameShares(old.shares, lease.shares)) this.changed();
    return toEntry(lease);
  }

  /** Adds one share to a live lease (upload/announce), if there is one. */
  addShare(user: string, clientId: string, ref: ShareRef): void {
    const l = this.live(keyOf(user, clientId));
    if (!l || l.shares.length >= MAX_SHARES_PER_LEASE) return;
    if (!l.shares.some((s) => s.group === ref.group && s.infoHash === ref.infoHash)) { l.shares.push(ref); this.changed(); }
  }

  /** Removes shares from a live lease (stop_share, leave_group): `infoHash` undefined = the whole group. */
  removeShares(user: string, clientId: string | null, group: string, infoHash?: string): void {
    let changed = false;
    for (const l of this.leases.values()) {
      if (l.user !== user || (clientId !== null && l.clientId !== clientId)) continue;
      const before = l.shares.length;
      l.shares = l.shares.filter((s) => !(s.group === group && (infoHash === undefined || s.infoHash === infoHash)));
      changed ||= l.shares.length !== before;
    }
    if (changed) this.changed();
  }

  drop(user: string, clientId: string): void {
    if (this.leases.delete(keyOf(user, clientId))) this.changed();
  }

  /** The connection closed: drops every lease it renewed last. Returns how many. */
  dropConnection(connId: number): number {
    let n = 0;
    for (const [k, l] of this.leases) if (l.connId === connId) { this.leases.delete(k); n++; }
    if (n > 0) this.changed();
    return n;
  }

  get(user: string, clientId: string): PresenceEntry | undefined {
    const l = this.live(keyOf(user, clientId));
    return l ? toEntry(l) : undefined;
  }

  isOnline(user: string, clientId: string): boolean {
    return this.live(keyOf(user, clientId)) !== undefined;
  }

  /** Live leases held by this tracker, for gossip. */
  exportLocal(): GossipEntry[] {
    const now = this.opts.now();
    const out: GossipEntry[] = [];
    for (const [k, l] of this.leases) {
      if (l.origin !== this.opts.origin || !this.live(k)) continue;
      out.push({ user: l.user, clientId: l.clientId, peer: l.peer, shares: [...l.shares], ttlMs: l.expiresAt - now, origin: l.origin });
    }
    return out;
  }

  /**
   * Takes leases gossiped by other trackers. The TTL is capped at one lease (a remote cannot pin
   * an entry for longer). A local lease of the same client wins over a remote one while it is
   * live; our own leases echoed back are ignored. Entries must already be validated.
   */
  importRemote(entries: readonly GossipEntry[]): void {
    const now = this.opts.now();
    for (const e of entries) {
      if (e.origin === this.opts.origin) continue;
      const k = keyOf(e.user, e.clientId);
      const cur = this.live(k);
      if (cur && cur.origin === this.opts.origin) continue;
      if (!cur && this.leases.size >= MAX_LEASES) continue;
      const ttl = Math.max(0, Math.min(this.leaseMs, e.ttlMs));
      this.leases.set(k, {
        user: e.user, clientId: e.clientId, peer: e.peer, shares: e.shares.slice(0, MAX_SHARES_PER_LEASE),
        expiresAt: now + ttl, origin: e.origin, connId: null,
      });
    }
  }

  /** Drops expired leases; returns how many. */
  sweep(): number {
    const now = this.opts.now();
    let n = 0, local = false;
    for (const [k, l] of this.leases) {
      if (l.expiresAt <= now) { this.leases.delete(k); n++; local ||= l.origin === this.opts.origin; }
    }
    if (local) this.changed();
    return n;
  }

  /** Live leases (expired ones not yet swept are not counted). */
  get size(): number {
    const now = this.opts.now();
    let n = 0;
    for (const l of this.leases.values()) if (l.expiresAt > now) n++;
    return n;
  }

  private live(k: string): Lease | undefined {
    const l = this.leases.get(k);
    if (!l) return undefined;
    if (l.expiresAt <= this.opts.now()) { this.leases.delete(k); return undefined; }
    return l;
  }
}

function sameShares(a: readonly ShareRef[], b: readonly ShareRef[]): boolean {
  return a.length === b.length && a.every((s, i) => s.group === b[i]!.group && s.infoHash === b[i]!.infoHash);
}

function toEntry(l: Lease): PresenceEntry {
  return { user: l.user, clientId: l.clientId, peer: l.peer, shares: [...l.shares], expiresAt: l.expiresAt, origin: l.origin };
}
