/**
 * Cost of the picker per block on the downloader's hot path: next() + blockReceived() (plus the
 * pieceReceived / pieceVerified calls once per piece), with no network and no hashing, so the
 * figure is the picker's share of the JS thread's time.
 *
 *   node dist/bench/picker.js            the scenarios below, 7 runs each, median and best
 *   node dist/bench/picker.js 1 50       scenario 1 only, 50 runs (for a profiler)
 *
 * Main scenario: 1 GiB in 256 KiB pieces (4,096 pieces, 65,536 blocks of 16 KiB), 3 seeders, 128
 * requests in flight per peer; each turn a peer answers a batch of its oldest requests and its
 * queue is topped up with one next() call, as the data path does after a read.
 */
import { Bitfield } from '../src/swarm/bitfield.js';
import { Picker, type BlockRequest, type PeerKey } from '../src/swarm/picker/index.js';
import { seededRandom } from '../src/common/prng.js';

interface Scenario {
  name: string;
  totalLength: number;
  pieceLength: number;
  /** Seeders, then peers that each have a random `partialDensity` share of the pieces. */
  seeders: number;
  partials: number;
  partialDensity: number;
  depth: number;
  /** Blocks a peer answers per turn (one socket read's worth). */
  batch: number;
}

const GiB = 1 << 30;
const scenarios: Scenario[] = [
  { name: '1 GiB, 256 KiB pieces, 3 seeders', totalLength: GiB, pieceLength: 256 << 10, seeders: 3, partials: 0, partialDensity: 0, depth: 128, batch: 16 },
  { name: '1 GiB, 256 KiB pieces, 3 seeders, 1 block per turn', totalLength: GiB, pieceLength: 256 << 10, seeders: 3, partials: 0, partialDensity: 0, depth: 128, batch: 1 },
  { name: '1 GiB, 4 MiB pieces, 3 seeders', totalLength: GiB, pieceLength: 4 << 20, seeders: 3, partials: 0, partialDensity: 0, depth: 128, batch: 16 },
  { name: '1 GiB, 256 KiB pieces, 1 seeder + 40 half peers', totalLength: GiB, pieceLength: 256 << 10, seeders: 1, partials: 40, partialDensity: 0.5, depth: 64, batch: 16 },
  { name: '1 GiB, 64 KiB pieces (16,384), 40 sparse peers', totalLength: GiB, pieceLength: 64 << 10, seeders: 0, partials: 40, partialDensity: 0.1, depth: 64, batch: 16 },
];

const prng = seededRandom;

/** Runs one download to completion; returns [wall ns, CPU ns, blocks received]. */
function run(s: Scenario, seed: number): [number, number, number] {
  const rng = prng(seed);
  const pieceCount = Math.ceil(s.totalLength / s.pieceLength);
  const peerHas: Array<Bitfield | 'all'> = [];
  for (let i = 0; i < s.seeders; i++) peerHas.push('all');
  for (let i = 0; i < s.partials; i++) {
    const b = new Bitfield(pieceCount);
    for (let p = 0; p < pieceCount; p++) if (rng() < s.partialDensity) b.set(p);
    peerHas.push(b);
  }
  // Pieces nobody has would never finish: give them to the first partial peer.
  if (s.seeders === 0) {
    for (let p = 0; p < pieceCount; p++) {
      if (!peerHas.some((h) => h === 'all' || h.get(p))) (peerHas[0] as Bitfield).set(p);
    }
  }

  const pk = new Picker({ pieceCount, pieceLength: s.pieceLength, totalLength: s.totalLength, rng });
  // Each peer's requests in order; a ring buffer would be what a data path uses, a plain array
  // with a head index is close enough and allocation-free after warm-up.
  const queues: BlockRequest[][] = peerHas.map(() => []);
  const heads = peerHas.map(() => 0);
  const cancels: Array<{ peer: PeerKey; req: BlockRequest }> = [];
  let blocks = 0;

  // CPU time as well as wall time: on a shared machine, waiting for a core inflates only the latter.
  const c0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  peerHas.forEach((h, i) => pk.peerJoined(i, h));
  for (let i = 0; i < peerHas.length; i++) pk.next(i, s.depth, queues[i]!);
  let idle = 0;
  while (!pk.complete) {
    idle++;
    for (let i = 0; i < peerHas.length; i++) {
      const q = queues[i]!;
      let h = heads[i]!;
      const end = Math.min(q.length, h + s.batch);
      for (; h < end; h++) {
        const r = q[h]!;
        if (pk.blockReceived(i, r.piece, r.begin, cancels)) {
          blocks++;
          if (pk.pieceReceived(r.piece)) pk.pieceVerified(r.piece);
        }
      }
      if (cancels.length !== 0) {
        // Endgame losers: the data path would send CANCEL; here they are dropped from the queues.
        for (const c of cancels) {
          const cq = queues[c.peer]!;
          const at = cq.findIndex((x, j) => j >= heads[c.peer]! && x.piece === c.req.piece && x.begin === c.req.begin);
          if (at >= 0) cq.splice(at, 1);
        }
        cancels.length = 0;
      }
      if (h === q.length) { q.length = 0; h = 0; } else if (h > 1024) { q.splice(0, h); h = 0; }
      heads[i] = h;
      // next() appends straight to the peer's queue, as the data path's request queue would.
      const want = s.depth - pk.outstanding(i);
      if (want > 0 && pk.next(i, want, q) > 0) idle = 0;
      if (end > heads[i]! || q.length > 0) idle = 0;
    }
    if (idle > 2) throw new Error('stalled');
  }
  const ns = Number(process.hrtime.bigint() - t0);
  const cpu = process.cpuUsage(c0);
  return [ns, (cpu.user + cpu.system) * 1000, blocks];
}

// Optional arguments: a scenario number (1-based) and a run count, for profiling one case.
const only = Number(process.argv[2] ?? 0);
const runs = Math.max(1, Number(process.argv[3] ?? 7));
for (const [n, s] of scenarios.entries()) {
  if (only > 0 && n + 1 !== only) continue;
  const wall: number[] = [], cpu: number[] = [];
  let blocks = 0;
  run(s, 99); // warm-up: JIT and first touch of memory
  for (let i = 0; i < runs; i++) {
    const [ns, cns, b] = run(s, i + 1);
    blocks = b;
    wall.push(ns / b);
    cpu.push(cns / b);
  }
  wall.sort((a, b) => a - b);
  cpu.sort((a, b) => a - b);
  const f = (x: number) => x.toFixed(0);
  console.log(`${s.name}: ${blocks} blocks; ns/block wall median ${f(wall[runs >> 1]!)} best ${f(wall[0]!)}; `
    + `CPU median ${f(cpu[runs >> 1]!)} best ${f(cpu[0]!)}`);
}
