/**
 * The contracts around a {@link PeerSession}: the transport it writes to, the torrent it is
 * about, the owner it reports to, and how it is created. Types only; `session.ts` re-exports them
 * all, so callers import them from there.
 *
 * Invariants promised to implementers: an owner's calls happen synchronously inside a read, and
 * `onClose` comes exactly once; a transport is written to only while the session is open.
 */
import type { Clock } from './rate-limit.js';
import type { PeerSession } from './session.js';
import type { Geometry, Handshake } from './wire/codec.js';
import type { ExtHandshake } from './wire/extended.js';

/** The writing half of a connection (a net.Socket satisfies it). */
export interface SessionTransport {
  write(buf: Uint8Array, cb?: (err?: Error | null) => void): boolean;
  cork(): void;
  uncork(): void;
  /** Bytes queued and not yet handed to the kernel. */
  readonly writableLength: number;
  destroy(): void;
}

/** The torrent a connection is about, from our side. */
export interface SessionTorrent {
  infoHash: Buffer;
  geometry: Geometry;
  /** Our 20-byte peer id. */
  peerId: Buffer;
  /** What we put in our extended handshake (ticket included for downloads). */
  ext: ExtHandshake;
}

/**
 * What a session reports to whoever owns the connection. Calls happen synchronously inside
 * `onRead`/`onData`; an owner may close the session from any of them.
 */
export interface SessionOwner {
  /** Incoming connections only: the peer's handshake. Call `s.attach(...)` or `s.close(...)`. */
  onHandshake?(s: PeerSession, h: Handshake): void;
  /** Handshakes done (the peer's extended handshake, if any, is in `s.peerExt`). */
  onActive(s: PeerSession): void;
  /** The peer's pieces are known for the first time (`s.peerHas`); HAVEs follow one by one. */
  onPeerPieces(s: PeerSession): void;
  /** The peer gained a piece after {@link onPeerPieces}. */
  onHave(s: PeerSession, piece: number): void;
  onChoke(s: PeerSession): void;
  onUnchoke(s: PeerSession): void;
  onInterest(s: PeerSession, interested: boolean): void;
  /**
   * A block we asked this peer for arrived (blocks it was never asked for, or asked for and then
   * cancelled, never reach the owner). `data` is a view into the read buffer, valid during this
   * call only.
   */
  onBlock(s: PeerSession, piece: number, begin: number, data: Buffer): void;
  /** The frames of one read have all been handled: a good moment to refill requests. */
  onReadDone?(s: PeerSession): void;
  onExtended?(s: PeerSession, id: number, payload: Buffer): void;
  onClose(s: PeerSession, err?: Error): void;
}

export type SessionState = 'handshake' | 'ext' | 'active' | 'closed';

/** How a session is created: its transport, its owner, and for outgoing ones the torrent. */
export interface SessionOptions {
  transport: SessionTransport;
  owner: SessionOwner;
  /** We dialled: our handshake goes first and the torrent is known. */
  torrent?: SessionTorrent;
  clock?: Clock;
  /** For logs: the remote address. */
  remote?: string;
}
