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
 *
 * This file owns the per-call policy (validation, one try per tracker, retries, reconciling),
 * request ids and call timeouts, and the session with its heartbeats. Which tracker is in use and
 * the connection to it live in `tracker-failover.ts`; one connection's framing and pending
 * answers in `tracker-connection.ts`.
 */
import type { Socket } from 'node:net';
import { CoterieError, describe, type ErrorCode } from '../common/errors.js';
import { formatEndpoint, type Endpoint } from '../common/config.js';
import type { Logger } from '../common/log.js';
import {
  encodeLine, MAX_LINE_BYTES, ops,
  type OpArgs, type OpName, type OpResult, type Response, type ShareRef,
} from '../protocol/rpc.js';
import { RETRY_POLICIES, type ReconcileContext } from './retry-policy.js';
import { realTimers, TrackerFailure, type Connection, type Timers } from './tracker-connection.js';
import { TrackerFailover } from './tracker-failover.js';

export { realTimers, type Timers } from './tracker-connection.js';

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
  private readonly failover: TrackerFailover;
  private readonly timers: Timers;
  private readonly callTimeoutMs: number;
  private readonly heartbeatIntervalMs: number;
  private nextId = 1;
  private session: Session | null = null;
  private heartbeatTimer: unknown = null;
  private heartbeatInFlight: Promise<void> | null = null;
  private heartbeatQueued: Promise<void> | null = null;
  private relogging: Promise<void> | null = null;
  private closed = false;

  constructor(private readonly opts: TrackerLinkOptions) {
    if (opts.trackers.length === 0) throw new CoterieError('NO_TRACKER', 'no tracker to connect to');
    this.timers = opts.timers ?? realTimers;
    this.callTimeoutMs = opts.callTimeoutMs ?? 5000;
    this.heartbeatIntervalMs = opts.heartbeatIntervalMs ?? 5000;
    this.failover = new TrackerFailover({
      trackers: opts.trackers,
      timers: this.timers,
      connectTimeoutMs: opts.connectTimeoutMs ?? 1000,
      connect: opts.connect,
      logger: opts.logger,
      // A new tracker holds our presence from now on: tell it at once.
      onConnected: () => { if (this.session && !this.heartbeatInFlight) void this.heartbeatNow(); },
      // The connection died on its own: reconnect now if logged in.
      onLost: () => { if (this.session) this.timers.setTimeout(() => { void this.heartbeatNow(); }, 0); },
    });
  }

  /** The tracker in use (or about to be tried). */
  get currentTracker(): Endpoint { return this.failover.current; }

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
    this.failover.close();
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
    for (let attempt = 0; attempt < this.failover.trackers.length; attempt++) {
      const token = spec.auth ? (tokenOverride ?? this.session?.token) : undefined;
      if (spec.auth && token === undefined) throw new CoterieError('NOT_LOGGED_IN', 'not logged in');
      let res: Response;
      let conn: Connection | null = null;
      try {
        conn = await this.failover.connection();
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
    const tried = this.failover.trackers.map(formatEndpoint).join(', ');
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
}
