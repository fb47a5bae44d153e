/**
 * The replication service of one tracker: keeps one authenticated link to every other tracker of
 * tracker_info (dialing each, with backoff, and accepting theirs), ships every committed change to
 * every link as soon as it commits, runs the periodic anti-entropy tick, relays presence gossip,
 * and reports link state for the `status` op.
 *
 * One link per peer: both sides dial, so two links can come up at once; each side then keeps the
 * one dialed by the tracker whose listed address sorts first and closes the other, so both make
 * the same choice without talking about it. A dialer does not dial while a link to its peer is up.
 *
 * Forwarding: links ship changes of every origin, not only this tracker's, so a tracker that can
 * reach another only through a third still converges.
 */
import { connect as netConnect, type Socket } from 'node:net';
import { formatEndpoint, type Endpoint } from '../../common/config.js';
import type { Logger } from '../../common/log.js';
import type { LineDecoder } from '../../protocol/rpc.js';
import { PeerDirectory } from './auth.js';
import { PeerLink, type LinkContext } from './link.js';
import type { PinStore } from './pins.js';
import { presenceFrames } from './presence-frames.js';
import { vectorLag, type SyncOptions } from './sync-session.js';
import { systemClock, type Clock, type PresencePort, type ReplicaStore, type Signer, type VersionVector } from './types.js';
import type { PresenceEntry } from './wire.js';

/** Inbound handshakes in progress at once; beyond it new replication connections are refused. */
export const MAX_PENDING_HANDSHAKES = 16;

export interface ReplicatorOptions {
  self: Endpoint;
  /** Every tracker of tracker_info, this one included. */
  trackers: readonly Endpoint[];
  store: ReplicaStore;
  signer: Signer;
  pins: PinStore;
  log: Logger;
  presence?: PresencePort;
  /** The key the replicated state holds for an origin (its `tkey` row), if any. */
  knownKey?: (origin: string) => string | undefined;
  clock?: Clock;
  /**
   * Test hook: dial these endpoints instead of the listed ones (listed `IP:PORT` -> endpoint), so
   * a test can put a proxy between two trackers. Admission is unaffected: peers still present
   * their listed addresses.
   */
  dialOverride?: ReadonlyMap<string, Endpoint>;
  /** Anti-entropy period (vector exchange, repair, keepalive). */
  tickMs?: number;
  /**
   * Local presence changes are polled and gossiped this often, and at once after
   * {@link Replicator.presenceChanged}.
   */
  presencePollMs?: number;
  handshakeTimeoutMs?: number;
  /** A link silent this long is closed (must exceed a few ticks). */
  idleTimeoutMs?: number;
  backoffMinMs?: number;
  backoffMaxMs?: number;
  sync?: Omit<SyncOptions, 'clock'>;
  /** Opens a TCP connection (default node:net). */
  connect?: (e: Endpoint) => Socket;
}

/** One peer in the `status` answer. */
export interface PeerStatus {
  addr: string;
  connected: boolean;
  /** Who dialed the current link: `out` = this tracker. */
  direction: 'out' | 'in' | null;
  origin: string | null;
  /** Milliseconds since a frame last arrived from this peer (null: never). */
  lastContactMsAgo: number | null;
  /**
   * Changes this tracker holds that the peer lacks, by its last report (null: never heard); for
   * a peer that is down, against what it held when its link went down.
   */
  lag: number | null;
  /** Changes the peer holds that this tracker lacks, by its last report. */
  behind: number | null;
  inFlight: number;
  changesSent: number;
  changesApplied: number;
  changesRefused: number;
  lastError: string | null;
}

/** What `status` reports about replication. */
export interface ReplicationStatus {
  origin: string;
  addr: string;
  vector: VersionVector;
  digest: string;
  peers: PeerStatus[];
}

interface PeerRecord {
  dialing: PeerLink | null;
  timer: NodeJS.Timeout | null;
  attempt: number;
  lastContactAt: number | null;
  origin: string | null;
  lastError: string | null;
  /** The peer's vector as last reported, kept after its link went down (lag of a down peer). */
  lastVector: VersionVector | null;
}

export class Replicator {
  readonly dir: PeerDirectory;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly open = new Map<string, PeerLink>();
  private readonly all = new Set<PeerLink>();
  private readonly peers = new Map<string, PeerRecord>();
  private readonly ctx: LinkContext;
  private tickTimer: NodeJS.Timeout | null = null;
  private presenceTimer: NodeJS.Timeout | null = null;
  private pumpScheduled = false;
  private presenceScheduled = false;
  private unsubscribe: (() => void) | null = null;
  private running = false;

  constructor(private readonly opts: ReplicatorOptions) {
    this.dir = new PeerDirectory(opts.self, opts.trackers);
    this.clock = opts.clock ?? systemClock;
    this.log = opts.log;
    for (const a of this.dir.peers) {
      this.peers.set(a, { dialing: null, timer: null, attempt: 0, lastContactAt: null, origin: null, lastError: null, lastVector: null });
    }
    const tickMs = opts.tickMs ?? 2000;
    this.ctx = {
      dir: this.dir, store: opts.store, signer: opts.signer, pins: opts.pins, clock: this.clock, log: this.log,
      sync: opts.sync ?? {},
      handshakeTimeoutMs: opts.handshakeTimeoutMs ?? 5000,
      idleTimeoutMs: opts.idleTimeoutMs ?? Math.max(5 * tickMs, 5000),
      knownKey: (o) => opts.knownKey?.(o),
      linkUpWithKey: (addr, key) => this.open.get(addr)?.peerKey === key,
      opened: (l) => this.onOpened(l),
      closed: (l) => this.onClosed(l),
      presence: (l, e) => this.onPresence(l, e),
    };
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.unsubscribe = this.opts.store.subscribe(() => this.schedulePump());
    const tickMs = this.opts.tickMs ?? 2000;
    this.tickTimer = setInterval(() => this.tick(), tickMs);
    this.tickTimer.unref();
    this.presenceTimer = setInterval(() => this.pollPresence(), this.opts.presencePollMs ?? 1000);
    this.presenceTimer.unref();
    for (const a of this.dir.peers) this.dial(a);
  }

  /** Closes every link and stops dialing. */
  stop(): void {
    this.running = false;
    this.unsubscribe?.();
    this.unsubscribe = null;
    if (this.tickTimer) clearInterval(this.tickTimer);
    if (this.presenceTimer) clearInterval(this.presenceTimer);
    for (const p of this.peers.values()) if (p.timer) { clearTimeout(p.timer); p.timer = null; }
    for (const l of [...this.all]) l.close('SHUTDOWN', 'tracker shutting down');
  }

  /**
   * Takes over a connection accepted on the client port whose first line is a replication hello
   * (see `isReplicationHello`). The caller must have detached its own listeners from `socket`.
   */
  accept(socket: Socket, lines: string[], decoder: LineDecoder): void {
    if (!this.running) { socket.destroy(); return; }
    // Handed-over sockets leave the RPC server's connection limits: bound the handshakes instead
    // (a listed host could otherwise open them without end; each costs a signature).
    let handshaking = 0;
    for (const l of this.all) if (l.state === 'handshake' && l.role === 'acceptor') handshaking++;
    if (handshaking >= MAX_PENDING_HANDSHAKES) {
      this.log.warn({ remote: socket.remoteAddress }, 'replication: too many handshakes in progress; connection refused');
      socket.destroy();
      return;
    }
    const link = PeerLink.accept(this.ctx, socket, lines, decoder);
    if (link.state !== 'closed') this.all.add(link);
  }

  /**
   * The presence table changed here (login, heartbeat, logout, a closed connection): gossip the
   * change soon (coalesced with the other changes of this event-loop turn).
   */
  presenceChanged(): void {
    if (this.presenceScheduled || !this.running || !this.opts.presence) return;
    this.presenceScheduled = true;
    setImmediate(() => { this.presenceScheduled = false; this.pollPresence(); });
  }

  /** Sends presence entries to every peer at once. */
  gossip(entries: readonly PresenceEntry[]): void {
    if (entries.length === 0) return;
    const frames = presenceFrames(entries);
    for (const l of this.open.values()) l.sendAll(frames);
  }

  /** Open links by listed peer address (for tests and status). */
  get links(): ReadonlyMap<string, PeerLink> { return this.open; }

  status(): ReplicationStatus {
    return {
      origin: this.opts.store.origin,
      addr: this.dir.selfAddr,
      vector: this.opts.store.versionVector(),
      digest: this.opts.store.digest(),
      peers: this.peerStatus(),
    };
  }

  /** Every listed peer's link state (cheap: no digest). */
  peerStatus(): PeerStatus[] {
    const now = this.clock.now();
    const vector = this.opts.store.versionVector();
    return this.dir.peers.map((addr) => {
      const l = this.open.get(addr);
      const rec = this.peers.get(addr)!;
      const s = l?.session ?? null;
      const theirs = s?.theirVector ?? rec.lastVector;
      const heard = l ? l.lastHeardAt : rec.lastContactAt;
      return {
        addr,
        connected: l !== undefined,
        direction: l ? (l.role === 'dialer' ? 'out' : 'in') : null,
        origin: l?.peerOrigin ?? rec.origin,
        lastContactMsAgo: heard === null ? null : Math.max(0, now - heard),
        lag: theirs ? vectorLag(vector, theirs) : null,
        behind: theirs ? vectorLag(theirs, vector) : null,
        inFlight: s?.inFlight ?? 0,
        changesSent: s?.stats.changesSent ?? 0,
        changesApplied: s?.stats.changesApplied ?? 0,
        changesRefused: s?.stats.changesRefused ?? 0,
        lastError: l ? null : rec.lastError,
      };
    });
  }

  // ------------------------------------------------------------------ dialing

  private dial(addr: string): void {
    const rec = this.peers.get(addr)!;
    rec.timer = null;
    if (!this.running || this.open.has(addr) || rec.dialing) return;
    const listed = this.opts.dialOverride?.get(addr);
    const target = listed ?? parseListed(addr);
    const socket = (this.opts.connect ?? ((e: Endpoint) => netConnect({ host: e.host, port: e.port })))(target);
    const link = PeerLink.dial(this.ctx, socket, addr);
    rec.dialing = link;
    this.all.add(link);
  }

  private scheduleDial(addr: string): void {
    const rec = this.peers.get(addr);
    if (!rec || !this.running || rec.timer || rec.dialing || this.open.has(addr)) return;
    const min = this.opts.backoffMinMs ?? 100;
    const max = this.opts.backoffMaxMs ?? 1000;
    const base = Math.min(max, min * 2 ** Math.min(rec.attempt, 16));
    rec.attempt++;
    // Jitter so that trackers restarting together do not dial in lock step.
    const delay = Math.round(base * (0.5 + Math.random() / 2));
    rec.timer = setTimeout(() => this.dial(addr), delay);
    rec.timer.unref();
  }

  // ------------------------------------------------------------------ link events

  private onOpened(link: PeerLink): boolean {
    const addr = link.peerAddr!;
    const existing = this.open.get(addr);
    if (existing && existing !== link) {
      // Same dialer twice: the peer restarted before the old link timed out, the new one is live.
      const dialer = dialerOf(link, this.dir.selfAddr);
      const keepNew = dialer === dialerOf(existing, this.dir.selfAddr) || dialer === [this.dir.selfAddr, addr].sort()[0];
      if (!keepNew) return false;
      existing.close('DUPLICATE', 'another link to this tracker is up');
    }
    this.open.set(addr, link);
    const rec = this.peers.get(addr)!;
    rec.attempt = 0;
    rec.origin = link.peerOrigin;
    rec.lastError = null;
    if (this.opts.presence) {
      link.sendAll(presenceFrames([...this.opts.presence.localEntries(), ...this.opts.presence.remoteEntries()]));
    }
    return true;
  }

  private onClosed(link: PeerLink): void {
    this.all.delete(link);
    const addr = link.peerAddr;
    if (addr === null) return;
    const rec = this.peers.get(addr);
    if (!rec) return;
    if (this.open.get(addr) === link) {
      this.open.delete(addr);
      rec.lastContactAt = link.lastHeardAt;
      rec.lastVector = link.session?.theirVector ?? rec.lastVector;
    }
    if (link.closeCode !== 'DUPLICATE') rec.lastError = `${link.closeCode}: ${link.closeReason}`.slice(0, 200);
    if (rec.dialing === link) rec.dialing = null;
    this.scheduleDial(addr);
  }

  private onPresence(from: PeerLink, entries: PresenceEntry[]): void {
    if (!this.opts.presence) return;
    const changed = this.opts.presence.applyRemote(entries);
    if (changed.length === 0) return;
    const frames = presenceFrames(changed);
    for (const l of this.open.values()) if (l !== from) l.sendAll(frames);
  }

  // ------------------------------------------------------------------ timers

  /** Coalesces the pumps of one event-loop turn: a burst of commits ships as one batch. */
  private schedulePump(): void {
    if (this.pumpScheduled || !this.running) return;
    this.pumpScheduled = true;
    setImmediate(() => {
      this.pumpScheduled = false;
      for (const l of this.open.values()) l.pump();
    });
  }

  private tick(): void {
    for (const l of [...this.all]) l.tick();
    this.opts.presence?.sweep?.();
  }

  private pollPresence(): void {
    if (!this.opts.presence || !this.running) return;
    // Polled even with no link up, so that what changed meanwhile is not re-sent as a change later
    // (a new link gets the full snapshot anyway).
    this.gossip(this.opts.presence.pollLocal());
  }
}

function dialerOf(link: PeerLink, selfAddr: string): string {
  return link.role === 'dialer' ? selfAddr : link.peerAddr!;
}

function parseListed(addr: string): Endpoint {
  const i = addr.lastIndexOf(':');
  const host = addr.slice(0, i).replace(/^\[|\]$/g, '');
  return { host, port: Number(addr.slice(i + 1)) };
}

/**
 * Parses the test hook `COTERIE_PEER_ADDR_OVERRIDE`: comma-separated `listed=dial` pairs of
 * `IP:PORT`, e.g. `127.0.0.1:4001=127.0.0.1:5001`. Only tests set it (to interpose proxies).
 */
export function parseDialOverride(text: string | undefined, parse: (s: string) => Endpoint): Map<string, Endpoint> {
  const m = new Map<string, Endpoint>();
  if (!text) return m;
  for (const pair of text.split(',')) {
    const [listed, dial] = pair.split('=');
    if (!listed || !dial) continue;
    m.set(formatEndpoint(parse(listed)), parse(dial));
  }
  return m;
}
