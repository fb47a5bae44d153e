/**
 * The tracker's RPC transport: a TCP server speaking protocol/rpc.ts (one JSON object a line).
 * It only frames, validates and dispatches; what an op does is the dispatcher's business.
 *
 * Per connection: a LineDecoder capped at MAX_LINE_BYTES; requests are handled strictly in order
 * (a queue), each response carries its request's id. Grounds for disconnecting: a line over the
 * cap (answered TOO_LARGE first), more than `maxBadLines` malformed lines, more than
 * `maxQueued` requests buffered, a peer that stops reading our answers. A request that cannot be
 * parsed far enough to know its id is answered with id -1 ({@link NO_ID}).
 * Connections per address and in total, and requests per second per address, are admitted and
 * paced by {@link Admission} (admission.ts). A connection that sends nothing for `idleMs` is
 * closed unless it holds a live session (clients with a session heartbeat anyway). Partial lines:
 * a line must be complete within `lineTimeoutMs` of its first byte (a client sends a whole line at
 * once; a slow drip is a slowloris), and all connections together may hold at most
 * `maxBufferedBytes` of partial lines (2,048 connections x a 1 MiB line would be 2 GiB); the
 * connection that goes over is closed.
 * A dispatcher failure that is not a CoterieError is logged with context and answered INTERNAL.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { CoterieError, FrameTooLargeError, describe, toWireError, type WireError } from '../common/errors.js';
import type { Logger } from '../common/log.js';
import {
  encodeLine, isOpName, LineDecoder, MAX_LINE_BYTES, parseArgs, parseRequest, type OpName, type Response,
} from '../protocol/rpc.js';
import { Admission } from './admission.js';
import type { ConnContext } from './handlers.js';
import { isReplicationHello } from './replication/wire.js';

/** The id of an answer to a line whose own id could not be read. */
export const NO_ID = -1;

/** Transport limits. Defaults in {@link DEFAULT_LIMITS}. */
export interface ServerLimits {
  maxLineBytes: number;
  /** Malformed lines tolerated per connection before it is closed. */
  maxBadLines: number;
  maxConnsPerAddress: number;
  maxConns: number;
  /** Close a connection without a session that sent nothing for this long. */
  idleMs: number;
  /** Requests queued per connection before we stop reading from it (backpressure). */
  maxPending: number;
  /** Requests queued per connection at which it is closed (it kept sending while paused). */
  maxQueued: number;
  /** Bytes of answers buffered for a peer that does not read them before it is closed. */
  maxWriteBuffer: number;
  /**
   * Requests handled per second per remote address, all its connections together (malformed lines
   * count too). Past it, requests wait; an honest client makes about one every few seconds.
   */
  requestsPerSecondPerAddress: number;
  /** Requests an idle address may make at once before the rate applies. */
  requestBurstPerAddress: number;
  /** New connections accepted per second per remote address; more are refused (RATE_LIMITED). */
  connectionsPerSecondPerAddress: number;
  /** New connections an address may open at once before that rate applies. */
  connectionBurstPerAddress: number;
  /** A line must be complete this long after its first byte arrived. */
  lineTimeoutMs: number;
  /** Bytes of partial lines held for all connections together. */
  maxBufferedBytes: number;
}

export const DEFAULT_LIMITS: ServerLimits = {
  maxLineBytes: MAX_LINE_BYTES,
  maxBadLines: 20,
  maxConnsPerAddress: 64,
  maxConns: 2048,
  idleMs: 60_000,
  maxPending: 32,
  maxQueued: 4096,
  maxWriteBuffer: 16 << 20,
  requestsPerSecondPerAddress: 1_000,
  requestBurstPerAddress: 2_000,
  connectionsPerSecondPerAddress: 20,
  connectionBurstPerAddress: 100,
  lineTimeoutMs: 30_000,
  maxBufferedBytes: 64 << 20,
};

/**
 * Takes over a connection whose first line is a replication hello (another tracker): `lines` are
 * the lines already split off (the hello first), `decoder` holds any partial line after them.
 * The server has detached its own listeners and no longer counts or limits that connection.
 */
export type LinkHandler = (socket: Socket, lines: string[], decoder: LineDecoder) => void;

/** Runs one validated call; throws a CoterieError to refuse it. */
export type Dispatcher = (op: OpName, args: unknown, token: string | undefined, conn: ConnContext) => Promise<unknown>;

export interface RpcServerOptions {
  dispatch: Dispatcher;
  logger: Logger;
  limits?: Partial<ServerLimits>;
  /** Told when a connection closes (presence drops the leases it renewed). */
  onClose?: (conn: ConnContext) => void;
}

type Item = { kind: 'call'; id: number; op: OpName; args: unknown; token: string | undefined } | { kind: 'reply'; res: Response };

interface Conn {
  ctx: ConnContext;
  socket: Socket;
  decoder: LineDecoder;
  queue: Item[];
  busy: boolean;
  badLines: number;
  lastSeen: number;
  /** When the partial line now held started (meaningful while `held` > 0). */
  lineStartedAt: number;
  /** Bytes of partial line held, as last counted into the server's total. */
  held: number;
  closed: boolean;
  /** Whether a first line has been seen (only a first line can be a replication hello). */
  started: boolean;
  /** Removes the server's socket listeners (hand-over to a link handler). */
  detach: () => void;
}

export class RpcServer {
  private readonly limits: ServerLimits;
  private readonly server: Server;
  private readonly conns = new Set<Conn>();
  private nextId = 1;
  private sweeper: NodeJS.Timeout | null = null;
  private linkHandler: LinkHandler | null = null;
  private readonly admission: Admission;
  /** Bytes of partial lines held over all connections (sum of `Conn.held`). */
  private buffered = 0;
  /** Sockets we hung up on that have not closed yet. */
  private readonly closing = new Set<Socket>();

  constructor(private readonly opts: RpcServerOptions) {
    this.limits = { ...DEFAULT_LIMITS, ...opts.limits };
    this.admission = new Admission(this.limits, opts.logger);
    // allowHalfOpen: a client may send its requests and shut its side; we still answer them all.
    this.server = createServer({ noDelay: true, allowHalfOpen: true }, (s) => this.accept(s));
    this.server.on('error', (err) => opts.logger.error({ err: describe(err) }, 'server socket error'));
  }

  /** Starts listening; resolves with the bound address (port 0 = any free port). */
  listen(host: string, port: number): Promise<{ host: string; port: number }> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      this.server.once('error', onError);
      this.server.listen({ host, port, exclusive: true }, () => {
        this.server.off('error', onError);
        const a = this.server.address();
        const bound = typeof a === 'object' && a ? a.port : port;
        this.sweeper = setInterval(() => this.sweepIdle(), Math.max(50, Math.min(5_000, this.limits.idleMs / 4, this.limits.lineTimeoutMs / 4)));
        this.sweeper.unref();
        resolve({ host, port: bound });
      });
    });
  }

  /** Stops accepting, closes every connection, resolves when the listener is closed. */
  close(): Promise<void> {
    if (this.sweeper) clearInterval(this.sweeper);
    for (const c of this.conns) c.socket.destroy();
    // Connections already hung up (closing, maybe paused: they would hold the listener open).
    for (const sock of this.closing) sock.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  get connectionCount(): number { return this.conns.size; }

  /** Routes connections that open with a replication hello to `h` (null: treat them as RPC). */
  setLinkHandler(h: LinkHandler | null): void { this.linkHandler = h; }

  private accept(socket: Socket): void {
    const remote = socket.remoteAddress ?? 'unknown';
    socket.on('error', () => { /* reset by peer etc.: 'close' follows and cleans up */ });
    if (!this.admission.admit(remote, this.conns.size)) {
      socket.end(encodeLine({ id: NO_ID, ok: false, error: { code: 'RATE_LIMITED', message: 'too many connections; try again later' } }));
      setTimeout(() => socket.destroy(), 1000).unref();
      this.closing.add(socket);
      socket.once('close', () => this.closing.delete(socket));
      return;
    }
    const conn: Conn = {
      ctx: { connId: this.nextId++, remote, hasSession: false },
      socket, decoder: new LineDecoder(this.limits.maxLineBytes), queue: [], busy: false, badLines: 0,
      lastSeen: Date.now(), lineStartedAt: 0, held: 0, closed: false, started: false, detach: () => {},
    };
    this.conns.add(conn);
    // Keepalive finds peers that vanished without a FIN (half-open), which the idle timeout
    // does not close while they hold a session.
    socket.setKeepAlive(true, 30_000);
    const onData = (chunk: Buffer) => {
      try { this.onData(conn, chunk); }
      catch (err) {
        // Nothing a remote sends may take the process down: log, drop this connection, carry on.
        this.opts.logger.error({ err: describe(err), conn: conn.ctx.connId, remote }, 'error reading a request; closing connection');
        socket.destroy();
      }
    };
    const onClose = () => this.onClosed(conn);
    const onEnd = () => { if (!conn.busy && conn.queue.length === 0) socket.end(); };
    socket.on('data', onData);
    socket.on('close', onClose);
    socket.on('end', onEnd);
    conn.detach = () => { socket.off('data', onData); socket.off('close', onClose); socket.off('end', onEnd); };
  }

  /** Gives a connection that opened with a replication hello to the link handler. */
  private handOver(conn: Conn, lines: string[], h: LinkHandler): void {
    conn.detach();
    this.onClosed(conn);
    try { h(conn.socket, lines, conn.decoder); }
    catch (err) {
      this.opts.logger.error({ err: describe(err), remote: conn.ctx.remote }, 'replication link handler failed; closing connection');
      conn.socket.destroy();
    }
  }

  /** Records that `conn` now holds `n` bytes of partial line (kept in the server-wide total). */
  private setHeld(conn: Conn, n: number): void {
    this.buffered += n - conn.held;
    conn.held = n;
  }

  private onClosed(conn: Conn): void {
    if (conn.closed) return;
    conn.closed = true;
    this.setHeld(conn, 0);
    this.conns.delete(conn);
    this.admission.release(conn.ctx.remote);
    conn.queue = [];
    try { this.opts.onClose?.(conn.ctx); }
    catch (err) { this.opts.logger.error({ err: describe(err), conn: conn.ctx.connId }, 'onClose hook failed'); }
  }

  private onData(conn: Conn, chunk: Buffer): void {
    if (conn.closed) return;
    const now = Date.now();
    conn.lastSeen = now;
    let lines: string[];
    try { lines = conn.decoder.push(chunk); }
    catch (err) {
      if (err instanceof FrameTooLargeError) {
        this.opts.logger.warn({ remote: conn.ctx.remote, conn: conn.ctx.connId, size: err.size }, 'closing connection: line too long');
        this.hangUp(conn, { code: 'TOO_LARGE', message: `request line longer than ${this.limits.maxLineBytes} bytes` });
        return;
      }
      throw err;
    }
    // A new partial line starts its clock when nothing was held or a line just completed.
    if (conn.decoder.pending > 0 && (conn.held === 0 || lines.length > 0)) conn.lineStartedAt = now;
    this.setHeld(conn, conn.decoder.pending);
    if (this.buffered > this.limits.maxBufferedBytes) {
      this.opts.logger.warn({ remote: conn.ctx.remote, conn: conn.ctx.connId, buffered: this.buffered }, 'closing connection: partial lines over the server-wide cap');
      this.hangUp(conn, { code: 'RATE_LIMITED', message: 'the tracker is busy; try again later' });
      return;
    }
    if (!conn.started && lines.length > 0) {
      conn.started = true;
      const h = this.linkHandler;
      if (h && isReplicationHello(lines[0]!)) { this.handOver(conn, lines, h); return; }
    }
    for (const line of lines) {
      if (conn.closed) return;
      if (line.trim() === '') {
        // Not an error worth an answer, but not free either: a stream of blank lines must not
        // keep a connection alive forever.
        if (++conn.badLines > this.limits.maxBadLines) { this.hangUp(conn, { code: 'BAD_REQUEST', message: 'too many malformed requests' }); return; }
        continue;
      }
      this.enqueue(conn, this.parse(conn, line));
    }
    if (conn.queue.length >= this.limits.maxQueued) {
      this.opts.logger.warn({ remote: conn.ctx.remote, conn: conn.ctx.connId }, 'closing connection: too many queued requests');
      this.hangUp(conn, { code: 'RATE_LIMITED', message: 'too many requests in flight' });
      return;
    }
    if (conn.queue.length >= this.limits.maxPending) conn.socket.pause();
  }

  /** One line to a queue item; counts malformed ones and hangs up past the limit. */
  private parse(conn: Conn, line: string): Item | null {
    const bad = (id: number | null, error: WireError): Item | null => {
      conn.badLines++;
      if (conn.badLines > this.limits.maxBadLines) {
        this.opts.logger.warn({ remote: conn.ctx.remote, conn: conn.ctx.connId }, 'closing connection: too many malformed requests');
        this.hangUp(conn, { code: 'BAD_REQUEST', message: 'too many malformed requests' });
        return null;
      }
      return { kind: 'reply', res: { id: id ?? NO_ID, ok: false, error } };
    };
    const p = parseRequest(line);
    if (!p.ok) return bad(p.id, p.error);
    const { id, op, args, token } = p.req;
    if (!isOpName(op)) return bad(id, { code: 'UNKNOWN_OP', message: `unknown operation "${op.slice(0, 64)}"` });
    const a = parseArgs(op, args);
    if (!a.ok) return bad(id, a.error);
    return { kind: 'call', id, op, args: a.args, token };
  }

  private enqueue(conn: Conn, item: Item | null): void {
    if (!item || conn.closed) return;
    conn.queue.push(item);
    if (!conn.busy) void this.drain(conn);
  }

  /** Handles queued items one at a time, in order. Never throws. */
  private async drain(conn: Conn): Promise<void> {
    conn.busy = true;
    try {
      while (conn.queue.length > 0 && !conn.closed) {
        const item = conn.queue.shift()!;
        // Only an address over its rate waits here; otherwise the loop stays synchronous up to the
        // handler, so answers to malformed lines go out before a hang-up that follows them.
        const wait = this.admission.paceWait(conn.ctx.remote);
        if (wait > 0) {
          await this.sleepUnlessClosed(conn, wait);
          if (conn.closed) break;
        }
        const res = item.kind === 'reply' ? item.res : await this.call(conn, item);
        if (conn.closed) break;
        const ok = conn.socket.write(encodeLine(res));
        if (conn.socket.writableLength > this.limits.maxWriteBuffer) {
          this.opts.logger.warn({ remote: conn.ctx.remote, conn: conn.ctx.connId }, 'closing connection: peer does not read answers');
          conn.socket.destroy();
          break;
        }
        if (!ok) await new Promise<void>((r) => { conn.socket.once('drain', r); conn.socket.once('close', r); });
        if (conn.queue.length < this.limits.maxPending / 2 && conn.socket.isPaused()) conn.socket.resume();
      }
    } finally {
      conn.busy = false;
    }
    if (!conn.closed && conn.socket.readableEnded) conn.socket.end();
  }

  private sleepUnlessClosed(conn: Conn, ms: number): Promise<void> {
    return new Promise<void>((r) => {
      const done = () => { clearTimeout(t); conn.socket.off('close', done); r(); };
      const t = setTimeout(done, ms);
      conn.socket.once('close', done);
    });
  }

  private async call(conn: Conn, item: Extract<Item, { kind: 'call' }>): Promise<Response> {
    try {
      const result = await this.opts.dispatch(item.op, item.args, item.token, conn.ctx);
      return { id: item.id, ok: true, result };
    } catch (err) {
      if (!(err instanceof CoterieError)) {
        this.opts.logger.error({ err: describe(err), stack: (err as Error)?.stack, op: item.op, conn: conn.ctx.connId, remote: conn.ctx.remote }, 'handler failed');
      }
      return { id: item.id, ok: false, error: toWireError(err) };
    }
  }

  /** Answers once more (best effort) and closes. */
  private hangUp(conn: Conn, error: WireError): void {
    if (conn.closed) return;
    conn.queue = [];
    conn.socket.pause();
    conn.socket.end(encodeLine({ id: NO_ID, ok: false, error }));
    this.closing.add(conn.socket);
    conn.socket.once('close', () => this.closing.delete(conn.socket));
    // A peer that never reads would keep a half-closed socket around: give it a moment, then cut.
    setTimeout(() => conn.socket.destroy(), 2_000).unref();
    this.onClosed(conn);
  }

  private sweepIdle(): void {
    const now = Date.now();
    for (const c of this.conns) {
      if (c.held > 0 && now - c.lineStartedAt >= this.limits.lineTimeoutMs) {
        this.opts.logger.warn({ remote: c.ctx.remote, conn: c.ctx.connId, held: c.held }, 'closing connection: a line took too long to arrive');
        this.hangUp(c, { code: 'BAD_REQUEST', message: `request line not complete within ${this.limits.lineTimeoutMs / 1000} s` });
        continue;
      }
      if (c.ctx.hasSession || c.busy || c.queue.length > 0) continue;
      if (now - c.lastSeen >= this.limits.idleMs) {
        this.opts.logger.debug({ remote: c.ctx.remote, conn: c.ctx.connId }, 'closing idle connection');
        c.socket.destroy();
      }
    }
  }
}
