/**
 * The BitTorrent peer wire codec (BEP 3, plus the BEP 10 extended message envelope). Pure: no
 * sockets, timers or per-peer policy. Encoders write bytes; {@link WireDecoder} parses a byte
 * stream into calls on a {@link WireHandler} and throws {@link ProtocolError} /
 * {@link FrameTooLargeError} on anything malformed: both are grounds for disconnecting the peer.
 *
 * Frame layout: `<length: uint32 BE><id: uint8><payload>`, length counting id + payload; a
 * length of 0 is a keep-alive. The very first 68 bytes of a connection are the handshake:
 * `<19><"BitTorrent protocol"><reserved: 8><info-hash: 20><peer-id: 20>`.
 */
import { FrameTooLargeError, ProtocolError } from '../../common/errors.js';

/** Block size we request and the largest block we serve or accept (the de facto standard). */
export const BLOCK_SIZE = 16 * 1024;
/** Largest REQUEST/CANCEL/PIECE length accepted from a peer. */
export const MAX_BLOCK_LENGTH = BLOCK_SIZE;
/** Bytes of a handshake. */
export const HANDSHAKE_LENGTH = 68;
/** Bytes of an encoded REQUEST or CANCEL frame. */
export const REQUEST_FRAME_LENGTH = 17;
/** Bytes of a PIECE frame before its block data. */
export const PIECE_HEADER_LENGTH = 13;
/** Extra room allowed above the largest legitimate frame (a few header bytes of headroom). */
const FRAME_SLACK = 64;

export const PSTR = Buffer.from('BitTorrent protocol', 'latin1');

/** Message ids (BEP 3, BEP 10). */
export const MsgId = {
  CHOKE: 0, UNCHOKE: 1, INTERESTED: 2, NOT_INTERESTED: 3, HAVE: 4, BITFIELD: 5,
  REQUEST: 6, PIECE: 7, CANCEL: 8, PORT: 9, EXTENDED: 20,
} as const;

/** The BEP 10 "extension protocol" bit: reserved byte 5, mask 0x10. */
export const RESERVED_EXTENDED_BYTE = 5;
export const RESERVED_EXTENDED_MASK = 0x10;

/** A received handshake. Buffers are copies the receiver may keep. */
export interface Handshake {
  reserved: Buffer;
  infoHash: Buffer;
  peerId: Buffer;
  /** The peer supports BEP 10 extended messages. */
  extended: boolean;
}

/**
 * The size of the torrent a connection is about, needed to validate indexes and lengths.
 * Invariants: pieceCount = ceil(totalLength / pieceLength), pieceLength > 0.
 */
export interface Geometry { pieceCount: number; pieceLength: number; totalLength: number }

/**
 * What the decoder calls, one method per message. Buffers passed in (bitfield, block data,
 * extended payload) are VIEWS into the caller's read buffer, valid only during the call: copy
 * what you keep. A handler may throw (ProtocolError for a semantic violation); the exception
 * propagates out of {@link WireDecoder.feed}.
 */
export interface WireHandler {
  onHandshake(h: Handshake): void;
  onKeepAlive(): void;
  onChoke(): void;
  onUnchoke(): void;
  onInterested(): void;
  onNotInterested(): void;
  onHave(piece: number): void;
  onBitfield(bytes: Buffer): void;
  onRequest(piece: number, begin: number, length: number): void;
  onPiece(piece: number, begin: number, data: Buffer): void;
  onCancel(piece: number, begin: number, length: number): void;
  onExtended(id: number, payload: Buffer): void;
}

/** Largest frame (length prefix excluded) a peer may send for a torrent of this geometry. */
export function maxFrameLength(g: Geometry): number {
  const bitfield = 1 + ((g.pieceCount + 7) >>> 3);
  return Math.max(bitfield, 9 + MAX_BLOCK_LENGTH) + FRAME_SLACK;
}

// ---------------------------------------------------------------------------------- encoders

function fixed(id: number): Buffer {
  const b = Buffer.alloc(5);
  b.writeUInt32BE(1, 0);
  b[4] = id;
  return b;
}

/** Constant frames. Shared and never mutated, so they may be written to many sockets. */
export const KEEP_ALIVE = Buffer.alloc(4);
export const CHOKE = fixed(MsgId.CHOKE);
export const UNCHOKE = fixed(MsgId.UNCHOKE);
export const INTERESTED = fixed(MsgId.INTERESTED);
export const NOT_INTERESTED = fixed(MsgId.NOT_INTERESTED);

/** The 8 reserved handshake bytes we send: only the BEP 10 bit. */
export function defaultReserved(): Buffer {
  const r = Buffer.alloc(8);
  r[RESERVED_EXTENDED_BYTE] = RESERVED_EXTENDED_MASK;
  return r;
}

export function encodeHandshake(infoHash: Uint8Array, peerId: Uint8Array, reserved: Uint8Array = defaultReserved()): Buffer {
  if (infoHash.length !== 20 || peerId.length !== 20 || reserved.length !== 8) throw new RangeError('handshake fields have fixed sizes (20, 20, 8)');
  const b = Buffer.allocUnsafe(HANDSHAKE_LENGTH);
  b[0] = 19;
  PSTR.copy(b, 1);
  b.set(reserved, 20);
  b.set(infoHash, 28);
  b.set(peerId, 48);
  return b;
}

export function encodeHave(piece: number): Buffer {
  return encodeHaves([piece], 1);
}

/** The first `count` pieces of `pieces` as back-to-back HAVE frames in one buffer. */
export function encodeHaves(pieces: readonly number[], count: number): Buffer {
  const b = Buffer.allocUnsafe(9 * count);
  for (let i = 0, o = 0; i < count; i++, o += 9) {
    b.writeUInt32BE(5, o);
    b[o + 4] = MsgId.HAVE;
    b.writeUInt32BE(pieces[i]!, o + 5);
  }
  return b;
}

export function encodeBitfield(bytes: Uint8Array): Buffer {
  const b = Buffer.allocUnsafe(5 + bytes.length);
  b.writeUInt32BE(1 + bytes.length, 0);
  b[4] = MsgId.BITFIELD;
  b.set(bytes, 5);
  return b;
}

/** Writes a REQUEST (or CANCEL with `id`) frame at `off`; returns the offset after it. */
export function writeRequest(buf: Buffer, off: number, piece: number, begin: number, length: number, id: number = MsgId.REQUEST): number {
  buf.writeUInt32BE(13, off);
  buf[off + 4] = id;
  buf.writeUInt32BE(piece, off + 5);
  buf.writeUInt32BE(begin, off + 9);
  buf.writeUInt32BE(length, off + 13);
  return off + REQUEST_FRAME_LENGTH;
}

export function encodeRequest(piece: number, begin: number, length: number): Buffer {
  const b = Buffer.allocUnsafe(REQUEST_FRAME_LENGTH);
  writeRequest(b, 0, piece, begin, length);
  return b;
}

export function encodeCancel(piece: number, begin: number, length: number): Buffer {
  const b = Buffer.allocUnsafe(REQUEST_FRAME_LENGTH);
  writeRequest(b, 0, piece, begin, length, MsgId.CANCEL);
  return b;
}

/** A block to ask for: `length` bytes at offset `begin` of piece `piece`. */
export interface BlockRef { piece: number; begin: number; length: number }

/**
 * Encodes `reqs[from..to)` as consecutive REQUEST frames into one buffer, so that a refill of
 * the pipeline is one socket write (PERF-NOTES: batched requests let the seeder answer with few,
 * large writes).
 */
export function encodeRequests(reqs: readonly BlockRef[], from = 0, to = reqs.length): Buffer {
  const b = Buffer.allocUnsafe((to - from) * REQUEST_FRAME_LENGTH);
  let off = 0;
  for (let i = from; i < to; i++) {
    const r = reqs[i]!;
    off = writeRequest(b, off, r.piece, r.begin, r.length);
  }
  return b;
}

/** Writes the 13-byte header of a PIECE frame carrying `length` data bytes; returns the offset after it. */
export function writePieceHeader(buf: Buffer, off: number, piece: number, begin: number, length: number): number {
  buf.writeUInt32BE(9 + length, off);
  buf[off + 4] = MsgId.PIECE;
  buf.writeUInt32BE(piece, off + 5);
  buf.writeUInt32BE(begin, off + 9);
  return off + PIECE_HEADER_LENGTH;
}

/** A whole PIECE frame (allocates; the seeder path lays headers out in pooled buffers instead). */
export function encodePiece(piece: number, begin: number, data: Uint8Array): Buffer {
  const b = Buffer.allocUnsafe(PIECE_HEADER_LENGTH + data.length);
  writePieceHeader(b, 0, piece, begin, data.length);
  b.set(data, PIECE_HEADER_LENGTH);
  return b;
}

/** An EXTENDED frame: `id` 0 is the extended handshake, other ids are what the peer's `m` assigned. */
export function encodeExtended(id: number, payload: Uint8Array): Buffer {
  if (!Number.isInteger(id) || id < 0 || id > 255) throw new RangeError(`bad extended message id ${id}`);
  const b = Buffer.allocUnsafe(6 + payload.length);
  b.writeUInt32BE(2 + payload.length, 0);
  b[4] = MsgId.EXTENDED;
  b[5] = id;
  b.set(payload, 6);
  return b;
}

// ----------------------------------------------------------------------------------- decoder

/**
 * Streaming decoder for one connection. Feed it bytes with {@link feed}; it parses every
 * complete frame and reports where the first incomplete one starts, so that the caller keeps
 * those bytes and appends the next read after them (see read-buffer.ts). The decoder itself
 * holds no data between calls and never copies block data.
 *
 * Limits: every frame length is read unsigned and checked against {@link maxFrameLength} before
 * the frame is waited for, so a peer can never make us buffer more than one capped frame.
 * Until {@link setGeometry} is called only the handshake can be parsed; the handler's
 * `onHandshake` is the place to call it (a frame that arrives without geometry is an error).
 */
export class WireDecoder {
  private handshakeDone: boolean;
  private pieceCount = 0;
  private pieceLength = 0;
  private lastPieceLength = 0;
  private frameCap = 0;
  private stopped = false;

  constructor(private readonly handler: WireHandler, opts: { handshake?: boolean; geometry?: Geometry } = {}) {
    this.handshakeDone = opts.handshake === false;
    if (opts.geometry) this.setGeometry(opts.geometry);
  }

  /** Fixes the torrent this connection is about: enables message parsing and sets the frame cap. */
  setGeometry(g: Geometry): void {
    if (!(g.pieceLength > 0) || g.pieceCount !== Math.ceil(g.totalLength / g.pieceLength)) throw new RangeError('inconsistent geometry');
    this.pieceCount = g.pieceCount;
    this.pieceLength = g.pieceLength;
    this.lastPieceLength = g.pieceCount === 0 ? 0 : g.totalLength - (g.pieceCount - 1) * g.pieceLength;
    this.frameCap = maxFrameLength(g);
  }

  /** The largest frame (length prefix excluded) accepted; 0 until the geometry is known. */
  get maxFrame(): number { return this.frameCap; }

  /** Makes {@link feed} return at once, ignoring the rest of its input (the connection is closing). */
  stop(): void { this.stopped = true; }

  get isStopped(): boolean { return this.stopped; }

  /**
   * Parses every complete frame in `buf[start, end)`. Returns the offset of the first byte not
   * consumed (the start of an incomplete frame, or `end`).
   */
  feed(buf: Buffer, start: number, end: number): number {
    let pos = start;
    if (!this.handshakeDone) {
      if (this.stopped) return end;
      // Refuse a wrong protocol string as soon as its bytes arrive rather than after 68 bytes.
      const avail = Math.min(end - pos, 20);
      if (avail > 0 && buf[pos] !== 19) throw new ProtocolError('not a BitTorrent handshake');
      for (let i = 1; i < avail; i++) {
        if (buf[pos + i] !== PSTR[i - 1]) throw new ProtocolError('not a BitTorrent handshake');
      }
      if (end - pos < HANDSHAKE_LENGTH) return pos;
      const reserved = Buffer.from(buf.subarray(pos + 20, pos + 28));
      const h: Handshake = {
        reserved,
        infoHash: Buffer.from(buf.subarray(pos + 28, pos + 48)),
        peerId: Buffer.from(buf.subarray(pos + 48, pos + 68)),
        extended: (reserved[RESERVED_EXTENDED_BYTE]! & RESERVED_EXTENDED_MASK) !== 0,
      };
      pos += HANDSHAKE_LENGTH;
      this.handshakeDone = true;
      this.handler.onHandshake(h);
    }
    while (!this.stopped) {
      const avail = end - pos;
      if (avail < 4) return pos;
      if (this.frameCap === 0) throw new ProtocolError('message before the torrent is known');
      const len = buf.readUInt32BE(pos);
      if (len > this.frameCap) throw new FrameTooLargeError(len, this.frameCap);
      if (avail < 4 + len) return pos;
      const p = pos + 4;
      pos = p + len;
      if (len === 0) { this.handler.onKeepAlive(); continue; }
      this.message(buf, p, len);
    }
    return end;
  }

  private pieceSize(index: number): number {
    return index === this.pieceCount - 1 ? this.lastPieceLength : this.pieceLength;
  }

  private checkIndex(index: number, what: string): void {
    if (index >= this.pieceCount) throw new ProtocolError(`${what} for piece ${index}, but there are ${this.pieceCount}`);
  }

  /** REQUEST, CANCEL and PIECE ranges: the block must lie within its piece and be at most one block long. */
  private checkRange(index: number, begin: number, length: number, what: string): void {
    this.checkIndex(index, what);
    if (length === 0 || length > MAX_BLOCK_LENGTH) throw new ProtocolError(`${what} of ${length} bytes (1..${MAX_BLOCK_LENGTH})`);
    if (begin + length > this.pieceSize(index)) throw new ProtocolError(`${what} past the end of piece ${index}`);
  }

  private expectLength(len: number, want: number, what: string): void {
    if (len !== want) throw new ProtocolError(`${what} message of length ${len} (want ${want})`);
  }

  /** One frame: id at `p`, payload `[p + 1, p + len)`. */
  private message(buf: Buffer, p: number, len: number): void {
    const h = this.handler;
    const id = buf[p]!;
    switch (id) {
      case MsgId.CHOKE: this.expectLength(len, 1, 'choke'); h.onChoke(); return;
      case MsgId.UNCHOKE: this.expectLength(len, 1, 'unchoke'); h.onUnchoke(); return;
      case MsgId.INTERESTED: this.expectLength(len, 1, 'interested'); h.onInterested(); return;
      case MsgId.NOT_INTERESTED: this.expectLength(len, 1, 'not-interested'); h.onNotInterested(); return;
      case MsgId.HAVE: {
        this.expectLength(len, 5, 'have');
        const index = buf.readUInt32BE(p + 1);
        this.checkIndex(index, 'have');
        h.onHave(index);
        return;
      }
      case MsgId.BITFIELD:
        this.expectLength(len, 1 + ((this.pieceCount + 7) >>> 3), 'bitfield');
        h.onBitfield(buf.subarray(p + 1, p + len));
        return;
      case MsgId.REQUEST:
      case MsgId.CANCEL: {
        const what = id === MsgId.REQUEST ? 'request' : 'cancel';
        this.expectLength(len, 13, what);
        const index = buf.readUInt32BE(p + 1);
        const begin = buf.readUInt32BE(p + 5);
        const length = buf.readUInt32BE(p + 9);
        this.checkRange(index, begin, length, what);
        if (id === MsgId.REQUEST) h.onRequest(index, begin, length);
        else h.onCancel(index, begin, length);
        return;
      }
      case MsgId.PIECE: {
        if (len < 10) throw new ProtocolError(`piece message of length ${len}`);
        const index = buf.readUInt32BE(p + 1);
        const begin = buf.readUInt32BE(p + 5);
        this.checkRange(index, begin, len - 9, 'piece');
        h.onPiece(index, begin, buf.subarray(p + 9, p + len));
        return;
      }
      case MsgId.PORT:
        // DHT port (BEP 5): meaningless for private torrents; validated and ignored.
        this.expectLength(len, 3, 'port');
        return;
      case MsgId.EXTENDED:
        if (len < 2) throw new ProtocolError('extended message without an id');
        h.onExtended(buf[p + 1]!, buf.subarray(p + 2, p + len));
        return;
      default:
        // BEP 3: unknown messages are ignored (their length is already capped). We advertise no
        // extension that defines other ids, so nothing we rely on is lost.
        return;
    }
  }
}
