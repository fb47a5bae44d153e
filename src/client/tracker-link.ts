/**
 * The client's RPC link to the trackers: one connection at a time, failover to the next tracker of
 * tracker_info when one fails, and a session that survives the move (sessions are replicated).
 *
 * A tracker has failed when connecting to it errors or takes over `connectTimeoutMs`, when a call
 * gets no answer within `callTimeoutMs`, when it closes the connection, or when it sends something
 * that breaks the protocol. The link then drops that connection (failing every call on it) and
 * moves to the next tracker, round robin. A call is tried at most once per tracker; when every
 * tracker failed it is refused with NO_TRACKER.
 *
 * Whether a call whose request reached a dead tracker may be sent again is decided per op in
 * `retry-policy.ts`. A call refused with UNAUTHENTICATED while logged in (the session expired, or
 * we moved to a tracker that has not yet received it) logs in again with the credentials kept in
 * memory, once, and repeats the call; if the password is refused the session is lost and
 * `onSessionLost` says so (any other failure of the renewal keeps the session for a later try).
 *
 * While a session is open the link sends a heartbeat every `heartbeatIntervalMs` and right after
 * every (re)connection, so the tracker holding the connection keeps this client's presence lease.
 * Timers and the socket factory are injected for tests.
 */
import { connect as netConnect, type Socket } from 'node:net';
import { CoterieError, describe, type ErrorCode } from '../common/errors.js';
import { formatEndpoint, type Endpoint } from '../common/config.js';
import type { Logger } from '../common/log.js';
import {
  encodeLine, LineDecoder, MAX_LINE_BYTES, ops, responseSchema,
  type OpArgs, type OpName, type OpResult, type Response, type ShareRef,
} from '../protocol/rpc.js';
import { RETRY_POLICIES, type ReconcileContext } from './retry-policy.js';

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

/** Anything that can make tracker calls: the link, or an in-memory stand-in in tests. */
export interface RpcCaller {
  call<K extends OpName>(op: K, args: OpArgs<K>): Promise<OpResult<K>>;
}

export interface TrackerLinkOptions {
  /** Trackers in tracker_info order; at least one. */
  trackers: Endpoint[];
  /** This client's peer address, `IP:PORT`, sent in heartbeats and share announcements. */
  peer: string;
  clientId: string;
  /** What this client serves right now, sent with every heartbeat. */
  shares: () => ShareRef[];
  logger?: Logger;
  connectTimeoutMs?: number;
  callTimeoutMs?: number;
  heartbeatIntervalMs?: number;
  timers?: Timers;
  /** Opens a TCP connection (default node:net connect). */
  connect?: (e: Endpoint) => Socket;
  /** The session ended without the user asking (could not be renewed). */
  onSessionLost?: (err: CoterieError) => void;
  /** A login the link made by itself (session renewal) succeeded; its answer carries tracker keys. */
  onRenewed?: (result: OpResult<'login'>) => void;
}

/** An open session: the token the trackers gave, and what is needed to renew it. */
interface Session { user: string; token: string; password: string }

/** A tracker failed during a call; `written` says whether the request may have reached it. */
class TrackerFailure extends Error {
  constructor(message: string, readonly written: boolean, readonly endpoint: Endpoint) { super(message); }
}

interface Pending { resolve: (r: Response) => void; reject: (e: TrackerFailure) => void }

/** One TCP connection to one tracker. Fails as a whole: a failure rejects every call on it. */
class Connection {
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

const KNOWN_CODES = new Set<string>([
  'BAD_REQUEST', 'TOO_LARGE', 'UNKNOWN_OP', 'INTERNAL', 'UNAVAILABLE', 'RATE_LIMITED',
  'UNAUTHENTICATED', 'WRONG_PASSWORD', 'NO_SUCH_USER', 'USER_EXISTS', 'ALREADY_LOGGED_IN',
  'GROUP_EXISTS', 'NO_SUCH_GROUP', 'NOT_OWNER', 'NOT_MEMBER', 'ALREADY_MEMBER',
  'REQUEST_PENDING', 'NO_REQUEST', 'OWNER_LAST_MEMBER', 'INVALID_NAME',
  'NO_SUCH_FILE', 'NAME_CONFLICT', 'NOT_SHARING', 'NO_SEEDER', 'BAD_MANIFEST',
  'CLAIM_LOST', 'CLOCK_SKEW', 'ACCESS_DENIED',
] satisfies ErrorCode[]);

function remoteError(e: { code: string; message: string }): CoterieError {
  // A code this client does not know (a newer tracker) keeps its message, which is meant for users.
  const code = (KNOWN_CODES.has(e.code) ? e.code : 'INTERNAL') as ErrorCode;
  return new CoterieError(code, e.message);
}

/** See the module comment. */
export class TrackerLink implements RpcCaller {
  private readonly trackers: Endpoint[];
  private readonly timers: Timers;
  private readonly connectTimeoutMs: number;
  private readonly callTimeoutMs: number;
  private readonly heartbeatIntervalMs: number;
  private readonly connectFn: (e: Endpoint) => Socket;
  private index = 0;
  private conn: Connection | null = null;
  private connecting: Promise<Connection> | null = null;
  private nextId = 1;
  private session: Session | null = null;
  private heartbeatTimer: unknown = null;
  private heartbeatInFlight: Promise<void> | null = null;
  private heartbeatQueued: Promise<void> | null = null;
  private relogging: Promise<void> | null = null;
  private closed = false;

  constructor(private readonly opts: TrackerLinkOptions) {
    if (opts.trackers.length === 0) throw new CoterieError('NO_TRACKER', 'no tracker to connect to');
    this.trackers = opts.trackers;
    this.timers = opts.timers ?? realTimers;
    this.connectTimeoutMs = opts.connectTimeoutMs ?? 1000;
    this.callTimeoutMs = opts.callTimeoutMs ?? 5000;
    this.heartbeatIntervalMs = opts.heartbeatIntervalMs ?? 5000;
    this.connectFn = opts.connect ?? ((e) => netConnect({ host: e.host, port: e.port }));
  }

  /** The tracker in use (or about to be tried). */
  get currentTracker(): Endpoint { return this.trackers[this.index]!; }

  /** The logged-in user, if a session is open. */
  get user(): string | undefined { return this.session?.user; }

  /**
   * Calls `op` on a tracker, failing over as described in the module comment. Resolves with the
   * validated result; rejects with the tracker's CoterieError, or NO_TRACKER / UNAVAILABLE.
   */
  async call<K extends OpName>(op: K, args: OpArgs<K>): Promise<OpResult<K>> {
    try {
      return await this.callWithPolicy(op, args, undefined, true);
    } catch (err) {
      if (!(err instanceof CoterieError) || err.code !== 'UNAUTHENTICATED' || !ops[op].auth || op === 'logout') throw err;
      const before = this.session;
      if (!before) throw err;
      await this.renewSession(before);
      return this.callWithPolicy(op, args, undefined, true);
    }
  }

  /** Opens a session after a successful `login`: heartbeats start now (the first one at once). */
  startSession(user: string, token: string, password: string): void {
    this.session = { user, token, password };
    this.stopHeartbeats();
    this.heartbeatTimer = this.timers.setInterval(() => { void this.heartbeatNow(); }, this.heartbeatIntervalMs);
    void this.heartbeatNow();
  }

  /** Forgets the session (after `logout`, or when it is lost) and stops heartbeats. */
  endSession(): void {
    this.session = null;
    this.stopHeartbeats();
  }

  /**
   * Sends a heartbeat now, or right after the one in flight (whose share list may be stale), with
   * at most one waiting. Never rejects: failures are logged, and a lost session is reported
   * through `onSessionLost`.
   */
  heartbeatNow(): Promise<void> {
    if (!this.session || this.closed) return Promise.resolve();
    if (this.heartbeatInFlight) {
      this.heartbeatQueued ??= this.heartbeatInFlight.then(() => {
        this.heartbeatQueued = null;
        return this.heartbeatNow();
      });
      return this.heartbeatQueued;
    }
    const run = async (): Promise<void> => {
      try {
        await this.call('heartbeat', { peer: this.opts.peer, clientId: this.opts.clientId, shares: this.opts.shares() });
      } catch (err) {
        this.opts.logger?.warn({ err: describe(err) }, 'heartbeat failed');
      }
    };
    this.heartbeatInFlight = run().finally(() => { this.heartbeatInFlight = null; });
    return this.heartbeatInFlight;
  }

  /** Drops the connection and stops heartbeats; calls in flight fail. */
  close(): void {
    this.closed = true;
    this.stopHeartbeats();
    this.conn?.fail('link closed');
    this.conn = null;
  }

  // ------------------------------------------------------------------ internals

  private stopHeartbeats(): void {
    if (this.heartbeatTimer !== null) this.timers.clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = null;
  }

  /** Logs in again with the kept credentials (once for any number of concurrent callers). */
  private async renewSession(old: Session): Promise<void> {
    if (this.session !== old) return; // someone already renewed (or ended) it
    if (!this.relogging) {
      this.relogging = (async () => {
        try {
          const r = await this.callWithPolicy('login', {
            user: old.user, password: old.password, peer: this.opts.peer, clientId: this.opts.clientId,
          }, undefined, false);
          if (this.session === old) this.session = { ...old, token: r.token };
          this.opts.logger?.info({ user: old.user }, 'session renewed');
          this.opts.onRenewed?.(r);
        } catch (err) {
          // Only a definite "no" ends the session: the password no longer opens the account, or
          // the id went to an earlier claim. Anything else (no tracker reachable, a tracker that
          // has not yet received the account or session by replication, rate limiting) says
          // nothing about the session: keep it, fail this call, and let a later one try again.
          const code = err instanceof CoterieError ? err.code : 'INTERNAL';
          if (code !== 'WRONG_PASSWORD' && code !== 'CLAIM_LOST') {
            if (code === 'NO_TRACKER') throw err;
            throw new CoterieError('UNAVAILABLE',
              `the tracker in use does not know your session yet (${describe(err)}); try again in a moment`);
          }
          if (this.session === old) {
            this.endSession();
            this.opts.onSessionLost?.(new CoterieError('UNAUTHENTICATED', `your session ended (${describe(err)})`));
          }
          throw new CoterieError('UNAUTHENTICATED', 'your session ended and could not be renewed');
        } finally {
          this.relogging = null;
        }
      })();
    }
    await this.relogging;
  }

  /** One logical call: tries each tracker at most once, applying the op's retry policy. */
  private async callWithPolicy<K extends OpName>(
    op: K, args: OpArgs<K>, tokenOverride: string | undefined, reconcile: boolean,
  ): Promise<OpResult<K>> {
    if (this.closed) throw new CoterieError('UNAVAILABLE', 'the tracker link is closed');
    const spec = ops[op];
    const checked = spec.args.safeParse(args);
    if (!checked.success) {
      throw new CoterieError('BAD_REQUEST', `bad arguments for ${op}: ${checked.error.issues[0]?.message}`);
    }
    const policy = RETRY_POLICIES[op];
    let ambiguous = false;
    const failures: string[] = [];
    for (let attempt = 0; attempt < this.trackers.length; attempt++) {
      const token = spec.auth ? (tokenOverride ?? this.session?.token) : undefined;
      if (spec.auth && token === undefined) throw new CoterieError('NOT_LOGGED_IN', 'not logged in');
      let res: Response;
      let conn: Connection | null = null;
      try {
        conn = await this.connection();
        res = await this.send(conn, op, checked.data, token);
      } catch (err) {
        if (!(err instanceof TrackerFailure)) throw err;
        // The failed connection (or connection attempt) has already moved the link to the next tracker.
        const where = formatEndpoint(err.endpoint);
        failures.push(`${where}: ${err.message}`);
        this.opts.logger?.warn({ op, tracker: where, err: err.message, written: err.written }, 'tracker failed');
        if (err.written) {
          if (policy.retry === 'unwritten-only') {
            throw new CoterieError('UNAVAILABLE',
              `the tracker at ${where} failed before answering ${op}; it may or may not have been done, check before repeating it`);
          }
          ambiguous = true;
        }
        continue;
      }
      if (res.ok) {
        const result = spec.result.safeParse(res.result);
        if (result.success) return result.data as OpResult<K>;
        // A tracker answering outside the contract is treated like a failed one.
        const where = formatEndpoint(conn.endpoint);
        failures.push(`${where}: malformed ${op} result`);
        conn.fail('malformed result');
        ambiguous = true;
        continue;
      }
      const err = remoteError(res.error);
      if (err.code === 'UNAVAILABLE') {
        // The tracker refused to serve (e.g. shutting down) without doing anything: go elsewhere.
        failures.push(`${formatEndpoint(conn.endpoint)}: ${err.message}`);
        conn.fail('tracker unavailable');
        continue;
      }
      if (ambiguous && reconcile && policy.retry === 'reconcile') {
        const reconciled = await policy.reconcile(err, checked.data as OpArgs<K>, this.reconcileContext());
        if (reconciled !== undefined) return reconciled;
      }
      throw err;
    }
    const tried = this.trackers.map(formatEndpoint).join(', ');
    this.opts.logger?.warn({ op, failures }, 'no tracker reachable');
    throw new CoterieError('NO_TRACKER', `no tracker is reachable (tried ${tried}); check that the trackers are running`);
  }

  private reconcileContext(): ReconcileContext {
    return {
      call: (op, args, token) => this.callWithPolicy(op, args, token, false),
      sessionUser: () => this.session?.user,
      peer: this.opts.peer,
      clientId: this.opts.clientId,
    };
  }

  private send(conn: Connection, op: OpName, args: unknown, token: string | undefined): Promise<Response> {
    const id = this.nextId++;
    const msg: Record<string, unknown> = { id, op, args };
    if (token !== undefined) msg['token'] = token;
    const line = encodeLine(msg);
    if (Buffer.byteLength(line) > MAX_LINE_BYTES) {
      return Promise.reject(new CoterieError('TOO_LARGE', `the ${op} request is too large to send`));
    }
    return new Promise<Response>((resolve, reject) => {
      const timer = this.timers.setTimeout(() => conn.fail(`no answer to ${op} within ${this.callTimeoutMs} ms`), this.callTimeoutMs);
      conn.pending.set(id, {
        resolve: (r) => { this.timers.clearTimeout(timer); resolve(r); },
        reject: (e) => { this.timers.clearTimeout(timer); reject(e); },
      });
      if (!conn.write(line)) {
        conn.pending.delete(id);
        this.timers.clearTimeout(timer);
        reject(new TrackerFailure('connection closed before the request was sent', false, conn.endpoint));
      }
    });
  }

  /** The open connection, or a new one to the current tracker. */
  private connection(): Promise<Connection> {
    if (this.conn && !this.conn.closed) return Promise.resolve(this.conn);
    if (this.connecting) return this.connecting;
    const index = this.index;
    const endpoint = this.trackers[index]!;
    this.connecting = new Promise<Connection>((resolve, reject) => {
      const giveUp = (why: string): void => {
        if (this.index === index) this.index = (index + 1) % this.trackers.length;
        reject(new TrackerFailure(why, false, endpoint));
      };
      let socket: Socket;
      try { socket = this.connectFn(endpoint); } catch (e) { giveUp(describe(e)); return; }
      let settled = false;
      const timer = this.timers.setTimeout(() => {
        if (settled) return;
        settled = true;
        socket.destroy();
        giveUp(`could not connect within ${this.connectTimeoutMs} ms`);
      }, this.connectTimeoutMs);
      socket.once('error', (e) => {
        if (settled) return;
        settled = true;
        this.timers.clearTimeout(timer);
        socket.destroy();
        giveUp(`could not connect: ${e.message}`);
      });
      socket.once('connect', () => {
        if (settled) return;
        settled = true;
        this.timers.clearTimeout(timer);
        socket.setNoDelay(true);
        const conn = new Connection(index, endpoint, socket, (c, why) => this.onConnectionFailed(c, why), this.opts.logger);
        if (this.closed) { conn.fail('link closed'); reject(new TrackerFailure('link closed', false, endpoint)); return; }
        this.conn = conn;
        this.opts.logger?.info({ tracker: formatEndpoint(endpoint) }, 'connected to tracker');
        resolve(conn);
        // A new tracker holds our presence from now on: tell it at once.
        if (this.session && !this.heartbeatInFlight) void this.heartbeatNow();
      });
    });
    const p = this.connecting;
    const clear = (): void => { if (this.connecting === p) this.connecting = null; };
    p.then(clear, clear);
    return p;
  }

  /** A connection died on its own (not during a call): move on, and reconnect now if logged in. */
  private onConnectionFailed(conn: Connection, why: string): void {
    if (this.conn !== conn) return;
    this.conn = null;
    if (this.closed) return;
    if (this.index === conn.index) this.index = (conn.index + 1) % this.trackers.length;
    this.opts.logger?.warn({ tracker: formatEndpoint(conn.endpoint), why }, 'lost the tracker connection');
    if (this.session) this.timers.setTimeout(() => { void this.heartbeatNow(); }, 0);
  }
}
