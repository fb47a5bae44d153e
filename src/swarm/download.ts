/**
 * One download: the peers it talks to, the picker that decides what to ask each for, and the
 * assembly of blocks into verified pieces on disk ({@link PieceAssembler}). Connections are
 * symmetric: the download serves its verified pieces to every connected peer (ours and incoming).
 *
 * Peers: at most {@link MAX_PEERS} connections; fresh peers from `refreshPeers` every 5 s and at
 * once when starved. A peer that alone sent a piece failing verification is banned at once; when
 * several peers sent it, the one whose block differs from the good copy is banned when the piece
 * later verifies (smart ban), and each sender gets a strike meanwhile ({@link STRIKES_TO_BAN}).
 * A banned peer is dropped and never reconnected. A peer that sends no block for {@link STALL_MS} while requests are
 * outstanding has its requests given to others and gets a shallow pipeline until it delivers.
 */
import type { Logger } from 'pino';
import { CoterieError, describe } from '../common/errors.js';
import { parseEndpoint, formatEndpoint, type Endpoint } from '../common/config.js';
import type { DownloadSpec, DownloadStatus, Manifest, PeerInfo, ResumeStore } from './api.js';
import { PieceAssembler } from './assembler.js';
import { Picker, type BlockRequest } from './picker/index.js';
import type { TorrentHost } from './peer-server.js';
import { RateMeter, type Clock, type TokenBucket } from './rate-limit.js';
import { CLIENT_VERSION, type HostContext } from './seed-host.js';
import { PeerSession, type SessionOwner, type SessionTorrent } from './session.js';
import { dial } from './socket-link.js';
import { PartFile } from './storage.js';
import { Unchoker } from './unchoker.js';
import { Uploader } from './uploader.js';
import {
  EXTRA_INCOMING_PEERS_PER_DOWNLOAD, MAX_PEERS_PER_DOWNLOAD, MAX_QUEUED_REQUESTS, STRIKES_TO_BAN,
} from './limits.js';

export const MAX_PEERS = MAX_PEERS_PER_DOWNLOAD;
export const STALL_MS = 5_000;
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
/** Pipeline depth for a peer that stalled, until it delivers again. */
const SNUBBED_DEPTH = 4;

/** What a download needs from the engine. */
export interface DownloadContext extends HostContext {
  clock: Clock;
  resume: ResumeStore;
  downLimiter: TokenBucket | null;
  /** Our peer server's address (never dial it). */
  self: () => Endpoint;
  /** Become (or stop being) the host of this info-hash for incoming peers. */
  register(d: Download): void;
  unregister(d: Download): void;
  /** The file is complete and renamed: the engine seeds it and takes these sessions over. */
  completed(d: Download, sessions: PeerSession[]): void;
  /** Max pipeline depth override (benchmarks). */
  maxPipeline?: number;
  /**
   * Piece writes: 'sync' (default: one writeSync per verified piece on the event loop) or
   * 'async' (thread pool). Measured on the 2-core VM, 1 GiB from 3 seeders, alternating runs:
   * verified at 483/495/716 MB/s sync against 548/495/628 async, the same within noise; sync
   * is the default as PERF-NOTES found it ahead on a warm page cache (850 vs 754 MB/s). Async
   * keeps the event loop free when the disk throttles writers or page-cache memory is cold.
   */
  writeMode?: 'sync' | 'async';
}

/**
 * One download from start (resume) to complete, failed or paused. Invariants: the picker's
 * verified set equals the .part file's recorded pieces; a piece is announced (HAVE) and served
 * only once it is written; at most {@link MAX_PEERS} dialled peers plus a few incoming ones;
 * a banned identity or peer id is never connected again by this download.
 */
export class Download implements TorrentHost, SessionOwner {
  readonly manifest: Manifest;
  readonly torrent: SessionTorrent;
  state: DownloadStatus['state'] = 'downloading';
  error: Error | undefined;
  /** Pieces verified by this run (resumed pieces excluded). */
  piecesFetched = 0;
  private uploadedClosed = 0;
  /** Times a peer stalled and had its requests moved to others. */
  stalls = 0;
  /** Clock time when the last piece was verified (before the whole-file check), or 0. */
  verifiedAt = 0;

  private part: PartFile | null = null;
  private picker: Picker | null = null;
  private asm: PieceAssembler | null = null;
  private readonly log: Logger;
  private readonly sessions = new Map<number, PeerSession>();
  /** Dialled or known listen addresses -> session. */
  private readonly byAddr = new Map<string, PeerSession>();
  private readonly identity = new WeakMap<PeerSession, string>();
  private readonly peerIds = new Map<string, PeerSession>();
  private readonly banned = new Set<string>();
  /** Addresses that turned out to be this client itself. */
  private readonly selfAddrs = new Set<string>();
  private readonly bannedIds = new Set<string>();
  private readonly strikes = new Map<string, number>();
  private readonly snubbed = new Set<number>();
  private readonly joined = new Set<number>();
  private readonly unchoker: Unchoker;
  private readonly meter: RateMeter;
  private readonly reqs: BlockRequest[] = [];
  private ticket: string | undefined;
  private lastRefresh = 0;
  private startedAt = 0;
  private refreshing = false;
  private firstPieceSent = false;
  private refillTimer: NodeJS.Timeout | null = null;
  private finishing = false;
  private readonly done: Promise<void>;
  private resolveDone!: () => void;

  constructor(readonly spec: DownloadSpec, private readonly ctx: DownloadContext) {
    this.manifest = spec.manifest;
    this.ticket = spec.ticket;
    this.log = ctx.logger.child({ download: spec.id, file: spec.manifest.name });
    const m = spec.manifest;
    this.torrent = {
      infoHash: m.infoHash,
      geometry: { pieceCount: m.pieceCount, pieceLength: m.pieceLength, totalLength: m.length },
      peerId: ctx.peerId,
      // No ticket towards peers that dial us: a ticket is a credential, shown only to seeders we chose.
      ext: { m: {}, v: CLIENT_VERSION, p: ctx.listenPort(), reqq: MAX_QUEUED_REQUESTS },
    };
    this.unchoker = new Unchoker((s) => s.down.rate() + s.up.rate());
    this.meter = new RateMeter(ctx.clock);
    this.done = new Promise((r) => { this.resolveDone = r; });
  }

  /** Resolves when the download stops running (complete, failed or paused). */
  get finished(): Promise<void> { return this.done; }

  get running(): boolean { return this.state === 'downloading'; }

  groups(): string[] { return [this.spec.group]; }

  /** Opens the .part (resuming), then starts connecting. Errors end the download (onDone). */
  async start(): Promise<void> {
    const m = this.manifest;
    try {
      this.part = await PartFile.open({
        id: this.spec.id, manifest: m, destPath: this.spec.destPath, resume: this.ctx.resume, clock: this.ctx.clock,
      });
    } catch (err) {
      this.fail(err as Error);
      return;
    }
    if (this.state !== 'downloading') { this.part.close(); return; }
    const part = this.part;
    this.log.info({ resumed: part.have.count, mode: part.mode, pieces: m.pieceCount }, 'download started');
    this.picker = new Picker({ pieceCount: m.pieceCount, pieceLength: m.pieceLength, totalLength: m.length }, part.have);
    const hooks = this.ctx.writeMode === 'async' ? {
      written: (piece: number) => { if (this.state === 'downloading') this.pieceVerified(piece); },
      writeFailed: (err: Error) => this.fail(err),
    } : null;
    this.asm = new PieceAssembler(m, part, this.picker, hooks);
    if (part.have.count > 0) this.firstPiece();
    if (this.picker.complete) { void this.complete(); return; }
    this.ctx.register(this);
    this.connect(this.spec.peers);
    this.lastRefresh = this.ctx.clock();
    this.startedAt = this.lastRefresh;
  }

  // ------------------------------------------------------------------------------ peers

  private torrentFor(): SessionTorrent {
    return { ...this.torrent, ext: { ...this.torrent.ext, p: this.ctx.listenPort(), ticket: this.ticket, group: this.spec.group } };
  }

  /** Dials peers we are not connected to, up to the cap. */
  connect(peers: PeerInfo[]): void {
    if (this.state !== 'downloading' || this.finishing) return;
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
      const s = dial(ep.host, ep.port, (t) => new PeerSession({ transport: t, owner: this, torrent: this.torrentFor(), clock: this.ctx.clock, remote: addr }));
      this.sessions.set(s.key, s);
      this.byAddr.set(addr, s);
      this.identity.set(s, addr);
    }
  }

  adopt(s: PeerSession): void {
    s.owner = this;
    const ip = s.remote.slice(0, s.remote.lastIndexOf(':'));
    const port = s.peerExt?.p;
    const id = port ? formatEndpoint({ host: ip, port }) : s.remote;
    this.identity.set(s, id);
    if (this.banned.has(id) || this.sessions.size >= MAX_PEERS + EXTRA_INCOMING_PEERS_PER_DOWNLOAD) { s.close(); return; }
    this.sessions.set(s.key, s);
    if (port && !this.byAddr.has(id)) this.byAddr.set(id, s);
    this.onActive(s);
  }

  onActive(s: PeerSession): void {
    const idHex = s.peerHandshake!.peerId.toString('hex');
    if (s.peerHandshake!.peerId.equals(this.ctx.peerId)) {
      // One of our own addresses: never dial it again.
      const id = this.identity.get(s);
      if (s.outgoing && id !== undefined) this.selfAddrs.add(id);
      s.close(new CoterieError('NOT_A_PEER', 'connected to ourselves'));
      return;
    }
    if (this.bannedIds.has(idHex)) { s.close(new CoterieError('ACCESS_DENIED', 'banned peer')); return; }
    const other = this.peerIds.get(idHex);
    if (other && other !== s && !other.closed) {
      // Two connections to one peer (both dialled at once). Both sides must drop the same one:
      // keep the connection dialled by the side with the smaller peer id.
      const keepOutgoing = Buffer.compare(this.ctx.peerId, s.peerHandshake!.peerId) < 0;
      const keepNew = s.outgoing !== other.outgoing && s.outgoing === keepOutgoing;
      if (!keepNew) { s.close(); return; }
      other.close();
    }
    this.peerIds.set(idHex, s);
    const picker = this.picker;
    if (!picker || this.state !== 'downloading') { s.close(); return; }
    s.sendBitfield(picker.have);
    s.uploader = new Uploader(s, this.part!, this.ctx.upLimiter);
    this.unchoker.add(s);
    if (s.peerInterested) this.unchoker.interestChanged();
  }

  onPeerPieces(s: PeerSession): void {
    const picker = this.picker;
    if (!picker) return;
    const has = s.peerHas!;
    picker.peerJoined(s.key, has.full ? 'all' : has);
    this.joined.add(s.key);
    this.updateInterest(s);
  }

  onHave(s: PeerSession, piece: number): void {
    const picker = this.picker;
    if (!picker) return;
    picker.peerHave(s.key, piece);
    if (!s.amInterested) this.updateInterest(s);
  }

  private updateInterest(s: PeerSession): void {
    const picker = this.picker;
    if (!picker || !this.joined.has(s.key)) return;
    const want = !this.finishing && picker.isInteresting(s.key);
    s.setInterested(want);
    if (want) this.refill(s);
  }

  onChoke(s: PeerSession): void { this.picker?.peerChoked(s.key); }
  onUnchoke(s: PeerSession): void { this.refill(s); }
  onInterest(): void { this.unchoker.interestChanged(); }
  onReadDone(s: PeerSession): void { this.refill(s); }

  onBlock(s: PeerSession, piece: number, begin: number, data: Buffer): void {
    const asm = this.asm;
    if (!asm || this.state !== 'downloading') return;
    if (this.snubbed.size !== 0) this.snubbed.delete(s.key);
    this.meter.add(data.length, s.now);
    let r: ReturnType<PieceAssembler['block']>;
    try {
      r = asm.block(s.key, this.identity.get(s) ?? s.remote, piece, begin, data);
    } catch (err) {
      if (err instanceof CoterieError && err.code === 'IO') { this.fail(err); return; }
      throw err; // a ProtocolError: closes this session only
    }
    for (const c of asm.cancels) this.sessions.get(c.peer)?.sendCancel(c.req);
    if (r === 'verified' || r === 'writing') {
      for (const who of asm.culprits) this.ban(who);
      if (r === 'verified') this.pieceVerified(piece);
    } else if (r === 'failed') this.pieceFailed(piece, asm.lastContributors);
  }

  private pieceVerified(piece: number): void {
    this.piecesFetched++;
    this.firstPiece();
    const picker = this.picker!;
    for (const s of this.sessions.values()) {
      if (s.state !== 'active') continue;
      // HAVE suppression: a peer that has the piece does not need to hear about it.
      if (!s.peerHas!.get(piece)) s.sendHave(piece);
      if (s.amInterested && !picker.isInteresting(s.key)) s.setInterested(false);
    }
    if (picker.complete) void this.complete();
  }

  private pieceFailed(piece: number, from: string[]): void {
    this.log.warn({ piece, from }, 'piece failed its hash check');
    if (from.length === 1) { this.ban(from[0]!); return; }
    for (const id of from) {
      const n = (this.strikes.get(id) ?? 0) + 1;
      this.strikes.set(id, n);
      if (n >= STRIKES_TO_BAN) this.ban(id);
    }
  }

  private ban(id: string): void {
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

  private firstPiece(): void {
    if (this.firstPieceSent) return;
    this.firstPieceSent = true;
    try { this.spec.onFirstPiece?.(); } catch (err) { this.log.warn({ err: describe(err) }, 'onFirstPiece failed'); }
  }

  /** Tops up the requests in flight to `s` in one batch. */
  private refill(s: PeerSession): void {
    const picker = this.picker;
    if (!picker || this.state !== 'downloading' || this.finishing || s.peerChoking || !s.amInterested || s.state !== 'active') return;
    const depth = this.snubbed.has(s.key) ? SNUBBED_DEPTH : s.pipelineDepth(this.ctx.maxPipeline);
    const out = picker.outstanding(s.key);
    // Refill in batches of a quarter of the pipeline: one write for many requests (PERF-NOTES).
    if (out > depth - (depth >> 2)) return;
    const lim = this.ctx.downLimiter;
    if (lim !== null) {
      const d = lim.delay();
      if (d > 0) { this.refillLater(d); return; }
    }
    const reqs = this.reqs;
    reqs.length = 0;
    const n = picker.next(s.key, depth - out, reqs);
    if (n === 0) {
      if (!picker.isInteresting(s.key)) s.setInterested(false);
      return;
    }
    s.sendRequests(reqs, 0, n);
    if (lim !== null) {
      let bytes = 0;
      for (let i = 0; i < n; i++) bytes += reqs[i]!.length;
      lim.reserve(bytes);
    }
  }

  private refillLater(ms: number): void {
    if (this.refillTimer !== null) return;
    this.refillTimer = setTimeout(() => {
      this.refillTimer = null;
      for (const s of this.sessions.values()) this.refill(s);
    }, ms);
    this.refillTimer.unref();
  }

  /** Payload bytes this download served to other peers. */
  get uploaded(): number {
    let n = this.uploadedClosed;
    for (const s of this.sessions.values()) n += s.uploader?.served ?? 0;
    return n;
  }

  onClose(s: PeerSession, err?: Error): void {
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
    if (this.joined.delete(s.key)) this.picker?.peerLeft(s.key);
    this.unchoker.remove(s);
    if (err) this.log.debug({ peer: s.remote, err: describe(err) }, 'peer closed');
    // Its requests went back to the pool: other peers may take them now.
    if (this.state === 'downloading') for (const o of this.sessions.values()) this.refill(o);
  }

  // ------------------------------------------------------------------------------ timers

  /** Timeouts, stalls, unchoke rounds, peer refresh; the engine calls it about once a second. */
  tick(now: number): void {
    if (this.state !== 'downloading') return;
    for (const s of [...this.sessions.values()]) s.tick();
    const picker = this.picker;
    if (!picker) return;
    let useful = 0;
    for (const s of this.sessions.values()) {
      if (s.state !== 'active') continue;
      if (picker.outstanding(s.key) > 0 && now - s.lastBlockAt > STALL_MS && !this.snubbed.has(s.key)) {
        this.log.debug({ peer: s.remote, outstanding: picker.outstanding(s.key) }, 'peer stalled: requests moved to other peers');
        this.snubbed.add(s.key);
        this.stalls++;
        picker.peerChoked(s.key);
      }
      if (this.joined.has(s.key) && picker.isInteresting(s.key)) useful++;
      this.refill(s);
    }
    this.unchoker.tick(now);
    const starved = useful === 0;
    const every = starved ? STARVED_REFRESH_MS : now - this.startedAt < EARLY_WINDOW_MS ? EARLY_REFRESH_MS : REFRESH_MS;
    if (!this.finishing && now - this.lastRefresh >= every) this.refresh(now);
  }

  private refresh(now: number): void {
    if (this.refreshing) return;
    this.refreshing = true;
    this.lastRefresh = now;
    this.spec.refreshPeers().then(({ peers, ticket }) => {
      if (ticket !== undefined) this.ticket = ticket;
      this.connect(peers);
    }, (err: unknown) => {
      this.log.warn({ err: describe(err) }, 'peer refresh failed');
    }).finally(() => { this.refreshing = false; });
  }

  // -------------------------------------------------------------------------- completion

  private async complete(): Promise<void> {
    if (this.finishing) return;
    this.finishing = true;
    this.verifiedAt = this.ctx.clock();
    for (const s of this.sessions.values()) s.setInterested(false);
    const part = this.part!;
    try {
      await part.finish(this.spec.sha256);
    } catch (err) {
      this.fail(err as Error);
      return;
    }
    if (this.state !== 'downloading') return;
    this.state = 'complete';
    // Figures for benchmarks and diagnosis: duplicate or unusable block bytes, bytes served so far,
    // and the time from the last verified piece to complete (whole-file SHA-256, rename).
    this.log.info({
      fetched: this.piecesFetched, wastedBytes: this.asm?.wasted ?? 0, uploadedBytes: this.uploaded,
      tailMs: this.verifiedAt > 0 ? Math.round(this.ctx.clock() - this.verifiedAt) : null,
    }, 'download complete');
    this.stopTimers();
    this.ctx.unregister(this);
    const live = [...this.sessions.values()].filter((s) => s.state === 'active');
    this.uploadedClosed = this.uploaded;
    this.sessions.clear();
    this.ctx.completed(this, live);
    this.asm?.dispose();
    this.resolveDone();
    try { this.spec.onDone?.({ ok: true }); } catch (err) { this.log.warn({ err: describe(err) }, 'onDone failed'); }
  }

  private fail(err: Error): void {
    if (this.state !== 'downloading') return;
    this.state = 'failed';
    this.error = err;
    this.log.error({ err: describe(err) }, 'download failed');
    this.shutdown();
    try { this.spec.onDone?.({ ok: false, error: err }); } catch (e) { this.log.warn({ err: describe(e) }, 'onDone failed'); }
  }

  /** Stops, keeping verified pieces for a later resume. */
  pause(): void {
    if (this.state !== 'downloading') return;
    this.state = 'paused';
    this.shutdown();
  }

  private shutdown(): void {
    this.stopTimers();
    this.ctx.unregister(this);
    for (const s of [...this.sessions.values()]) s.close(); // onClose adds what each served
    this.sessions.clear();
    this.asm?.dispose();
    this.part?.close();
    this.resolveDone();
  }

  private stopTimers(): void {
    if (this.refillTimer !== null) { clearTimeout(this.refillTimer); this.refillTimer = null; }
  }

  status(): DownloadStatus {
    const m = this.manifest;
    const have = this.picker?.have ?? this.part?.have;
    let bytesDone = 0;
    if (this.state === 'complete') bytesDone = m.length;
    else if (have) {
      bytesDone = have.count * m.pieceLength;
      if (m.pieceCount > 0 && have.get(m.pieceCount - 1)) bytesDone -= m.pieceCount * m.pieceLength - m.length;
    }
    const rate = this.state === 'downloading' ? this.meter.rate() : 0;
    let peers = 0;
    for (const s of this.sessions.values()) if (s.state === 'active') peers++;
    return {
      id: this.spec.id, group: this.spec.group, name: m.name, destPath: this.spec.destPath, state: this.state,
      bytesDone, length: m.length, rate,
      etaSeconds: this.state === 'complete' ? 0 : rate > 0 ? Math.ceil((m.length - bytesDone) / rate) : null,
      peers,
      ...(this.error ? { error: this.error.message } : {}),
    };
  }
}
