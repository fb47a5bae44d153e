/**
 * The delta-sync protocol between in-memory trackers over a simulated network that drops,
 * duplicates and reorders frames: once the network heals, every tracker holds every change and
 * all digests are equal. Also the single-link properties: batching under the byte budget, the
 * send window, gap and clock-skew refusal with repair at the next tick.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { HybridClock } from '../../../src/tracker/store/hlc.js';
import { MemoryStore } from '../../../src/tracker/store/memory-store.js';
import { rowKey } from '../../../src/tracker/store/merge.js';
import type { Delta } from '../../../src/tracker/store/store.js';
import { SyncSession, vectorLag } from '../../../src/tracker/replication/sync-session.js';
import type { Clock } from '../../../src/tracker/replication/types.js';
import type { SyncFrame } from '../../../src/tracker/replication/wire.js';

const T0 = 1_750_000_000_000;

class FakeTime implements Clock {
  t = T0;
  now(): number { return this.t; }
}

function origin(i: number): string { return (0xa0 + i).toString(16).padStart(16, '0'); }

function makeStore(i: number, time: FakeTime): MemoryStore {
  return new MemoryStore({ clock: new HybridClock(() => time.now()), origin: origin(i) });
}

/** A write of one of three kinds with different merges: first claim (user), LWW (share), OR-set (member). */
function writeDelta(s: MemoryStore, w: { kind: number; key: number; flag: boolean }): Delta {
  const st = { hlc: s.clock.now(), origin: s.origin };
  switch (w.kind) {
    case 0: return { kind: 'user', key: `u${w.key}`, value: { salt: 'c2FsdA==', hash: `h-${s.origin}`, created: st } };
    case 1: return {
      kind: 'share', key: rowKey(`g${w.key % 3}`, 'a'.repeat(40), `u${w.key}`, 'b'.repeat(16)),
      value: { peer: `127.0.0.1:${1000 + w.key}`, live: w.flag, at: st },
    };
    default: {
      const claim = { hlc: '0000000000001-000000', origin: origin(0) };
      const tag = { at: st, claim };
      return { kind: 'member', key: rowKey('g', `u${w.key}`), value: w.flag ? { adds: [tag], removes: [] } : { adds: [], removes: [tag] } };
    }
  }
}

interface Msg { to: number; from: number; frame: SyncFrame }

/** N nodes, a session per ordered pair, and a bag of frames in flight. */
class Net {
  readonly time = new FakeTime();
  readonly stores: MemoryStore[];
  /** sessions[i][j]: node i's session with node j. */
  readonly sessions: (SyncSession | null)[][];
  bag: Msg[] = [];

  constructor(readonly n: number, opts: { window?: number; batchMax?: number } = {}) {
    this.stores = Array.from({ length: n }, (_, i) => makeStore(i, this.time));
    this.sessions = this.stores.map((s, i) => this.stores.map((_, j) => (i === j ? null
      : new SyncSession(s, { clock: this.time, window: opts.window ?? 2, batchMax: opts.batchMax ?? 3, ackTimeoutMs: 6000 }))));
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) if (i !== j) this.emit(i, j, this.sessions[i]![j]!.open());
  }

  emit(from: number, to: number, frames: SyncFrame[]): void {
    for (const frame of frames) this.bag.push({ from, to, frame });
  }

  /** What the replicator does after any commit on a node: pump every link. */
  pumpAll(i: number): void {
    for (let j = 0; j < this.n; j++) if (j !== i) this.emit(i, j, this.sessions[i]![j]!.pump());
  }

  deliver(m: Msg): void {
    const r = this.sessions[m.to]![m.from]!.receive(m.frame);
    this.emit(m.to, m.from, r.out);
    if (r.applied > 0) this.pumpAll(m.to);
  }

  tick(ms: number): void {
    this.time.t += ms;
    for (let i = 0; i < this.n; i++) for (let j = 0; j < this.n; j++) if (i !== j) this.emit(i, j, this.sessions[i]![j]!.tick());
  }

  /** Reliable FIFO delivery plus ticks until nothing is in flight and everyone is equal. */
  heal(maxRounds = 200): number {
    for (let round = 0; round < maxRounds; round++) {
      while (this.bag.length > 0) this.deliver(this.bag.shift()!);
      if (this.converged()) return round;
      this.tick(2000);
    }
    return -1;
  }

  converged(): boolean {
    const v0 = JSON.stringify(sortObj(this.stores[0]!.versionVector()));
    const d0 = this.stores[0]!.digest();
    return this.stores.every((s) => JSON.stringify(sortObj(s.versionVector())) === v0 && s.digest() === d0);
  }
}

function sortObj(o: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : 1)));
}

const action = fc.oneof(
  { weight: 4, arbitrary: fc.record({ t: fc.constant('write' as const), node: fc.nat(), kind: fc.nat(2), key: fc.nat(5), flag: fc.boolean() }) },
  { weight: 6, arbitrary: fc.record({ t: fc.constant('deliver' as const), pick: fc.nat() }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('drop' as const), pick: fc.nat() }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('dup' as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('tick' as const), ms: fc.integer({ min: 1, max: 3000 }) }) },
);

test('sync converges over a network that drops, duplicates and reorders frames', () => {
  fc.assert(fc.property(fc.integer({ min: 2, max: 4 }), fc.array(action, { maxLength: 150 }), (n, actions) => {
    const net = new Net(n);
    let writes = 0;
    for (const a of actions) {
      if (a.t === 'write') {
        const i = a.node % n;
        net.stores[i]!.commitLocal([writeDelta(net.stores[i]!, a)]);
        writes++;
        net.pumpAll(i);
      } else if (a.t === 'tick') {
        net.tick(a.ms);
      } else if (net.bag.length > 0) {
        const k = a.pick % net.bag.length; // any frame in flight, not only the oldest: reordering
        const m = net.bag[k]!;
        if (a.t === 'drop') net.bag.splice(k, 1);
        else if (a.t === 'dup') net.bag.push({ ...m });
        else { net.bag.splice(k, 1); net.deliver(m); }
      }
    }
    const rounds = net.heal();
    assert.ok(rounds >= 0, 'did not converge after healing');
    const total = net.stores.reduce((acc, s) => acc + (s.versionVector()[s.origin] ?? 0), 0);
    assert.equal(total, writes);
    for (const s of net.stores) assert.equal(Object.values(s.versionVector()).reduce((a, b) => a + b, 0), writes);
  }), { numRuns: 150 });
});

test('forwarding: a tracker reachable only through another converges', () => {
  // Line topology 0 - 1 - 2: frames between 0 and 2 are always dropped.
  const net = new Net(3);
  for (let k = 0; k < 20; k++) {
    net.stores[0]!.commitLocal([writeDelta(net.stores[0]!, { kind: k % 3, key: k, flag: true })]);
    net.stores[2]!.commitLocal([writeDelta(net.stores[2]!, { kind: (k + 1) % 3, key: k, flag: false })]);
  }
  net.pumpAll(0); net.pumpAll(2);
  for (let round = 0; round < 100 && !net.converged(); round++) {
    while (net.bag.length > 0) {
      const m = net.bag.shift()!;
      if ((m.from === 0 && m.to === 2) || (m.from === 2 && m.to === 0)) continue;
      net.deliver(m);
    }
    net.tick(2000);
  }
  assert.ok(net.converged());
  assert.equal(net.stores[2]!.versionVector()[origin(0)], 20);
});

test('a batch respects the frame budget and the window bounds frames in flight', () => {
  const time = new FakeTime();
  const a = makeStore(0, time), b = makeStore(1, time);
  for (let k = 0; k < 100; k++) a.commitLocal([writeDelta(a, { kind: 1, key: k, flag: true })]);
  const sa = new SyncSession(a, { clock: time, window: 3, batchMax: 1000, batchBytes: 2000 });
  const sb = new SyncSession(b, { clock: time });
  sa.receive(sb.open()[0]!);
  const frames = sa.pump();
  assert.equal(frames.length, 0, 'the vector already triggered the pump');
  // Re-create to observe the first burst explicitly.
  const sa2 = new SyncSession(a, { clock: time, window: 3, batchMax: 1000, batchBytes: 2000 });
  const burst = sa2.receive(sb.open()[0]!).out;
  assert.equal(burst.length, 3, 'window of 3 frames');
  for (const f of burst) {
    assert.equal(f.t, 'changes');
    if (f.t === 'changes') assert.ok(Buffer.byteLength(JSON.stringify(f.changes)) <= 2000 + 200);
  }
  assert.equal(sa2.inFlight, 3);
  // Acks reopen the window until everything is across.
  let queue = burst;
  let guard = 0;
  while (queue.length > 0 && guard++ < 1000) {
    const f = queue.shift()!;
    const r = sb.receive(f);
    for (const back of r.out) queue.push(...sa2.receive(back).out);
  }
  assert.equal(b.versionVector()[a.origin], 100);
  assert.equal(b.digest(), a.digest());
  assert.equal(sa2.lag(), 0);
});

test('a change stamped too far ahead is refused (CLOCK_SKEW) with the rest of its run, and re-sent later', () => {
  const tA = new FakeTime(), tB = new FakeTime();
  tA.t = T0 + 120_000; // A's clock runs two minutes ahead of B's
  const a = makeStore(0, tA), b = makeStore(1, tB);
  for (let k = 0; k < 5; k++) a.commitLocal([writeDelta(a, { kind: 0, key: k, flag: true })]);
  const sa = new SyncSession(a, { clock: tA });
  const sb = new SyncSession(b, { clock: tB });
  const out = sa.receive(sb.open()[0]!).out;
  assert.equal(out.length, 1);
  const r = sb.receive(out[0]!);
  assert.equal(r.applied, 0);
  assert.deepEqual(r.refused.map((x) => x.code), ['CLOCK_SKEW']);
  assert.equal(sa.receive(r.out[0]!).out.length, 0, 'no tight resend loop');
  // B's clock catches up: the next tick re-sends and B takes it.
  tB.t += 120_000;
  const again = sa.tick().filter((f) => f.t === 'changes');
  assert.equal(again.length, 1);
  assert.equal(sb.receive(again[0]!).applied, 5);
  assert.equal(b.digest(), a.digest());
});

test('a gap is not filled by a later seq: the receiver waits for the missing change', () => {
  const time = new FakeTime();
  const a = makeStore(0, time), b = makeStore(1, time);
  for (let k = 0; k < 4; k++) a.commitLocal([writeDelta(a, { kind: 1, key: k, flag: true })]);
  const all = a.changesSince({}, 10);
  const sb = new SyncSession(b, { clock: time });
  const r = sb.receive({ t: 'changes', n: 1, changes: [all[0]!, all[2]!, all[3]!] });
  assert.equal(r.applied, 1);
  assert.equal(r.refused[0]?.code, 'GAP');
  assert.equal(b.versionVector()[a.origin], 1);
  assert.equal(vectorLag(a.versionVector(), b.versionVector()), 3);
});

test('changes of the receiver\'s own origin that it lacks are refused', () => {
  const time = new FakeTime();
  const a = makeStore(0, time);
  const rolledBack = makeStore(0, time); // same origin, empty: a data dir restored from an old copy
  a.commitLocal([writeDelta(a, { kind: 1, key: 1, flag: true })]);
  const s = new SyncSession(rolledBack, { clock: time });
  const r = s.receive({ t: 'changes', n: 1, changes: a.changesSince({}, 10) });
  assert.equal(r.applied, 0);
  assert.equal(r.refused[0]?.code, 'OWN_ORIGIN');
});

test('an invalid change is refused alone; the valid ones of other origins land', () => {
  const time = new FakeTime();
  const a = makeStore(0, time), c = makeStore(2, time), b = makeStore(1, time);
  a.commitLocal([writeDelta(a, { kind: 1, key: 1, flag: true })]);
  c.commitLocal([writeDelta(c, { kind: 1, key: 2, flag: true })]);
  const bad = { ...a.changesSince({}, 1)[0]!, delta: { nonsense: true } };
  const sb = new SyncSession(b, { clock: time });
  const r = sb.receive({ t: 'changes', n: 1, changes: [bad, ...c.changesSince({}, 1)] });
  assert.equal(r.applied, 1);
  assert.equal(r.refused[0]?.code, 'PROTOCOL');
  assert.equal(b.versionVector()[c.origin], 1);
  assert.equal(b.versionVector()[a.origin], undefined);
});

test('any set of changes delivered to N stores in any order, duplicated and interleaved, gives identical digests', () => {
  fc.assert(fc.property(
    fc.integer({ min: 2, max: 4 }),
    fc.array(fc.record({ node: fc.nat(), kind: fc.nat(2), key: fc.nat(4), flag: fc.boolean() }), { minLength: 1, maxLength: 60 }),
    fc.array(fc.nat(), { minLength: 1, maxLength: 400 }),
    (n, writes, order) => {
      const time = new FakeTime();
      const writers = Array.from({ length: n }, (_, i) => makeStore(i, time));
      for (const w of writes) { time.t += w.key; const s = writers[w.node % n]!; s.commitLocal([writeDelta(s, w)]); }
      const all = writers.flatMap((s) => s.changesSince({}, 10_000));
      // Fresh replicas receive every change, in an order (with repeats) picked by `order`.
      const replicas = Array.from({ length: n }, (_, i) => makeStore(10 + i, time));
      for (const [r, rep] of replicas.entries()) {
        const seq = [...order.map((k) => all[(k + r * 7) % all.length]!), ...all];
        for (let pass = 0; pass < all.length + 1; pass++) {
          let applied = 0;
          for (const c of seq) applied += rep.applyRemote([c]);
          if (applied === 0) break;
        }
      }
      const d = replicas[0]!.digest();
      for (const rep of replicas) assert.equal(rep.digest(), d);
      // ...and equal to a writer that got everything in log order.
      writers[0]!.applyRemote(all);
      assert.equal(writers[0]!.digest(), d);
    }), { numRuns: 200 });
});
