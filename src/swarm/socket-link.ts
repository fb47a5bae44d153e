/**
 * Binds TCP sockets to {@link PeerSession}s. Every connection reads with the socket's `onread`
 * option straight into the session's reused read buffer: no allocation and no copy per read.
 *
 * Node's server cannot take `onread` for accepted sockets, so {@link adopt} moves the accepted
 * socket's handle into a new `net.Socket` built with it (the constructor accepts `handle` and
 * `onread` together). Why: in a swarm, half of the bulk data between downloaders arrives on
 * accepted connections; with `'data'` events each read got a fresh 64 KiB chunk (fresh memory,
 * so page faults, which are costly on this VM) plus a copy of its tail. On the 256 MiB 1 -> 8
 * swarm, reads into fresh buffers were 32 % of all page faults. The move uses the socket's
 * `_handle`; where that is missing (another Node), `'data'` events are the fallback.
 */
import net from 'node:net';
import type { PeerSession, SessionTransport } from './session.js';

/** A net.Socket seen as a session transport; the socket may be attached after the session exists. */
class SocketTransport implements SessionTransport {
  sock: net.Socket | null = null;
  write(buf: Uint8Array, cb?: (err?: Error | null) => void): boolean {
    const s = this.sock;
    if (s === null || s.destroyed) { cb?.(new Error('socket closed')); return false; }
    return s.write(buf, cb);
  }
  cork(): void { this.sock?.cork(); }
  uncork(): void { this.sock?.uncork(); }
  get writableLength(): number { return this.sock?.writableLength ?? 0; }
  destroy(): void { this.sock?.destroy(); }
}

function wireEvents(sock: net.Socket, s: PeerSession): void {
  sock.on('drain', () => s.onDrain());
  sock.on('error', (err) => s.close(err));
  sock.on('close', () => s.released());
  sock.on('end', () => s.close());
}

/** The socket's `onread` option: reads land in the session's reused buffer. */
function onreadFor(s: PeerSession): net.OnReadOpts {
  return { buffer: () => s.readTarget(), callback: (n: number) => { s.onRead(n); return true; } };
}

/**
 * Dials `host:port` and returns the session `make` builds around it; the session's handshake is
 * sent once TCP connects. Connection failures close the session (its owner's onClose runs).
 */
export function dial(host: string, port: number, make: (t: SessionTransport) => PeerSession): PeerSession {
  const t = new SocketTransport();
  const s = make(t);
  const sock = net.connect({
    host, port, noDelay: true,
    onread: onreadFor(s),
  });
  t.sock = sock;
  wireEvents(sock, s);
  sock.once('connect', () => { if (!s.closed) s.start(); });
  return s;
}

/** The libuv handle of a socket, as far as moving it needs to know. */
interface MovableHandle { readStart(): number; readStop(): number; useUserBuffer?: unknown }

function movableHandle(sock: net.Socket): MovableHandle | null {
  const h = (sock as unknown as { _handle?: unknown })._handle;
  if (typeof h !== 'object' || h === null) return null;
  const m = h as Partial<MovableHandle>;
  return typeof m.readStart === 'function' && typeof m.readStop === 'function' && typeof m.useUserBuffer === 'function'
    ? (h as MovableHandle) : null;
}

/**
 * Wraps an accepted socket; the peer speaks first (its handshake). The socket must come from a
 * server created with `pauseOnConnect: true`, so nothing was read before its handle moves.
 * Returns the session and the socket that now carries the connection (its 'close' is the
 * connection's close).
 */
export function adopt(
  accepted: net.Socket, make: (t: SessionTransport) => PeerSession, o: { moveHandle?: boolean } = {},
): { session: PeerSession; socket: net.Socket } {
  const t = new SocketTransport();
  const s = make(t);
  const handle = o.moveHandle === false ? null : movableHandle(accepted);
  let sock: net.Socket;
  if (handle !== null) {
    (accepted as unknown as { _handle: unknown })._handle = null;
    // Without a handle, destroy() only settles the old object (and the server's count).
    accepted.destroy();
    // net.Socket's constructor takes `handle` (Node's own server builds accepted sockets with it),
    // but its type does not list it.
    const opts = { handle, readable: true, writable: true, onread: onreadFor(s) };
    sock = new net.Socket(opts as unknown as net.SocketConstructorOpts);
  } else {
    sock = accepted;
    sock.on('data', (chunk: Buffer) => s.onData(chunk));
    sock.resume();
  }
  t.sock = sock;
  sock.setNoDelay(true);
  wireEvents(sock, s);
  return { session: s, socket: sock };
}
