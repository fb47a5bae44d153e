/**
 * One complete file we seed: the peers connected to it, the unchoke rounds, and serving their
 * requests from the file by positional reads. The file may be shared in several groups; the host
 * lives while at least one group remains.
 */
import type { Logger } from 'pino';
import { describe } from '../common/errors.js';
import type { Manifest } from './api.js';
import { Bitfield } from './bitfield.js';
import type { TorrentHost } from './peer-server.js';
import type { PeerSession, SessionOwner, SessionTorrent } from './session.js';
import { FdCache, SeedSource } from './seed-files.js';
import type { TokenBucket } from './rate-limit.js';
import { Unchoker } from './unchoker.js';
import { Uploader, type BlockSource } from './uploader.js';
import { MAX_QUEUED_REQUESTS } from './limits.js';

/** What hosts share from the engine. */
export interface HostContext {
  peerId: Buffer;
  /** Our listen port, advertised in the extended handshake. */
  listenPort: () => number;
  logger: Logger;
  upLimiter: TokenBucket | null;
  fdCache: FdCache;
}

export const CLIENT_VERSION = 'Coterie 0.1';

/**
 * Serves one complete file to the peers that asked for it. Invariants: every session it holds
 * is active and has an uploader reading the file; it never requests anything; two seeds
 * disconnect (nothing to trade).
 */
export class SeedHost implements TorrentHost, SessionOwner {
  readonly torrent: SessionTorrent;
  readonly source: BlockSource;
  private readonly groupSet = new Set<string>();
  private readonly unchoker: Unchoker;
  private readonly allPieces: Bitfield;
  /** Payload bytes served to peers. */
  uploaded = 0;

  constructor(readonly manifest: Manifest, readonly path: string, private readonly ctx: HostContext) {
    this.torrent = {
      infoHash: manifest.infoHash,
      geometry: { pieceCount: manifest.pieceCount, pieceLength: manifest.pieceLength, totalLength: manifest.length },
      peerId: ctx.peerId,
      ext: { m: {}, v: CLIENT_VERSION, p: ctx.listenPort(), reqq: MAX_QUEUED_REQUESTS },
    };
    this.source = new SeedSource(path, manifest, ctx.fdCache);
    this.unchoker = new Unchoker((s) => s.up.rate());
    this.allPieces = Bitfield.allSet(manifest.pieceCount);
  }

  get sessions(): ReadonlySet<PeerSession> { return this.unchoker.sessions; }

  groups(): string[] { return [...this.groupSet]; }
  addGroup(g: string): void { this.groupSet.add(g); }
  removeGroup(g: string): boolean { this.groupSet.delete(g); return this.groupSet.size > 0; }

  adopt(s: PeerSession): void {
    s.owner = this;
    this.onActive(s);
  }

  /**
   * Takes over `s` from a download of the same file that just completed: its uploader now reads
   * from the complete file.
   */
  takeOver(s: PeerSession): void {
    s.owner = this;
    s.uploader = new Uploader(s, this.source, this.ctx.upLimiter);
    this.unchoker.add(s);
    // We now have every piece: announce the ones the peer has not seen from us.
    if (s.peerInterested) this.unchoker.interestChanged();
  }

  onActive(s: PeerSession): void {
    s.sendBitfield(this.allPieces);
    s.uploader = new Uploader(s, this.source, this.ctx.upLimiter);
    this.unchoker.add(s);
    if (s.peerInterested) this.unchoker.interestChanged();
  }

  onPeerPieces(s: PeerSession): void {
    // Two seeds have nothing to trade.
    if (s.peerHas?.full) s.close();
  }

  onHave(): void { /* a seed needs nothing */ }
  onChoke(): void { /* we never request */ }
  onUnchoke(): void { /* idem */ }
  onInterest(): void { this.unchoker.interestChanged(); }
  onBlock(): void { /* never requested: ignored */ }

  onClose(s: PeerSession, err?: Error): void {
    this.uploaded += s.uploader?.served ?? 0;
    this.unchoker.remove(s);
    if (err) this.ctx.logger.debug({ remote: s.remote, file: this.manifest.name, err: describe(err) }, 'seed peer closed');
  }

  /** Timeouts, keep-alives, unchoke rounds. */
  tick(now: number): void {
    for (const s of [...this.unchoker.sessions]) s.tick();
    this.unchoker.tick(now);
  }

  /** Disconnects every peer (unseed). */
  close(): void {
    for (const s of [...this.unchoker.sessions]) s.close();
    this.ctx.fdCache.drop(this.path);
  }
}
