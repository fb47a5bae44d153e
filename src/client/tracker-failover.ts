/**
 * Which tracker the client talks to, and the one connection to it: connects on demand, and moves
 * to the next tracker of tracker_info (round robin) when connecting fails or takes over
 * `connectTimeoutMs`, or when the open connection fails on its own.
 *
 * Invariants: at most one connection is open and at most one connection attempt is under way
 * (concurrent callers share it); a failure advances the tracker index only if it still points at
 * the tracker that failed, so a late failure never skips a tracker. Once closed, no connection is
 * kept. The owner (the tracker link) hears of a new connection through `onConnected` and of a
 * connection that died through `onLost`; it decides what that means for the session.
 */
import { connect as netConnect, type Socket } from 'node:net';
import { describe } from '../common/errors.js';
import { formatEndpoint, type Endpoint } from '../common/config.js';
import type { Logger } from '../common/log.js';
import { Connection, TrackerFailure, type Timers } from './tracker-connection.js';

export interface TrackerFailoverOptions {
  /** Trackers in tracker_info order; at least one. */
  trackers: Endpoint[];
  timers: Timers;
  connectTimeoutMs: number;
  /** Opens a TCP connection (default node:net connect). */
  connect?: (e: Endpoint) => Socket;
  logger?: Logger;
  /** A connection to a tracker was just opened (and handed to whoever asked for it). */
  onConnected: () => void;
  /** The open connection died on its own and the next tracker is now current. */
  onLost: () => void;
}

/** See the module comment. */
export class TrackerFailover {
  readonly trackers: Endpoint[];
  private readonly connectFn: (e: Endpoint) => Socket;
  private index = 0;
  private conn: Connection | null = null;
  private connecting: Promise<Connection> | null = null;
  private closed = false;

  constructor(private readonly opts: TrackerFailoverOptions) {
    this.trackers = opts.trackers;
    this.connectFn = opts.connect ?? ((e) => netConnect({ host: e.host, port: e.port }));
  }

  /** The tracker in use (or about to be tried). */
  get current(): Endpoint { return this.trackers[this.index]!; }

  /** Drops the connection for good; calls in flight on it fail. */
  close(): void {
    this.closed = true;
    this.conn?.fail('link closed');
    this.conn = null;
  }

  /** The open connection, or a new one to the current tracker. */
  connection(): Promise<Connection> {
    if (this.conn && !this.conn.closed) return Promise.resolve(this.conn);
    if (this.connecting) return this.connecting;
    const index = this.index;
    const endpoint = this.trackers[index]!;
    const timers = this.opts.timers;
    this.connecting = new Promise<Connection>((resolve, reject) => {
      const giveUp = (why: string): void => {
        if (this.index === index) this.index = (index + 1) % this.trackers.length;
        reject(new TrackerFailure(why, false, endpoint));
      };
      let socket: Socket;
      try { socket = this.connectFn(endpoint); } catch (e) { giveUp(describe(e)); return; }
      let settled = false;
      const timer = timers.setTimeout(() => {
        if (settled) return;
        settled = true;
        socket.destroy();
        giveUp(`could not connect within ${this.opts.connectTimeoutMs} ms`);
      }, this.opts.connectTimeoutMs);
      socket.once('error', (e) => {
        if (settled) return;
        settled = true;
        timers.clearTimeout(timer);
        socket.destroy();
        giveUp(`could not connect: ${e.message}`);
      });
      socket.once('connect', () => {
        if (settled) return;
        settled = true;
        timers.clearTimeout(timer);
        socket.setNoDelay(true);
        const conn = new Connection(index, endpoint, socket, (c, why) => this.onConnectionFailed(c, why), this.opts.logger);
        if (this.closed) { conn.fail('link closed'); reject(new TrackerFailure('link closed', false, endpoint)); return; }
        this.conn = conn;
        this.opts.logger?.info({ tracker: formatEndpoint(endpoint) }, 'connected to tracker');
        resolve(conn);
        this.opts.onConnected();
      });
    });
    const p = this.connecting;
    const clear = (): void => { if (this.connecting === p) this.connecting = null; };
    p.then(clear, clear);
    return p;
  }

  /** A connection died on its own (not during a call): move on, and tell the owner. */
  private onConnectionFailed(conn: Connection, why: string): void {
    if (this.conn !== conn) return;
    this.conn = null;
    if (this.closed) return;
    if (this.index === conn.index) this.index = (conn.index + 1) % this.trackers.length;
    this.opts.logger?.warn({ tracker: formatEndpoint(conn.endpoint), why }, 'lost the tracker connection');
    this.opts.onLost();
  }
}
