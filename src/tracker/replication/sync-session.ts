/**
 * The delta-sync protocol of one replication link, as a pure state machine: frames in, frames out,
 * no sockets and no timers (the link feeds it and calls `tick` every few seconds). Modelled on
 * syncthing's delta index: each side tells the other its version vector and ships every change the
 * other lacks, in seq order per origin, in bounded batches.
 *
 * Flow control and repair: at most `window` `changes` frames are unacknowledged at once; an `ack`
 * carries the receiver's vector after processing, so a sender learns both progress and refusals
 * (an origin the receiver holds less of than was sent up to that frame). Refused or lost ranges are
 * re-sent from the receiver's vector at the next tick, never in a tight loop (a change refused for
 * clock skew becomes acceptable once clocks catch up). The protocol converges over a transport
 * that drops, duplicates or reorders frames, because every merge is idempotent and the periodic
 * vector exchange and ack timeout bring any lost range back (see the property tests).
 *
 * The receiver accepts only contiguous runs per origin (a gap would otherwise be hidden forever
 * behind a higher seq in the vector) and refuses changes whose HLC is more than `maxSkewMs` ahead
 * of its physical clock (CLOCK_SKEW), along with the rest of that origin's run.
 */
import { CoterieError, describe } from '../../common/errors.js';
import { MAX_SKEW_MS } from '../store/hlc.js';
import type { Change, Clock, ReplicaStore, VersionVector } from './types.js';
import {
  CHANGES_FRAME_BUDGET, MAX_CHANGES_PER_FRAME,
  type AckFrame, type ChangesFrame, type SyncFrame, type VectorFrame,
} from './wire.js';

export interface SyncOptions {
  clock: Clock;
  maxSkewMs?: number;
  /** Most unacknowledged `changes` frames. */
  window?: number;
  /** Most changes per frame. */
  batchMax?: number;
  /** Byte budget of one frame's changes (JSON). */
  batchBytes?: number;
  /** A frame unacknowledged this long is presumed lost and its range re-sent. */
  ackTimeoutMs?: number;
}

/** Why a received change was not applied. */
export interface Refusal { origin: string; seq: number; code: 'CLOCK_SKEW' | 'GAP' | 'OWN_ORIGIN' | string; message: string }

export interface ReceiveResult {
  out: SyncFrame[];
  /** Changes merged into the store (other links may now have something to forward). */
  applied: number;
  refused: Refusal[];
}

/** Counters for the status op and the benchmark. */
export interface SyncStats {
  framesSent: number; changesSent: number; changesApplied: number; changesRefused: number;
  /** Local ms of the last ack or vector received. */
  lastHeardAt: number | null;
}

/** Wall part of an HLC string `wall-logical`. */
export function hlcWall(hlc: string): number {
  return Number(hlc.slice(0, hlc.indexOf('-')));
}

/** Changes the holder of `ahead` has beyond `behind`, summed over origins. */
export function vectorLag(ahead: VersionVector, behind: VersionVector): number {
  let lag = 0;
  for (const [o, s] of Object.entries(ahead)) lag += Math.max(0, s - (behind[o] ?? 0));
  return lag;
}

interface InFlight { at: number; top: VersionVector }

export class SyncSession {
  private their: VersionVector | null = null;
  /** Per origin, the highest seq the peer holds or that is on its way to it. */
  private readonly sent: VersionVector = {};
  private readonly inflight = new Map<number, InFlight>();
  private nextN = 1;
  /** Origins the peer fell short of; re-sent from its vector at the next tick. */
  private readonly suspect = new Set<string>();
  private readonly maxSkewMs: number;
  private readonly window: number;
  private readonly batchMax: number;
  private readonly batchBytes: number;
  private readonly ackTimeoutMs: number;
  readonly stats: SyncStats = { framesSent: 0, changesSent: 0, changesApplied: 0, changesRefused: 0, lastHeardAt: null };

  constructor(private readonly store: ReplicaStore, private readonly opts: SyncOptions) {
    this.maxSkewMs = opts.maxSkewMs ?? MAX_SKEW_MS;
    this.window = opts.window ?? 8;
    this.batchMax = Math.min(opts.batchMax ?? 512, MAX_CHANGES_PER_FRAME);
    this.batchBytes = opts.batchBytes ?? CHANGES_FRAME_BUDGET;
    this.ackTimeoutMs = opts.ackTimeoutMs ?? 10_000;
  }

  /** The peer's vector as last reported (null before the first vector or ack). */
  get theirVector(): VersionVector | null { return this.their; }

  /** Frames unacknowledged right now. */
  get inFlight(): number { return this.inflight.size; }

  /** First frames of a link: our vector. */
  open(): SyncFrame[] {
    return [this.vectorFrame()];
  }

  receive(frame: SyncFrame): ReceiveResult {
    switch (frame.t) {
      case 'vector':
        this.heard();
        this.learn(frame.vector);
        return { out: this.pump(), applied: 0, refused: [] };
      case 'ack':
        this.heard();
        return { out: this.onAck(frame), applied: 0, refused: [] };
      case 'changes': {
        const { applied, refused } = this.apply(frame.changes);
        const ack: AckFrame = { t: 'ack', n: frame.n, vector: this.store.versionVector() };
        return { out: [ack], applied, refused };
      }
    }
  }

  /**
   * Called when local state grew (a local commit, or changes merged from another link): ships
   * whatever the peer lacks, as far as the window allows.
   */
  pump(): ChangesFrame[] {
    if (this.their === null) return [];
    const out: ChangesFrame[] = [];
    while (this.inflight.size < this.window) {
      const batch = this.store.changesSince(this.sent, this.batchMax);
      if (batch.length === 0) break;
      const take: Change[] = [];
      let bytes = 0;
      for (const c of batch) {
        const len = Buffer.byteLength(JSON.stringify(c));
        if (take.length > 0 && bytes + len > this.batchBytes) break;
        take.push(c);
        bytes += len;
      }
      const top: VersionVector = {};
      for (const c of take) top[c.origin] = Math.max(top[c.origin] ?? 0, c.seq);
      for (const [o, s] of Object.entries(top)) this.sent[o] = Math.max(this.sent[o] ?? 0, s);
      const n = this.nextN++;
      this.inflight.set(n, { at: this.opts.clock.now(), top });
      out.push({ t: 'changes', n, changes: take });
      this.stats.framesSent++;
      this.stats.changesSent += take.length;
    }
    return out;
  }

  /**
   * Periodic anti-entropy: announces our vector, gives up on frames unacknowledged for too long,
   * and re-sends every range the peer fell short of since the last tick.
   */
  tick(): SyncFrame[] {
    const now = this.opts.clock.now();
    for (const [n, f] of this.inflight) {
      if (now - f.at >= this.ackTimeoutMs) {
        for (const o of Object.keys(f.top)) this.suspect.add(o);
        this.inflight.delete(n);
      }
    }
    if (this.their !== null) {
      for (const o of this.suspect) this.sent[o] = Math.min(this.sent[o] ?? 0, this.their[o] ?? 0);
    }
    this.suspect.clear();
    return [this.vectorFrame(), ...this.pump()];
  }

  /** How many changes the peer lacks according to its last report (null when unknown). */
  lag(): number | null {
    return this.their === null ? null : vectorLag(this.store.versionVector(), this.their);
  }

  private vectorFrame(): VectorFrame {
    return { t: 'vector', vector: this.store.versionVector() };
  }

  private heard(): void { this.stats.lastHeardAt = this.opts.clock.now(); }

  private learn(v: VersionVector): void {
    this.their = { ...v };
    for (const [o, s] of Object.entries(v)) if (s > (this.sent[o] ?? 0)) this.sent[o] = s;
  }

  private onAck(a: AckFrame): ChangesFrame[] {
    this.learn(a.vector);
    for (const [n, f] of this.inflight) {
      if (n > a.n) continue;
      for (const [o, s] of Object.entries(f.top)) if ((a.vector[o] ?? 0) < s) this.suspect.add(o);
      this.inflight.delete(n);
    }
    return this.pump();
  }

  /** Filters a received batch down to contiguous, acceptable runs per origin and merges them. */
  private apply(changes: Change[]): { applied: number; refused: Refusal[] } {
    const have = this.store.versionVector();
    const next: VersionVector = {};
    const blocked = new Set<string>();
    const refused: Refusal[] = [];
    const accept: Change[] = [];
    const limit = this.opts.clock.now() + this.maxSkewMs;
    for (const c of changes) {
      if (blocked.has(c.origin)) continue;
      const expect = (next[c.origin] ?? have[c.origin] ?? 0) + 1;
      if (c.seq < expect) continue; // already held: a duplicate is harmless
      if (c.seq > expect) {
        blocked.add(c.origin);
        refused.push({ origin: c.origin, seq: c.seq, code: 'GAP', message: `expected seq ${expect}` });
        continue;
      }
      if (c.origin === this.store.origin) {
        // Our own log is only ever written here; a peer holding more of it than we do means this
        // data dir was rolled back. Taking them would collide with the seqs we hand out next.
        blocked.add(c.origin);
        refused.push({ origin: c.origin, seq: c.seq, code: 'OWN_ORIGIN', message: 'a peer holds changes of this origin that this tracker lacks' });
        continue;
      }
      if (hlcWall(c.hlc) > limit) {
        blocked.add(c.origin);
        refused.push({ origin: c.origin, seq: c.seq, code: 'CLOCK_SKEW', message: `stamp ${c.hlc} is more than ${this.maxSkewMs} ms ahead of this tracker's clock` });
        continue;
      }
      accept.push(c);
      next[c.origin] = c.seq;
    }
    let applied = 0;
    if (accept.length > 0) {
      try {
        applied = this.store.applyRemote(accept);
      } catch {
        // One bad change fails the whole transaction: redo one by one so that every good change
        // before it lands and the bad one (with the rest of its origin's run) is refused.
        applied = this.applyOneByOne(accept, refused);
      }
    }
    this.stats.changesApplied += applied;
    this.stats.changesRefused += refused.length;
    return { applied, refused };
  }

  private applyOneByOne(accept: Change[], refused: Refusal[]): number {
    const blocked = new Set<string>();
    let applied = 0;
    for (const c of accept) {
      if (blocked.has(c.origin)) continue;
      try {
        if (this.store.applyRemote([c]) === 0) { blocked.add(c.origin); continue; }
        applied++;
      } catch (err) {
        blocked.add(c.origin);
        const code = err instanceof CoterieError ? err.code : 'INVALID';
        refused.push({ origin: c.origin, seq: c.seq, code, message: describe(err) });
      }
    }
    return applied;
  }
}
