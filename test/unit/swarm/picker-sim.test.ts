/**
 * Property tests of the picker on synthetic swarms. A simulated download loop drives it with
 * random events (requests, arrivals in any order, rejects, chokes, peers coming and going, HAVEs,
 * failed hash checks) while a shadow model, kept from what the picker handed out, checks its
 * answers after every step. Then a seeder joins and the run must end complete.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Bitfield } from '../../../src/swarm/bitfield.js';
import { Picker, type BlockRequest, type PeerKey } from '../../../src/swarm/picker/index.js';
import { seededRandom } from '../../../src/common/prng.js';

const prng = seededRandom;

interface Config {
  pieceCount: number; pieceLength: number; lastLength: number; blockSize: number;
  randomFirstPieces: number; endgameDuplicates: number; haveDensity: number; seed: number;
  /** Joining peers have at most this share of the pieces (and are never seeders): many pieces, few each. */
  sparse?: number;
}

const config: fc.Arbitrary<Config> = fc.record({
  pieceCount: fc.integer({ min: 1, max: 40 }),
  blockSize: fc.constantFrom(16, 24, 64),
  pieceLength: fc.integer({ min: 1, max: 200 }),
  lastLength: fc.integer({ min: 1, max: 200 }),
  randomFirstPieces: fc.integer({ min: 0, max: 5 }),
  endgameDuplicates: fc.integer({ min: 1, max: 4 }),
  haveDensity: fc.constantFrom(0, 0, 0.3),
  seed: fc.integer(),
}).map((c) => ({ ...c, lastLength: Math.min(c.lastLength, c.pieceLength) }));

type Has = Set<number> | 'all';

/** The download loop plus a shadow model of everything the picker should know. */
class Sim {
  readonly pk: Picker;
  readonly rng: () => number;
  readonly peers = new Map<PeerKey, Has>();
  /** Requests in flight per peer, by block key. */
  readonly inflight = new Map<PeerKey, Map<string, BlockRequest>>();
  /** Blocks received in pieces not yet verified. */
  readonly received = new Set<string>();
  private nextKey = 0;

  constructor(readonly c: Config) {
    this.rng = prng(c.seed);
    const have = new Bitfield(c.pieceCount);
    for (let p = 0; p < c.pieceCount; p++) if (this.rng() < c.haveDensity) have.set(p);
    this.pk = new Picker({
      pieceCount: c.pieceCount, pieceLength: c.pieceLength, blockSize: c.blockSize,
      totalLength: (c.pieceCount - 1) * c.pieceLength + c.lastLength,
      randomFirstPieces: c.randomFirstPieces, endgameDuplicates: c.endgameDuplicates, rng: prng(c.seed ^ 0x5eed),
    }, have);
  }

  pieceSize(p: number): number { return p === this.c.pieceCount - 1 ? this.c.lastLength : this.c.pieceLength; }
  blocks(p: number): number { return Math.ceil(this.pieceSize(p) / this.c.blockSize); }
  has(peer: PeerKey, p: number): boolean { const h = this.peers.get(peer)!; return h === 'all' || h.has(p); }
  pick<T>(xs: T[]): T { return xs[Math.floor(this.rng() * xs.length)]!; }

  join(kind?: 'all'): void {
    const key = this.nextKey++;
    const r = this.rng();
    let has: Has;
    if (kind === 'all' || (r < 0.3 && this.c.sparse === undefined)) has = 'all';
    else {
      const density = this.c.sparse !== undefined ? this.rng() * this.c.sparse : r < 0.4 ? 0 : this.rng();
      has = new Set([...Array(this.c.pieceCount).keys()].filter(() => this.rng() < density));
    }
    this.peers.set(key, has);
    this.inflight.set(key, new Map());
    this.pk.peerJoined(key, has === 'all' ? 'all' : has.size === 0 && this.rng() < 0.5 ? 'none' : bitfield(this.c.pieceCount, has));
  }

  leave(peer: PeerKey): void {
    this.pk.peerLeft(peer);
    this.peers.delete(peer);
    this.inflight.delete(peer);
  }

  holders(k: string): PeerKey[] {
    return [...this.inflight].filter(([, m]) => m.has(k)).map(([p]) => p);
  }

  /** Asks for requests and checks each one against the model. */
  ask(peer: PeerKey, max: number): void {
    const pk = this.pk;
    const phase = [...Array(this.c.pieceCount).keys()].map((p) => pk.piecePhase(p));
    const rarestRule = pk.have.count >= this.c.randomFirstPieces;
    let minAvail = Infinity;
    for (let p = 0; p < this.c.pieceCount; p++) {
      if (phase[p] === 'missing' && this.has(peer, p)) minAvail = Math.min(minAvail, pk.availability(p));
    }
    const out: BlockRequest[] = [];
    const n = pk.next(peer, max, out);
    assert.equal(n, out.length);
    assert.ok(n <= max);
    const mine = this.inflight.get(peer)!;
    let firstNew = true, dup = false;
    for (const r of out) {
      const k = `${r.piece}:${r.begin}`;
      assert.ok(this.has(peer, r.piece), 'a request for a piece the peer does not have');
      assert.ok(phase[r.piece] === 'missing' || phase[r.piece] === 'partial', `request in a ${phase[r.piece]} piece`);
      assert.equal(r.begin % this.c.blockSize, 0);
      assert.equal(r.length, Math.min(this.c.blockSize, this.pieceSize(r.piece) - r.begin));
      assert.ok(r.length > 0);
      assert.ok(!mine.has(k), 'the same block twice to one peer');
      assert.ok(!this.received.has(k), 'a block already received');
      if (phase[r.piece] === 'missing' && firstNew) {
        firstNew = false;
        if (rarestRule) assert.equal(pk.availability(r.piece), minAvail, 'the first new piece is not the rarest');
      }
      if (this.holders(k).length > 0) dup = true;
      mine.set(k, r);
      assert.ok(this.holders(k).length <= this.c.endgameDuplicates, 'too many duplicates');
    }
    if (dup) assert.equal(pk.inEndgame, true, 'a duplicate request outside endgame');
  }

  /** Delivers one block from `peer` and checks the answer and the cancels. */
  deliver(peer: PeerKey, r: BlockRequest, failRate: number): void {
    const k = `${r.piece}:${r.begin}`;
    const expect = !this.received.has(k) && this.holders(k).length > 0;
    const others = this.holders(k).filter((p) => p !== peer).sort((a, b) => a - b);
    const cancels: Array<{ peer: PeerKey; req: BlockRequest }> = [];
    assert.equal(this.pk.blockReceived(peer, r.piece, r.begin, cancels), expect);
    if (!expect) { assert.equal(cancels.length, 0); return; }
    assert.deepEqual(cancels.map((x) => x.peer).sort((a, b) => a - b), others);
    for (const x of cancels) assert.deepEqual(x.req, r);
    for (const m of this.inflight.values()) m.delete(k);
    this.received.add(k);
    const done = [...Array(this.blocks(r.piece)).keys()].every((b) => this.received.has(`${r.piece}:${b * this.c.blockSize}`));
    assert.equal(this.pk.pieceReceived(r.piece), done);
    if (!done) return;
    for (let b = 0; b < this.blocks(r.piece); b++) this.received.delete(`${r.piece}:${b * this.c.blockSize}`);
    if (this.rng() < failRate) {
      this.pk.pieceFailed(r.piece);
      assert.equal(this.pk.piecePhase(r.piece), 'missing');
    } else {
      this.pk.pieceVerified(r.piece);
      assert.equal(this.pk.have.get(r.piece), true);
    }
  }

  anyInflight(): [PeerKey, BlockRequest] | undefined {
    const all = [...this.inflight].flatMap(([p, m]) => [...m.values()].map((r) => [p, r] as [PeerKey, BlockRequest]));
    return all.length === 0 ? undefined : this.pick(all);
  }

  /** What the picker reports agrees with the model. */
  check(): void {
    const pk = this.pk;
    for (const [p, m] of this.inflight) assert.equal(pk.outstanding(p), m.size, `outstanding(${p})`);
    for (let piece = 0; piece < this.c.pieceCount; piece++) {
      const n = [...this.peers.keys()].filter((p) => this.has(p, piece)).length;
      assert.equal(pk.availability(piece), n, `availability(${piece})`);
    }
    for (const p of this.peers.keys()) {
      const want = [...Array(this.c.pieceCount).keys()].some((x) => this.has(p, x) && !pk.have.get(x));
      assert.equal(pk.isInteresting(p), want, `isInteresting(${p})`);
    }
  }

  /** A seeder joins and every peer is served until done; returns the rounds it took. */
  drain(): number {
    if (![...this.peers.values()].includes('all')) this.join('all');
    let rounds = 0;
    while (!this.pk.complete) {
      assert.ok(++rounds < 10_000, 'the download did not finish');
      for (const p of this.peers.keys()) this.ask(p, 1 + Math.floor(this.rng() * 6));
      for (let i = 0; i < 4; i++) {
        const x = this.anyInflight();
        if (x !== undefined) this.deliver(x[0], x[1], 0);
      }
      this.check();
    }
    for (let p = 0; p < this.c.pieceCount; p++) assert.equal(this.pk.piecePhase(p), 'verified');
    assert.equal(this.pk.have.full, true);
    assert.equal(this.pk.inEndgame, false);
    return rounds;
  }
}

function bitfield(n: number, s: Set<number>): Bitfield {
  const b = new Bitfield(n);
  for (const p of s) b.set(p);
  return b;
}

/** Random events on `sim` (requests, arrivals, rejects, chokes, churn, HAVEs), then a drain. */
function randomRun(sim: Sim, npeers: number, steps: number): void {
  const c = sim.c;
  for (let i = 0; i < npeers; i++) sim.join();
  for (let s = 0; s < steps && !sim.pk.complete; s++) {
    const peers = [...sim.peers.keys()];
    const a = sim.rng();
    if (peers.length === 0) sim.join();
    else if (a < 0.45) sim.ask(sim.pick(peers), 1 + Math.floor(sim.rng() * 8));
    else if (a < 0.75) {
      const x = sim.anyInflight();
      if (x !== undefined) sim.deliver(x[0], x[1], 0.15);
    } else if (a < 0.8) {
      // A stray or late block: never in flight, or already received.
      const piece = Math.floor(sim.rng() * c.pieceCount);
      sim.deliver(sim.pick(peers), { piece, begin: 0, length: Math.min(c.blockSize, sim.pieceSize(piece)) }, 0);
    } else if (a < 0.85) {
      const x = sim.anyInflight();
      if (x !== undefined) { sim.pk.requestRejected(x[0], x[1]); sim.inflight.get(x[0])!.delete(`${x[1].piece}:${x[1].begin}`); }
    } else if (a < 0.88) {
      const p = sim.pick(peers);
      sim.pk.peerChoked(p);
      sim.inflight.get(p)!.clear();
    } else if (a < 0.91) sim.leave(sim.pick(peers));
    else if (a < 0.94) { if (peers.length < 8) sim.join(); }
    else {
      const p = sim.pick(peers);
      const h = sim.peers.get(p)!;
      const piece = Math.floor(sim.rng() * c.pieceCount);
      sim.pk.peerHave(p, piece);
      if (h !== 'all') { h.add(piece); if (h.size === c.pieceCount) sim.peers.set(p, 'all'); }
    }
    sim.check();
  }
  sim.drain();
}

describe('Picker on simulated swarms', () => {
  test('random event sequences keep the invariants, and every run ends complete', () => {
    fc.assert(fc.property(config, fc.integer({ min: 1, max: 6 }), fc.integer({ min: 0, max: 300 }), (c, npeers, steps) => {
      randomRun(new Sim(c), npeers, steps);
    }), { numRuns: 200 });
  });

  test('many pieces, sparse peers: rarest first holds past the probe budget, through departures and HAVEs', () => {
    // 200..700 one- or two-block pieces spread thinly over up to 8 peers: the bucket walk gives
    // up and the bitmap scan with its per-peer memo does the picking.
    const sparse = fc.record({
      pieceCount: fc.integer({ min: 200, max: 700 }),
      pieceLength: fc.integer({ min: 8, max: 32 }),
      sparse: fc.constantFrom(0.05, 0.2),
      randomFirstPieces: fc.integer({ min: 0, max: 2 }),
      seed: fc.integer(),
    }).map((x) => ({ ...x, blockSize: 16, lastLength: x.pieceLength, endgameDuplicates: 2, haveDensity: 0 }));
    fc.assert(fc.property(sparse, fc.integer({ min: 3, max: 8 }), (c, npeers) => {
      randomRun(new Sim(c), npeers, 250);
    }), { numRuns: 25 });
  });

  test('endgame finishes even when the peers holding the last blocks vanish', () => {
    fc.assert(fc.property(config, fc.integer({ min: 2, max: 5 }), (c, npeers) => {
      const sim = new Sim({ ...c, haveDensity: 0, endgameDuplicates: Math.max(2, c.endgameDuplicates) });
      for (let i = 0; i < npeers; i++) sim.join('all');
      let guard = 0;
      while (!sim.pk.inEndgame && !sim.pk.complete) {
        assert.ok(++guard < 10_000);
        for (const p of sim.peers.keys()) sim.ask(p, 1 + Math.floor(sim.rng() * 4));
        const x = sim.anyInflight();
        if (x !== undefined && !sim.pk.inEndgame) sim.deliver(x[0], x[1], 0);
      }
      if (sim.pk.complete) return;
      // Let every peer duplicate what it may, then drop all peers that hold anything but one
      // (or all of them, half the time).
      for (const p of sim.peers.keys()) sim.ask(p, 100);
      const holding = [...sim.inflight].filter(([, m]) => m.size > 0).map(([p]) => p);
      const spare = sim.rng() < 0.5 ? -1 : sim.pick(holding);
      for (const p of holding) if (p !== spare) sim.leave(p);
      assert.equal(sim.pk.complete, false);
      sim.check();
      sim.drain();
    }), { numRuns: 200 });
  });
});
