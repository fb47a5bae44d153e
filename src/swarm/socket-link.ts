/**
 * Binds TCP sockets to {@link PeerSession}s. Outgoing connections read with the socket's `onread`
 * option straight into the session's reused read buffer (no allocation per read). Incoming
 * connections use `'data'` events: Node's server does not take `onread` for accepted sockets, so
 * a chunk per read is allocated and its incomplete tail copied. Seeders mostly receive small
 * REQUEST batches on incoming connections, so that costs little; the bulk data path of a
 * download is its own outgoing connections.
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

/**
 * Dials `host:port` and returns the session `make` builds around it; the session's handshake is
 * sent once TCP connects. Connection failures close the session (its owner's onClose runs).
 */
export function dial(host: string, port: number, make: (t: SessionTransport) => PeerSession): PeerSession {
  const t = new SocketTransport();
  const s = make(t);
  const sock = net.connect({
    host, port, noDelay: true,
    onread: {
      buffer: () => s.readTarget(),
      callback: (n: number) => { s.onRead(n); return true; },
    },
  });
  t.sock = sock;
  wireEvents(sock, s);
  sock.once('connect', () => { if (!s.closed) s.start(); });
  return s;
}

/** Wraps an accepted socket; the peer speaks first (its handshake). */
export function adopt(sock: net.Socket, make: (t: SessionTransport) => PeerSession): PeerSession {
  const t = new SocketTransport();
  t.sock = sock;
  sock.setNoDelay(true);
  const s = make(t);
  wireEvents(sock, s);
  sock.on('data', (chunk: Buffer) => s.onData(chunk));
  return s;
}
