/**
 * Per-address admission for the tracker's RPC server: whether a new connection may be accepted,
 * and how long an address must wait before its next request is handled.
 *
 * Limits on connections: per remote address and in total, and new connections per second per
 * address (past any of them the connection is refused). Requests per second per address (all its
 * connections together): past the rate, its requests wait their turn ({@link AddressLimiter}), so
 * a flooding address slows itself down and cannot starve the others.
 *
 * Invariants: the count of open connections per address includes exactly the connections that
 * {@link Admission.admit} accepted and {@link Admission.release} has not yet released (an address
 * with none has no entry); a refusal changes no count. The server owns the sockets; this only
 * counts and paces.
 */
import type { Logger } from '../common/log.js';
import { AddressLimiter } from './address-limiter.js';

/** The transport limits admission applies (see `ServerLimits` in server.ts for each one). */
export interface AdmissionLimits {
  maxConnsPerAddress: number;
  maxConns: number;
  requestsPerSecondPerAddress: number;
  requestBurstPerAddress: number;
  connectionsPerSecondPerAddress: number;
  connectionBurstPerAddress: number;
}

/** See the module comment. */
export class Admission {
  private readonly perAddress = new Map<string, number>();
  private readonly requestLimiter: AddressLimiter;
  private readonly connectLimiter: AddressLimiter;
  /** Addresses currently being slowed down, so the log says so once per episode, not per request. */
  private readonly throttled = new Set<string>();

  constructor(private readonly limits: AdmissionLimits, private readonly logger: Logger) {
    this.requestLimiter = new AddressLimiter({ ratePerSecond: limits.requestsPerSecondPerAddress, burst: limits.requestBurstPerAddress });
    this.connectLimiter = new AddressLimiter({ ratePerSecond: limits.connectionsPerSecondPerAddress, burst: limits.connectionBurstPerAddress });
  }

  /**
   * Whether a new connection from `remote` may be accepted while `total` connections are open; if
   * so it is counted against its address (until {@link release}). A refusal is logged.
   */
  admit(remote: string, total: number): boolean {
    const n = this.perAddress.get(remote) ?? 0;
    if (total >= this.limits.maxConns || n >= this.limits.maxConnsPerAddress || !this.connectLimiter.tryTake(remote, Date.now())) {
      this.logger.warn({ remote, total, fromAddress: n }, 'connection refused: too many connections');
      return false;
    }
    this.perAddress.set(remote, n + 1);
    return true;
  }

  /** An admitted connection from `remote` closed (or was handed over). */
  release(remote: string): void {
    const n = (this.perAddress.get(remote) ?? 1) - 1;
    if (n <= 0) this.perAddress.delete(remote); else this.perAddress.set(remote, n);
  }

  /** Milliseconds this address must wait before its next request is handled (0: go ahead). See {@link AddressLimiter}. */
  paceWait(remote: string): number {
    const wait = this.requestLimiter.take(remote, Date.now());
    if (wait <= 0) {
      if (this.throttled.size > 0) this.throttled.delete(remote);
      return 0;
    }
    if (!this.throttled.has(remote)) {
      if (this.throttled.size >= 10_000) this.throttled.clear();
      this.throttled.add(remote);
      this.logger.warn({ remote, waitMs: wait }, 'address over its request rate: slowing it down');
    }
    return wait;
  }
}
