/**
 * The peer server: accepts BitTorrent connections on the client's IP:PORT, caps them (in total and
 * per remote address), reads the handshake, finds the torrent by info-hash among the files we seed
 * AND the downloads in progress (which serve their verified pieces), waits for the extended
 * handshake that carries the access ticket, asks the authorize hook, and hands the session to
 * the torrent's host. Unknown info-hash, refused ticket or a handshake timeout: disconnected.
 */
import net from 'node:net';
import type { Logger } from 'pino';
import { CoterieError, describe } from '../common/errors.js';
import { formatEndpoint, type Endpoint } from '../common/config.js';
import { PeerSession, type SessionOwner, type SessionTorrent } from './session.js';
import { adopt } from './socket-link.js';
import type { Handshake } from './wire/codec.js';
import { monotonicMs, type Clock } from './rate-limit.js';
import { MAX_CONNECTIONS_PER_ADDRESS, MAX_INCOMING_CONNECTIONS } from './limits.js';

/** A torrent that accepts incoming peers: a seeded file or a download in progress. */
export interface TorrentHost {
  readonly torrent: SessionTorrent;
  /** Groups this file is shared in (for the authorize hook; empty for a download). */
  groups(): string[];
  /** An authorized, active incoming session: the host owns it from now on. */
  adopt(s: PeerSession): void;
}

/** What the authorize hook is asked about an incoming peer. */
export interface AuthorizeRequest {
  infoHashHex: string;
  /** The group the peer says its ticket is for (extended handshake), if any. */
  group?: string;
  /** Groups we share this file in. */
  groups: string[];
  /** The peer's access ticket, if it sent one (libtorrent and other standard clients never do). */
  ticket?: string;
  /** Remote address, `ip:port`. */
  remote: string;
}

/**
 * What an authorize hook answers: no, yes, or yes until `expiresAt` (ms since the epoch: the
 * access ticket's expiry). A connection admitted until a time is closed then; the downloader dials
 * again with the fresh ticket it gets every few seconds, while someone who left the group gets none.
 */
export type AuthorizeResult = boolean | { ok: boolean; expiresAt?: number };

/** Decides whether an incoming peer may have a file. Default: allow everyone (open access). */
export type AuthorizeHook = (req: AuthorizeRequest) => AuthorizeResult;

export interface PeerServerOptions {
  listen: Endpoint;
  lookup: (infoHashHex: string) => TorrentHost | undefined;
  authorize?: AuthorizeHook;
  logger: Logger;
  clock?: Clock;
  /** Most incoming connections at once. Default 200. */
  maxConnections?: number;
  /** Most incoming connections from one IP. Default 32 (loopback tests put every peer on 127.0.0.1). */
  maxPerAddress?: number;
  /** Wall clock, ms since the epoch (turns a ticket's expiry into a deadline on `clock`). */
  wallClock?: () => number;
}

/**
 * Invariant: every accepted socket is either pending here (before adoption, ticked for the
 * handshake timeout) or owned by a host; the per-address counts match the open incoming sockets.
 */
export class PeerServer implements SessionOwner {
  private server: net.Server | null = null;
  private readonly pending = new Set<PeerSession>();
  private readonly perAddress = new Map<string, number>();
  private total = 0;
  private bound: Endpoint;
  private readonly maxConnections: number;
  private readonly maxPerAddress: number;

  constructor(private readonly opts: PeerServerOptions) {
    this.bound = { ...opts.listen };
    this.maxConnections = opts.maxConnections ?? MAX_INCOMING_CONNECTIONS;
    this.maxPerAddress = opts.maxPerAddress ?? MAX_CONNECTIONS_PER_ADDRESS;
  }

  /** The address actually bound (port 0 resolved). */
  get address(): Endpoint { return this.bound; }

  listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      const server = net.createServer({ noDelay: true, pauseOnConnect: true }, (sock) => this.accept(sock));
      server.once('error', (err) => reject(new CoterieError('IO', `cannot listen on ${formatEndpoint(this.opts.listen)}: ${describe(err)}`, { cause: err })));
      server.listen(this.opts.listen.port, this.opts.listen.host, () => {
        const a = server.address() as net.AddressInfo;
        this.bound = { host: this.opts.listen.host, port: a.port };
        server.removeAllListeners('error');
        server.on('error', (err) => this.opts.logger.warn({ err: describe(err) }, 'peer server error'));
        this.server = server;
        resolve();
      });
    });
  }

  private accept(sock: net.Socket): void {
    const ip = sock.remoteAddress ?? '?';
    const n = this.perAddress.get(ip) ?? 0;
    if (this.total >= this.maxConnections || n >= this.maxPerAddress) {
      this.opts.logger.debug({ ip }, 'peer refused: too many connections');
      sock.destroy();
      return;
    }
    this.total++;
    this.perAddress.set(ip, n + 1);
    const remote = `${ip}:${sock.remotePort ?? 0}`;
    const { session: s, socket } = adopt(sock, (t) => new PeerSession({ transport: t, owner: this, remote, ...(this.opts.clock ? { clock: this.opts.clock } : {}) }));
    socket.once('close', () => {
      this.total--;
      const k = (this.perAddress.get(ip) ?? 1) - 1;
      if (k <= 0) this.perAddress.delete(ip); else this.perAddress.set(ip, k);
    });
    this.pending.add(s);
  }

  onHandshake(s: PeerSession, h: Handshake): void {
    const hex = h.infoHash.toString('hex');
    const host = this.opts.lookup(hex);
    if (!host) {
      s.close(new CoterieError('NO_SUCH_FILE', `peer ${s.remote} asked for ${hex}, which we do not serve`));
      return;
    }
    hostOf.set(s, host);
    s.attach(host.torrent, this);
  }

  onActive(s: PeerSession): void {
    const host = hostOf.get(s);
    this.pending.delete(s);
    if (!host) { s.close(); return; }
    const req: AuthorizeRequest = {
      infoHashHex: host.torrent.infoHash.toString('hex'),
      groups: host.groups(),
      remote: s.remote,
      ...(s.peerExt?.ticket !== undefined ? { ticket: s.peerExt.ticket } : {}),
      ...(s.peerExt?.group !== undefined ? { group: s.peerExt.group } : {}),
    };
    let ok = true;
    let expiresAt: number | undefined;
    try {
      const r = this.opts.authorize ? this.opts.authorize(req) : true;
      if (typeof r === 'boolean') ok = r;
      else { ok = r.ok === true; expiresAt = r.expiresAt; }
    } catch (err) {
      this.opts.logger.warn({ err: describe(err), remote: s.remote }, 'authorize hook failed');
      ok = false;
    }
    if (!ok) {
      s.close(new CoterieError('ACCESS_DENIED', `peer ${s.remote} has no valid ticket for ${req.infoHashHex}`));
      return;
    }
    // The host may have gone (unseeded) while the handshakes ran.
    if (this.opts.lookup(req.infoHashHex) !== host) { s.close(); return; }
    if (expiresAt !== undefined) {
      const now = (this.opts.clock ?? monotonicMs)();
      s.accessDeadline = now + Math.max(0, expiresAt - (this.opts.wallClock ?? Date.now)());
    }
    host.adopt(s);
  }

  // Before adoption nothing but handshakes is expected to matter; these are never reached with
  // state 'active' because adoption switches the owner first.
  onPeerPieces(): void { /* owner switched on activation */ }
  onHave(): void { /* idem */ }
  onChoke(): void { /* idem */ }
  onUnchoke(): void { /* idem */ }
  onInterest(): void { /* idem */ }
  onBlock(): void { /* idem */ }

  onClose(s: PeerSession, err?: Error): void {
    this.pending.delete(s);
    if (err) this.opts.logger.debug({ remote: s.remote, err: describe(err) }, 'incoming peer closed before adoption');
  }

  /** Handshake timeouts of pending connections; call about once a second. */
  tick(): void {
    for (const s of [...this.pending]) s.tick();
  }

  /** Connections accepted and still open (pending or adopted). */
  get connections(): number { return this.total; }

  async close(): Promise<void> {
    for (const s of [...this.pending]) s.close();
    const srv = this.server;
    this.server = null;
    if (srv) await new Promise<void>((r) => srv.close(() => r()));
  }
}

/** Which host a pending session's handshake resolved to (kept off the session type). */
const hostOf = new WeakMap<PeerSession, TorrentHost>();
