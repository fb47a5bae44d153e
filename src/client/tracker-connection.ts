/**
 * One TCP connection from the client to one tracker, and the pieces the tracker link shares with
 * it: injectable timers and the TrackerFailure error.
 *
 * Owns the socket's framing (a LineDecoder capped at MAX_LINE_BYTES) and the map of requests
 * awaiting an answer, keyed by request id. Invariants: a connection fails as a whole and only
 * once; failing it destroys the socket, rejects every pending request with a TrackerFailure
 * (`written` true: the request may have reached the tracker) and tells its owner through
 * `onFail`. Once `closed`, nothing more is written and no answer is delivered.
 */
import type { Socket } from 'node:net';
import { describe } from '../common/errors.js';
import { formatEndpoint, type Endpoint } from '../common/config.js';
import type { Logger } from '../common/log.js';
import { LineDecoder, MAX_LINE_BYTES, responseSchema, type Response } from '../protocol/rpc.js';

/** Timer functions, injectable so tests can drive heartbeats without waiting. */
export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
  setInterval(fn: () => void, ms: number): unknown;
  clearInterval(handle: unknown): void;
}

export const realTimers: Timers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
  setInterval: (fn, ms) => setInterval(fn, ms),
  clearInterval: (h) => clearInterval(h as NodeJS.Timeout),
};

/** A tracker failed during a call; `written` says whether the request may have reached it. */
export class TrackerFailure extends Error {
  constructor(message: string, readonly written: boolean, readonly endpoint: Endpoint) { super(message); }
}

interface Pending { resolve: (r: Response) => void; reject: (e: TrackerFailure) => void }

/** One TCP connection to one tracker. Fails as a whole: a failure rejects every call on it. */
export class Connection {
  readonly pending = new Map<number, Pending>();
  closed = false;
  private readonly decoder = new LineDecoder(MAX_LINE_BYTES);

  constructor(
    readonly index: number,
    readonly endpoint: Endpoint,
    private readonly socket: Socket,
    private readonly onFail: (conn: Connection, why: string) => void,
    private readonly logger: Logger | undefined,
  ) {
    socket.on('data', (b: Buffer) => this.onData(b));
    socket.on('error', (e) => this.fail(`connection error: ${e.message}`));
    socket.on('close', () => this.fail('connection closed by the tracker'));
  }

  /** Writes one request; false if the connection is already gone (nothing was written). */
  write(line: string): boolean {
    if (this.closed) return false;
    this.socket.write(line);
    return true;
  }

  fail(why: string): void {
    if (this.closed) return;
    this.closed = true;
    this.socket.destroy();
    const err = new TrackerFailure(why, true, this.endpoint);
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
    this.onFail(this, why);
  }

  private onData(chunk: Buffer): void {
    let lines: string[];
    try { lines = this.decoder.push(chunk); } catch (e) { this.fail(describe(e)); return; }
    for (const line of lines) {
      if (this.closed) return;
      let raw: unknown;
      try { raw = JSON.parse(line); } catch { this.fail('the tracker sent a line that is not JSON'); return; }
      // Server pushes carry no id; the client does not need any of them yet.
      if (typeof raw !== 'object' || raw === null || typeof (raw as { id?: unknown }).id !== 'number') {
        this.logger?.debug({ tracker: formatEndpoint(this.endpoint) }, 'ignoring a tracker push');
        continue;
      }
      const parsed = responseSchema.safeParse(raw);
      if (!parsed.success) { this.fail('the tracker sent a malformed response'); return; }
      const res = parsed.data as Response;
      const p = this.pending.get(res.id);
      if (!p) continue; // an answer to a call already given up on
      this.pending.delete(res.id);
      p.resolve(res);
    }
  }
}
