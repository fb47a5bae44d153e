/**
 * The peers of one download, apart from the piece flow: which sessions it has (dialled and
 * adopted), the address and peer id each is known by, who is banned and who has strikes, which
 * addresses are this client itself, which peers stalled (snubbed), what closed sessions served,
 * and the periodic ask for fresh peers (with the access ticket that comes back with them).
 * The {@link Download} owns one and stays the sessions' owner: it calls in here from its
 * session callbacks and decides when new peers are wanted.
 *
 * Invariants: every session in {@link PeerSet.sessions} has an identity (its listen address when
 * known, else its remote address), and leaves `byAddr` and `peerIds` when it closes; at most
 * {@link MAX_PEERS} dialled sessions plus a few incoming ones; a banned address or peer id is never
 * connected again; a peer id has one session at most (both sides drop the same duplicate).
 */
import type { Logger } from 'pino';
import { CoterieError, describe } from '../common/errors.js';
import { parseEndpoint, formatEndpoint, type Endpoint } from '../common/config.js';
import type { DownloadSpec, PeerInfo } from './api.js';
import type { DownloadContext } from './download.js';
import { PeerSession, type SessionOwner, type SessionTorrent } from './session.js';
import { dial } from './socket-link.js';
import { EXTRA_INCOMING_PEERS_PER_DOWNLOAD, MAX_PEERS_PER_DOWNLOAD, STRIKES_TO_BAN } from './limits.js';

export const MAX_PEERS = MAX_PEERS_PER_DOWNLOAD;
export const REFRESH_MS = 5_000;
/** When starved (no peer with anything for us), ask for peers again after this long. */
export const STARVED_REFRESH_MS = 1_000;
/**
 * For the first {@link EARLY_WINDOW_MS} of a download, peers are asked for every second instead of
 * every {@link REFRESH_MS}: in a flash crowd (1 seeder, 8 downloaders starting together) the
 * downloaders announce themselves at their first verified piece and only learn of each other at
 * the next refresh; at 5 s they had barely fed each other before the seeder had sent everything.
 * A get_peers a second for ten seconds is nothing for a tracker.
 */
export const EARLY_REFRESH_MS = 1_000;
export const EARLY_WINDOW_MS = 10_000;

/** The download that owns the sessions; fresh peers go through its `connect`, which may refuse them. */
export interface PeerSetOwner extends SessionOwner {
  connect(peers: PeerInfo[]): void;
}

/** One download's peers (see the file comment). */
export class PeerSet {
  readonly sessions = new Map<number, PeerSession>();
  /** Dialled or known listen addresses -> session. */
  private readonly byAddr = new Map<string, PeerSession>();
  private readonly identity = new WeakMap<PeerSession, string>();
  private readonly peerIds = new Map<string, PeerSession>();
  private readonly banned = new Set<string>();
  /** Addresses that turned out to be this client itself. */
  private readonly selfAddrs = new Set<string>();
  private readonly bannedIds = new Set<string>();
  private readonly strikes = new Map<string, number>();
  /** Keys of peers that stalled: their requests went to others; cleared when they deliver. */
  readonly snubbed = new Set<number>();
  /** Payload bytes served by sessions no longer in {@link sessions}. */
  private uploadedClosed = 0;
  private ticket: string | undefined;
  private lastRefresh = 0;
  private startedAt = 0;
  private refreshing = false;

  constructor(
    private readonly owner: PeerSetOwner,
    private readonly spec: DownloadSpec,
    private readonly ctx: DownloadContext,
    private readonly torrent: SessionTorrent,
    private readonly log: Logger,
  ) {
    this.ticket = spec.ticket;
  }

  /** The download starts connecting at `now`: the refresh clock starts. */
  started(now: number): void {
    this.lastRefresh = now;
    this.startedAt = now;
  }

  private torrentFor(): SessionTorrent {
    return { ...this.torrent, ext: { ...this.torrent.ext, p: this.ctx.listenPort(), ticket: this.ticket, group: this.spec.group } };
  }

  /** Dials peers we are not connected to, up to the cap (the owner checked it wants peers). */
  dial(peers: PeerInfo[]): void {
    const self = this.ctx.self();
    for (const p of peers) {
      if (this.sessions.size >= MAX_PEERS) break;
      let ep: Endpoint;
      try { ep = parseEndpoint(p.addr); } catch { continue; }
      const addr = formatEndpoint(ep);
      if (this.banned.has(addr) || this.byAddr.has(addr) || this.selfAddrs.has(addr)) continue;
      // Our own address (the tracker lists us too once we announce). Other aliases of ourselves
      // (a wildcard bind) are caught by the peer id in the handshake.
      if (ep.port === self.port && ep.host === self.host) continue;
      const s = dial(ep.host, ep.port, (t) => new PeerSession({ transport: t, owner: this.owner, torrent: this.torrentFor(), clock: this.ctx.clock, remote: addr }));
      this.sessions.set(s.key, s);
      this.byAddr.set(addr, s);
      this.identity.set(s, addr);
    }
  }

  /** An incoming session, already owned by the download: false if it was refused (and closed). */
  admit(s: PeerSession): boolean {
    const ip = s.remote.slice(0, s.remote.lastIndexOf(':'));
    const port = s.peerExt?.p;
    const id = port ? formatEndpoint({ host: ip, port }) : s.remote;
    this.identity.set(s, id);
    if (this.banned.has(id) || this.sessions.size >= MAX_PEERS + EXTRA_INCOMING_PEERS_PER_DOWNLOAD) { s.close(); return false; }
    this.sessions.set(s.key, s);
    if (port && !this.byAddr.has(id)) this.byAddr.set(id, s);
    return true;
  }

  /**
   * `s` finished its handshakes: false if it must go (ourselves, a banned peer id, the losing
   * half of a duplicate), in which case it was closed here.
   */
  accept(s: PeerSession): boolean {
    const idHex = s.peerHandshake!.peerId.toString('hex');
    if (s.peerHandshake!.peerId.equals(this.ctx.peerId)) {
      // One of our own addresses: never dial it again.
      const id = this.identity.get(s);
      if (s.outgoing && id !== undefined) this.selfAddrs.add(id);
      s.close(new CoterieError('NOT_A_PEER', 'connected to ourselves'));
      return false;
    }
    if (this.bannedIds.has(idHex)) { s.close(new CoterieError('ACCESS_DENIED', 'banned peer')); return false; }
    const other = this.peerIds.get(idHex);
    if (other && other !== s && !other.closed) {
      // Two connections to one peer (both dialled at once). Both sides must drop the same one:
      // keep the connection dialled by the side with the smaller peer id.
      const keepOutgoing = Buffer.compare(this.ctx.peerId, s.peerHandshake!.peerId) < 0;
      const keepNew = s.outgoing !== other.outgoing && s.outgoing === keepOutgoing;
      if (!keepNew) { s.close(); return false; }
      other.close();
    }
    this.peerIds.set(idHex, s);
    return true;
  }

  /** Who `s` is for bans and strikes: its listen address when known, else its remote address. */
  idOf(s: PeerSession): string { return this.identity.get(s) ?? s.remote; }

  /** `s` closed: forgotten here, what it served kept in {@link uploaded}. */
  remove(s: PeerSession): void {
    if (this.sessions.get(s.key) === s) {
      this.sessions.delete(s.key);
      this.uploadedClosed += s.uploader?.served ?? 0;
    }
    const id = this.identity.get(s);
    if (id !== undefined && this.byAddr.get(id) === s) this.byAddr.delete(id);
    if (s.peerHandshake) {
      const hex = s.peerHandshake.peerId.toString('hex');
      if (this.peerIds.get(hex) === s) this.peerIds.delete(hex);
    }
    this.snubbed.delete(s.key);
  }

  /**
   * A piece from the peers `from` failed its hash check: a lone sender is banned at once; when
   * several sent it, each gets a strike ({@link STRIKES_TO_BAN} strikes: banned).
   */
  blame(from: string[]): void {
    if (from.length === 1) { this.ban(from[0]!); return; }
    for (const id of from) {
      const n = (this.strikes.get(id) ?? 0) + 1;
      this.strikes.set(id, n);
      if (n >= STRIKES_TO_BAN) this.ban(id);
    }
  }

  ban(id: string): void {
    if (this.banned.has(id)) return;
    this.banned.add(id);
    this.log.warn({ peer: id }, 'peer banned: it sent data that failed verification');
    for (const s of [...this.sessions.values()]) {
      if (this.identity.get(s) !== id) continue;
      if (s.peerHandshake) this.bannedIds.add(s.peerHandshake.peerId.toString('hex'));
      s.close(new CoterieError('INTEGRITY', `peer ${id} banned`));
    }
  }

  /** Addresses banned by this download (for status and tests). */
  get bannedPeers(): string[] { return [...this.banned]; }

  /** Payload bytes this download served to other peers. */
  get uploaded(): number {
    let n = this.uploadedClosed;
    for (const s of this.sessions.values()) n += s.uploader?.served ?? 0;
    return n;
  }

  /** The download completed: its active sessions, which are no longer ours (what they served so far is kept). */
  handOver(): PeerSession[] {
    const live = [...this.sessions.values()].filter((s) => s.state === 'active');
    this.uploadedClosed = this.uploaded;
    this.sessions.clear();
    return live;
  }

  /** The download stopped: every session closed. */
  closeAll(): void {
    for (const s of [...this.sessions.values()]) s.close(); // the owner's onClose -> remove() adds what each served
    this.sessions.clear();
  }

  /** Asks for fresh peers when due; `starved`: no peer has anything for us. */
  refreshIfDue(now: number, starved: boolean): void {
    const every = starved ? STARVED_REFRESH_MS : now - this.startedAt < EARLY_WINDOW_MS ? EARLY_REFRESH_MS : REFRESH_MS;
    if (now - this.lastRefresh >= every) this.refresh(now);
  }

  private refresh(now: number): void {
    if (this.refreshing) return;
    this.refreshing = true;
    this.lastRefresh = now;
    this.spec.refreshPeers().then(({ peers, ticket }) => {
      if (ticket !== undefined) this.ticket = ticket;
      this.owner.connect(peers);
    }, (err: unknown) => {
      this.log.warn({ err: describe(err) }, 'peer refresh failed');
    }).finally(() => { this.refreshing = false; });
  }
}
