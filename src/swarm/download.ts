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
 * That peer bookkeeping (sessions, identities, bans, strikes, snubs, refresh) is a {@link PeerSet};
 * this file keeps the piece flow (picker, assembler, .part file, requests, completion).
 */
import type { Logger } from 'pino';
import { CoterieError, describe } from '../common/errors.js';
import type { Endpoint } from '../common/config.js';
import type { DownloadSpec, DownloadStatus, Manifest, PeerInfo, ResumeStore } from './api.js';
import { PieceAssembler } from './assembler.js';
import { Picker, type BlockRequest } from './picker/index.js';
import type { TorrentHost } from './peer-server.js';
import { MAX_PEERS, PeerSet } from './peer-set.js';
import { RateMeter, type Clock, type TokenBucket } from './rate-limit.js';
import { CLIENT_VERSION, type HostContext } from './seed-host.js';
import type { PeerSession, SessionOwner, SessionTorrent } from './session.js';
import { PartFile } from './storage.js';
import { Unchoker } from './unchoker.js';
import { Uploader } from './uploader.js';
import { MAX_QUEUED_REQUESTS } from './limits.js';

export { MAX_PEERS, REFRESH_MS, STARVED_REFRESH_MS, EARLY_REFRESH_MS, EARLY_WINDOW_MS } from './peer-set.js';
export const STALL_MS = 5_000;
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
  /** Times a peer stalled and had its requests moved to others. */
  stalls = 0;
  /** Clock time when the last piece was verified (before the whole-file check), or 0. */
  verifiedAt = 0;

  private part: PartFile | null = null;
  private picker: Picker | null = null;
  private asm: PieceAssembler | null = null;
  private readonly log: Logger;
  /** Our peers: sessions, identities, bans, snubs, refresh. */
  private readonly peers: PeerSet;
  private readonly joined = new Set<number>();
  private readonly unchoker: Unchoker;
  private readonly meter: RateMeter;
  private readonly reqs: BlockRequest[] = [];
  private firstPieceSent = false;
  private refillTimer: NodeJS.Timeout | null = null;
  private finishing = false;
  private readonly done: Promise<void>;
  private resolveDone!: () => void;

  constructor(readonly spec: DownloadSpec, private readonly ctx: DownloadContext) {
    this.manifest = spec.manifest;
    this.log = ctx.logger.child({ download: spec.id, file: spec.manifest.name });
    const m = spec.manifest;
    this.torrent = {
      infoHash: m.infoHash,
      geometry: { pieceCount: m.pieceCount, pieceLength: m.pieceLength, totalLength: m.length },
      peerId: ctx.peerId,
      // No ticket towards peers that dial us: a ticket is a credential, shown only to seeders we chose.
      ext: { m: {}, v: CLIENT_VERSION, p: ctx.listenPort(), reqq: MAX_QUEUED_REQUESTS },
    };
    this.peers = new PeerSet(this, spec, ctx, this.torrent, this.log);
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
    this.peers.started(this.ctx.clock());
  }

  // ------------------------------------------------------------------------------ peers

  /** Dials peers we are not connected to, up to the cap. */
  connect(peers: PeerInfo[]): void {
    if (this.state !== 'downloading' || this.finishing) return;
    this.peers.dial(peers);
  }

  adopt(s: PeerSession): void {
    s.owner = this;
    if (this.peers.admit(s)) this.onActive(s);
  }

  onActive(s: PeerSession): void {
    if (!this.peers.accept(s)) return;
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
    const peers = this.peers;
    if (peers.snubbed.size !== 0) peers.snubbed.delete(s.key);
    this.meter.add(data.length, s.now);
    let r: ReturnType<PieceAssembler['block']>;
    try {
      r = asm.block(s.key, peers.idOf(s), piece, begin, data);
    } catch (err) {
      if (err instanceof CoterieError && err.code === 'IO') { this.fail(err); return; }
      throw err; // a ProtocolError: closes this session only
    }
    for (const c of asm.cancels) peers.sessions.get(c.peer)?.sendCancel(c.req);
    if (r === 'verified' || r === 'writing') {
      for (const who of asm.culprits) peers.ban(who);
      if (r === 'verified') this.pieceVerified(piece);
    } else if (r === 'failed') this.pieceFailed(piece, asm.lastContributors);
  }

  private pieceVerified(piece: number): void {
    this.piecesFetched++;
    this.firstPiece();
    const picker = this.picker!;
    for (const s of this.peers.sessions.values()) {
      if (s.state !== 'active') continue;
      // HAVE suppression: a peer that has the piece does not need to hear about it.
      if (!s.peerHas!.get(piece)) s.sendHave(piece);
      if (s.amInterested && !picker.isInteresting(s.key)) s.setInterested(false);
    }
    if (picker.complete) void this.complete();
  }

  private pieceFailed(piece: number, from: string[]): void {
    this.log.warn({ piece, from }, 'piece failed its hash check');
    this.peers.blame(from);
  }

  /** Addresses banned by this download (for status and tests). */
  get bannedPeers(): string[] { return this.peers.bannedPeers; }

  private firstPiece(): void {
    if (this.firstPieceSent) return;
    this.firstPieceSent = true;
    try { this.spec.onFirstPiece?.(); } catch (err) { this.log.warn({ err: describe(err) }, 'onFirstPiece failed'); }
  }

  /** Tops up the requests in flight to `s` in one batch. */
  private refill(s: PeerSession): void {
    const picker = this.picker;
    if (!picker || this.state !== 'downloading' || this.finishing || s.peerChoking || !s.amInterested || s.state !== 'active') return;
    const depth = this.peers.snubbed.has(s.key) ? SNUBBED_DEPTH : s.pipelineDepth(this.ctx.maxPipeline);
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
      for (const s of this.peers.sessions.values()) this.refill(s);
    }, ms);
    this.refillTimer.unref();
  }

  /** Payload bytes this download served to other peers. */
  get uploaded(): number { return this.peers.uploaded; }

  onClose(s: PeerSession, err?: Error): void {
    this.peers.remove(s);
    if (this.joined.delete(s.key)) this.picker?.peerLeft(s.key);
    this.unchoker.remove(s);
    if (err) this.log.debug({ peer: s.remote, err: describe(err) }, 'peer closed');
    // Its requests went back to the pool: other peers may take them now.
    if (this.state === 'downloading') for (const o of this.peers.sessions.values()) this.refill(o);
  }

  // ------------------------------------------------------------------------------ timers

  /** Timeouts, stalls, unchoke rounds, peer refresh; the engine calls it about once a second. */
  tick(now: number): void {
    if (this.state !== 'downloading') return;
    const peers = this.peers;
    for (const s of [...peers.sessions.values()]) s.tick();
    const picker = this.picker;
    if (!picker) return;
    let useful = 0;
    for (const s of peers.sessions.values()) {
      if (s.state !== 'active') continue;
      if (picker.outstanding(s.key) > 0 && now - s.lastBlockAt > STALL_MS && !peers.snubbed.has(s.key)) {
        this.log.debug({ peer: s.remote, outstanding: picker.outstanding(s.key) }, 'peer stalled: requests moved to other peers');
        peers.snubbed.add(s.key);
        this.stalls++;
        picker.peerChoked(s.key);
      }
      if (this.joined.has(s.key) && picker.isInteresting(s.key)) useful++;
      this.refill(s);
    }
    this.unchoker.tick(now);
    if (!this.finishing) peers.refreshIfDue(now, useful === 0);
  }

  // -------------------------------------------------------------------------- completion

  private async complete(): Promise<void> {
    if (this.finishing) return;
    this.finishing = true;
    this.verifiedAt = this.ctx.clock();
    for (const s of this.peers.sessions.values()) s.setInterested(false);
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
    this.ctx.completed(this, this.peers.handOver());
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
    this.peers.closeAll();
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
    for (const s of this.peers.sessions.values()) if (s.state === 'active') peers++;
    return {
      id: this.spec.id, group: this.spec.group, name: m.name, destPath: this.spec.destPath, state: this.state,
      bytesDone, length: m.length, rate,
      etaSeconds: this.state === 'complete' ? 0 : rate > 0 ? Math.ceil((m.length - bytesDone) / rate) : null,
      peers,
      ...(this.error ? { error: this.error.message } : {}),
    };
  }
}
