/**
 * One peer connection's protocol state machine, between the codec and the owner (a download or
 * a seeded file) and apart from sockets: bytes come in through {@link PeerSession.readTarget} /
 * {@link PeerSession.onRead} (a socket's `onread`) or {@link PeerSession.onData} (any chunk), and go
 * out through a {@link SessionTransport}, so tests drive it with in-memory pairs.
 *
 * It owns: the handshake sequence (BitTorrent handshake, then the BEP 10 extended handshake when
 * both sides support it), choke/interest state both ways, the peer's pieces, rate meters, the
 * timeouts (handshake 10 s, idle 120 s) and keep-alives (60 s), driven by {@link PeerSession.tick}
 * with an injected clock. It calls up into a {@link SessionOwner} it does not own (as syncthing's
 * protocol calls its model). It never decides what to request or whom to unchoke; the requests in
 * flight (and the frames that change them) are kept by its {@link RequestPipeline}. The contract
 * types (transport, torrent, owner) live in `session-types.ts` and are re-exported here.
 *
 * Lifecycle: 'handshake' -> (incoming only, when the peer supports BEP 10) 'ext' -> 'active' ->
 * 'closed'. Any ProtocolError while parsing closes the session (grounds for disconnect); the
 * owner's `onClose` is called exactly once.
 */
import { randomBytes } from 'node:crypto';
import { CoterieError, ProtocolError } from '../common/errors.js';
import { Bitfield } from './bitfield.js';
import {
  CHOKE, INTERESTED, KEEP_ALIVE, NOT_INTERESTED, UNCHOKE, encodeBitfield, encodeExtended, encodeHandshake, encodeHaves, WireDecoder,
  type BlockRef, type Handshake, type WireHandler,
} from './wire/codec.js';
import { decodeExtHandshake, encodeExtHandshake, type ExtHandshake } from './wire/extended.js';
import { ReadBuffer } from './wire/read-buffer.js';
import { RateMeter, monotonicMs, type Clock } from './rate-limit.js';
import { queueHaveFlush } from './have-queue.js';
import { RequestPipeline } from './request-pipeline.js';
import type { SessionOptions, SessionOwner, SessionState, SessionTorrent, SessionTransport } from './session-types.js';
import type { Uploader } from './uploader.js';
import {
  HANDSHAKE_TIMEOUT_MS, IDLE_TIMEOUT_MS, KEEPALIVE_MS, MAX_PIPELINE, MAX_REQUESTS_WHILE_CHOKED, MAX_UNREQUESTED_BYTES,
} from './limits.js';

export { HANDSHAKE_TIMEOUT_MS, IDLE_TIMEOUT_MS, KEEPALIVE_MS, MAX_PIPELINE, MAX_REQUESTS_WHILE_CHOKED, MAX_UNREQUESTED_BYTES };
export { MIN_PIPELINE } from './request-pipeline.js';
export type { SessionOptions, SessionOwner, SessionState, SessionTorrent, SessionTransport };

/** A 20-byte peer id in Azureus style: `-CT0001-` and 12 random bytes. */
export function makePeerId(): Buffer {
  return Buffer.concat([Buffer.from('-CT0001-', 'latin1'), randomBytes(12)]);
}

let nextKey = 1;

/**
 * One connection. Invariants: `torrent` and `peerHas` are set from the moment the info-hash is
 * known (at once for outgoing sessions, on `attach` for incoming ones); the owner hears about
 * the peer's pieces once ({@link SessionOwner.onPeerPieces}) before any single HAVE; after
 * 'closed' nothing more is read, written or reported. Input is capped by the decoder (one frame
 * at most is held), output is whatever the owner sends.
 */
export class PeerSession implements WireHandler {
  /** Small integer id, unique in the process (the picker's PeerKey). */
  readonly key = nextKey++;
  readonly remote: string;
  readonly outgoing: boolean;
  state: SessionState = 'handshake';
  owner: SessionOwner;
  torrent: SessionTorrent | null = null;

  amChoking = true;
  amInterested = false;
  peerChoking = true;
  peerInterested = false;
  /** The peer's pieces (empty until its bitfield/HAVEs arrive). Null until the torrent is known. */
  peerHas: Bitfield | null = null;
  peerHandshake: Handshake | null = null;
  peerExt: ExtHandshake | null = null;
  /** Set by the owner when it serves this peer. */
  uploader: Uploader | null = null;
  /** HAVEs waiting for the end of this event-loop turn. */
  private readonly haves: number[] = [];

  readonly down: RateMeter;
  readonly up: RateMeter;
  /** Clock reading at the start of the current read (one clock call per read, not per block). */
  now: number;
  readonly openedAt: number;
  lastRecvAt: number;
  lastSendAt: number;

  private readonly transport: SessionTransport;
  private readonly clock: Clock;
  private readonly decoder: WireDecoder;
  private readonly reader: ReadBuffer;
  /** A core (non-extended) message arrived, so the peer's pieces are known. */
  private sawCore = false;
  /** REQUESTs received while we choke the peer, since we last choked it. */
  private chokedRequests = 0;
  /** What we asked this peer for (see {@link RequestPipeline}). */
  private readonly pipe: RequestPipeline;
  /**
   * Clock time at which the access ticket that admitted this (incoming) peer expires: the session
   * is closed then, so a ticket does not outlive itself on a connection opened while it was good.
   * Null: no deadline (open access, or a peer we dialled).
   */
  accessDeadline: number | null = null;
  private announced = false;
  private closeErr: Error | undefined;

  constructor(opts: SessionOptions) {
    this.transport = opts.transport;
    this.owner = opts.owner;
    this.clock = opts.clock ?? monotonicMs;
    this.remote = opts.remote ?? '?';
    this.outgoing = opts.torrent !== undefined;
    this.now = this.openedAt = this.lastRecvAt = this.lastSendAt = this.clock();
    this.pipe = new RequestPipeline(this.now);
    this.down = new RateMeter(this.clock);
    this.up = new RateMeter(this.clock);
    this.decoder = new WireDecoder(this);
    this.reader = new ReadBuffer(this.decoder);
    if (opts.torrent) this.setTorrent(opts.torrent);
  }

  get closed(): boolean { return this.state === 'closed'; }

  /** Blocks asked of this peer and not yet answered ({@link RequestPipeline.requested}). */
  get requested(): Set<number> { return this.pipe.requested; }
  /** PIECE bytes from this peer that answered no request of ours. */
  get unrequestedBytes(): number { return this.pipe.unrequestedBytes; }
  /** When the last block arrived (or when we were last unchoked, whichever is later). */
  get lastBlockAt(): number { return this.pipe.lastBlockAt; }

  private setTorrent(t: SessionTorrent): void {
    this.torrent = t;
    this.pipe.setPieceLength(t.geometry.pieceLength);
    this.decoder.setGeometry(t.geometry);
    this.peerHas = new Bitfield(t.geometry.pieceCount);
  }

  /** Outgoing: sends our handshake. */
  start(): void {
    const t = this.torrent;
    if (!t) throw new Error('start() needs a torrent (outgoing sessions)');
    this.send(encodeHandshake(t.infoHash, t.peerId));
  }

  /**
   * Incoming: the owner resolved the peer's info-hash to a torrent it serves; `owner` takes over.
   * Sends our handshake (and extended handshake if the peer supports it).
   */
  attach(t: SessionTorrent, owner: SessionOwner): void {
    if (this.outgoing || this.torrent !== null || this.peerHandshake === null) throw new Error('attach() is for incoming sessions after the handshake');
    this.setTorrent(t);
    this.owner = owner;
    this.send(encodeHandshake(t.infoHash, t.peerId));
    if (this.peerHandshake.extended) {
      this.send(encodeExtended(0, encodeExtHandshake(t.ext)));
      // Wait for the peer's extended handshake: it carries the access ticket.
      this.state = 'ext';
    } else {
      this.activate();
    }
  }

  private activate(): void {
    this.state = 'active';
    this.owner.onActive(this);
    if (this.state === 'active' && this.sawCore) this.announce();
  }

  private announce(): void {
    this.announced = true;
    this.owner.onPeerPieces(this);
  }

  /** A core message arrived: once active, the peer's initial pieces are settled. */
  private core(): void {
    if (!this.sawCore) {
      this.sawCore = true;
      if (this.state === 'active') this.announce();
    }
  }

  // ------------------------------------------------------------------------------ input

  /** Where the socket's next read should land (the `onread.buffer` generator). */
  readTarget(): Buffer { return this.reader.readTarget(); }

  /** `n` bytes were read into the last {@link readTarget} (the `onread.callback`). */
  onRead(n: number): void {
    if (this.state === 'closed') return;
    this.now = this.clock();
    this.lastRecvAt = this.now;
    try {
      this.reader.commit(n);
      this.afterRead();
    } catch (err) {
      this.close(err as Error);
    }
  }

  /** A chunk from elsewhere (a `'data'` event, a test pipe). */
  onData(chunk: Buffer): void {
    if (this.state === 'closed') return;
    this.now = this.clock();
    this.lastRecvAt = this.now;
    try {
      this.reader.push(chunk);
      this.afterRead();
    } catch (err) {
      this.close(err as Error);
    }
  }

  /** The transport drained its write queue: serving may go on. */
  onDrain(): void {
    if (this.state === 'active') this.uploader?.flush();
  }

  private afterRead(): void {
    if (this.state !== 'active') return;
    this.owner.onReadDone?.(this);
    if (this.state === 'active') this.uploader?.flush();
  }

  onHandshake(h: Handshake): void {
    this.peerHandshake = h;
    if (this.outgoing) {
      const t = this.torrent!;
      if (!h.infoHash.equals(t.infoHash)) throw new ProtocolError('handshake for another torrent');
      if (h.extended) this.send(encodeExtended(0, encodeExtHandshake(t.ext)));
      this.activate();
      return;
    }
    const o = this.owner;
    if (!o.onHandshake) throw new ProtocolError('unexpected handshake');
    o.onHandshake(this, h);
    if (this.state === 'handshake') throw new ProtocolError('no torrent for this info-hash');
  }

  onKeepAlive(): void { /* lastRecvAt already updated */ }

  onChoke(): void {
    this.core();
    if (this.peerChoking) return;
    this.peerChoking = true;
    this.pipe.choked();
    if (this.state === 'active') this.owner.onChoke(this);
  }

  onUnchoke(): void {
    this.core();
    if (!this.peerChoking) return;
    this.peerChoking = false;
    this.pipe.unchoked(this.now);
    if (this.state === 'active') this.owner.onUnchoke(this);
  }

  onInterested(): void { this.setPeerInterest(true); }
  onNotInterested(): void { this.setPeerInterest(false); }

  private setPeerInterest(v: boolean): void {
    this.core();
    if (this.peerInterested === v) return;
    this.peerInterested = v;
    if (!v) this.uploader?.clear();
    if (this.state === 'active') this.owner.onInterest(this, v);
  }

  onHave(piece: number): void {
    const has = this.peerHas!;
    const fresh = !has.get(piece);
    has.set(piece);
    if (!this.sawCore) { this.core(); return; }
    if (fresh && this.announced) this.owner.onHave(this, piece);
  }

  onBitfield(bytes: Buffer): void {
    const bf = Bitfield.fromWire(this.peerHas!.length, bytes);
    const has = this.peerHas!;
    if (!this.sawCore) {
      // The usual case: the first core message. Merge (HAVE-less) and announce once.
      for (const p of bf) has.set(p);
      this.core();
      return;
    }
    // A late bitfield (some clients send HAVEs first): report what is new, piece by piece.
    for (const p of bf) {
      if (has.get(p)) continue;
      has.set(p);
      if (this.announced) this.owner.onHave(this, p);
    }
  }

  onRequest(piece: number, begin: number, length: number): void {
    this.core();
    // A request while we choke it is a harmless race (it had not seen our CHOKE yet): dropped.
    // A stream of them is not: past the limit the peer is disconnected.
    if (this.amChoking) {
      if (++this.chokedRequests > MAX_REQUESTS_WHILE_CHOKED) throw new ProtocolError(`more than ${MAX_REQUESTS_WHILE_CHOKED} requests while choked`);
      return;
    }
    if (this.state !== 'active' || this.uploader === null) return;
    this.uploader.enqueue(piece, begin, length);
  }

  onCancel(piece: number, begin: number, length: number): void {
    this.core();
    this.uploader?.cancel(piece, begin, length);
  }

  onPiece(piece: number, begin: number, data: Buffer): void {
    this.core();
    // Never asked, cancelled, or a repeat: dropped (a stream of them throws, a flood).
    if (!this.pipe.answered(piece, begin, data.length, this.now)) return;
    this.down.add(data.length, this.now);
    if (this.state === 'active') this.owner.onBlock(this, piece, begin, data);
  }

  onExtended(id: number, payload: Buffer): void {
    if (id === 0) {
      if (this.peerExt !== null) return; // a later update (e.g. upload_only): nothing we use
      this.peerExt = decodeExtHandshake(payload);
      if (this.state === 'ext') this.activate();
      return;
    }
    if (this.state === 'active') this.owner.onExtended?.(this, id, payload);
  }

  // ----------------------------------------------------------------------------- output

  /** Writes raw bytes (already framed). Returns false when the transport is congested. */
  send(buf: Uint8Array, cb?: (err?: Error | null) => void): boolean {
    if (this.state === 'closed') { cb?.(new Error('closed')); return false; }
    this.lastSendAt = this.now;
    return this.transport.write(buf, cb);
  }

  get writableLength(): number { return this.transport.writableLength; }
  cork(): void { this.transport.cork(); }
  uncork(): void { this.transport.uncork(); }

  sendBitfield(bf: Bitfield): void {
    if (bf.count > 0) this.send(encodeBitfield(bf.bytes()));
  }

  /**
   * Announces a piece. HAVEs are queued and written once per event-loop turn, all of a turn's in
   * one write ({@link flushHaves}). Why: with Nagle off each HAVE was its own write and its own
   * 9-byte segment, waking the peer's process; in the 256 MiB 1 -> 8 swarm a downloader may send
   * up to 7 peers x 1,024 pieces of them, and a completing download announces up to every piece
   * to each peer.
   */
  sendHave(piece: number): void {
    if (this.state === 'closed') return;
    if (this.haves.length === 0) queueHaveFlush(this);
    this.haves.push(piece);
  }

  /** Writes the queued HAVEs as one buffer. */
  flushHaves(): void {
    const n = this.haves.length;
    if (n === 0) return;
    if (this.state !== 'closed') this.send(encodeHaves(this.haves, n));
    this.haves.length = 0;
  }

  setInterested(v: boolean): void {
    if (this.amInterested === v || this.state === 'closed') return;
    this.amInterested = v;
    this.send(v ? INTERESTED : NOT_INTERESTED);
  }

  choke(): void {
    if (this.amChoking || this.state === 'closed') return;
    this.amChoking = true;
    this.chokedRequests = 0;
    // BEP 3: after a CHOKE, the peer's queued requests are discarded (it re-requests on unchoke).
    this.uploader?.clear();
    this.send(CHOKE);
  }

  unchoke(): void {
    if (!this.amChoking || this.state === 'closed') return;
    this.amChoking = false;
    this.send(UNCHOKE);
  }

  /** Sends `reqs[from..to)` as REQUEST frames in one write. */
  sendRequests(reqs: readonly BlockRef[], from = 0, to = reqs.length): void {
    const b = this.pipe.frames(reqs, from, to);
    if (b !== null) this.send(b);
  }

  /** Sends a CANCEL; a block that still arrives for it is unrequested. */
  sendCancel(r: BlockRef): void { this.send(this.pipe.cancel(r)); }

  sendExtended(id: number, payload: Uint8Array): void { this.send(encodeExtended(id, payload)); }

  /** How many blocks to keep requested from this peer, at its measured rate ({@link RequestPipeline.depth}). */
  pipelineDepth(max = MAX_PIPELINE): number {
    return this.pipe.depth(this.down.rate(this.now), this.peerExt?.reqq, max);
  }

  // ---------------------------------------------------------------------------- timers

  /** Timeouts and keep-alives; call about once a second. */
  tick(): void {
    if (this.state === 'closed') return;
    const t = this.now = this.clock();
    if (this.state !== 'active' && t - this.openedAt > HANDSHAKE_TIMEOUT_MS) {
      this.close(new CoterieError('UNAVAILABLE', `peer ${this.remote}: no handshake within ${HANDSHAKE_TIMEOUT_MS / 1000} s`));
      return;
    }
    if (t - this.lastRecvAt > IDLE_TIMEOUT_MS) {
      this.close(new CoterieError('UNAVAILABLE', `peer ${this.remote}: silent for ${IDLE_TIMEOUT_MS / 1000} s`));
      return;
    }
    if (this.accessDeadline !== null && t >= this.accessDeadline) {
      this.close(new CoterieError('ACCESS_DENIED', `peer ${this.remote}: its access ticket expired`));
      return;
    }
    if (this.state === 'active' && t - this.lastSendAt >= KEEPALIVE_MS) this.send(KEEP_ALIVE);
  }

  // ----------------------------------------------------------------------------- close

  /** Why the session closed (undefined for an orderly close). */
  get error(): Error | undefined { return this.closeErr; }

  /** Closes the connection; the owner's onClose runs once. Safe to call from any callback. */
  close(err?: Error): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.closeErr = err;
    this.decoder.stop();
    this.uploader?.clear();
    try { this.transport.destroy(); } catch { /* already gone */ }
    this.owner.onClose(this, err);
  }

  /** The transport is gone for good (socket 'close'): the read buffer can go back to the pool. */
  released(): void {
    if (this.state !== 'closed') this.close();
    this.reader.release();
  }
}
