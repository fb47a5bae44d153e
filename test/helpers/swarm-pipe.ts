/**
 * In-memory duplex pairs for driving peer sessions without sockets. Writes are queued and
 * delivered only by `pump()`, so tests control interleaving and never depend on timing.
 */
import type { PeerSession, SessionTransport } from '../../src/swarm/session.js';

export class MemoryTransport implements SessionTransport {
  readonly out: Buffer[] = [];
  private cbs: Array<(err?: Error | null) => void> = [];
  destroyed = false;
  /** Writes made (one per `write` call: what a socket would turn into syscalls). */
  writes = 0;
  corked = 0;
  /** The session that writes through this transport (and reads what the other side writes). */
  session: PeerSession | null = null;

  write(buf: Uint8Array, cb?: (err?: Error | null) => void): boolean {
    if (this.destroyed) { cb?.(new Error('destroyed')); return false; }
    this.writes++;
    this.out.push(Buffer.from(buf));
    if (cb) this.cbs.push(cb);
    return true;
  }
  cork(): void { this.corked++; }
  uncork(): void { this.corked--; }
  get writableLength(): number { return this.out.reduce((n, b) => n + b.length, 0); }
  destroy(): void { this.destroyed = true; }

  /** Takes what was written so far (and completes its write callbacks). */
  drain(): Buffer[] {
    const o = this.out.splice(0);
    const cbs = this.cbs.splice(0);
    for (const f of cbs) f(null);
    return o;
  }
}

export interface Pair {
  a: MemoryTransport;
  b: MemoryTransport;
  /** Delivers queued bytes both ways until nothing moves; closes a side whose peer was destroyed. */
  pump(maxRounds?: number): void;
}

export function pipePair(): Pair {
  const a = new MemoryTransport(), b = new MemoryTransport();
  const pump = (maxRounds = 1000): void => {
    for (let round = 0; round < maxRounds; round++) {
      let moved = false;
      for (const [from, to] of [[a, b], [b, a]] as const) {
        const chunks = from.drain();
        for (const c of chunks) {
          moved = true;
          if (!to.destroyed && to.session && !to.session.closed) to.session.onData(c);
        }
        if (from.destroyed && to.session && !to.session.closed) { to.session.released(); moved = true; }
      }
      if (!moved) return;
    }
    throw new Error('pump did not settle');
  };
  return { a, b, pump };
}
