import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { Bitfield } from '../../../src/swarm/bitfield.js';
import { Picker, type BlockRequest, type PickerOptions } from '../../../src/swarm/picker/index.js';
import { seededRandom } from '../../../src/common/prng.js';

const prng = seededRandom;

function bf(length: number, pieces: number[]): Bitfield {
  const b = new Bitfield(length);
  for (const p of pieces) b.set(p);
  return b;
}

function picker(opts: Partial<PickerOptions> & { pieceCount: number }, have?: Bitfield): Picker {
  const pieceLength = opts.pieceLength ?? 4 * 16384;
  return new Picker({ pieceLength, totalLength: opts.pieceCount * pieceLength, rng: prng(1), ...opts }, have);
}

function take(pk: Picker, peer: number, max: number): BlockRequest[] {
  const out: BlockRequest[] = [];
  const n = pk.next(peer, max, out);
  assert.equal(n, out.length);
  return out;
}

/** Delivers every request in `reqs` from `peer`, verifying each piece that completes. */
function deliver(pk: Picker, peer: number, reqs: BlockRequest[]): void {
  for (const r of reqs) {
    assert.equal(pk.blockReceived(peer, r.piece, r.begin, []), true);
    if (pk.pieceReceived(r.piece)) pk.pieceVerified(r.piece);
  }
}

describe('Picker geometry', () => {
  test('last piece and last block are short, and every byte is requested exactly once', () => {
    // 3 pieces of 40000 bytes with 16 KiB blocks: 16384 + 16384 + 7232; the last piece is 9000.
    const pk = new Picker({ pieceCount: 3, pieceLength: 40000, totalLength: 89000, rng: prng(2) });
    pk.peerJoined(1, 'all');
    const reqs = take(pk, 1, 100);
    const byPiece = new Map<number, Array<[number, number]>>();
    for (const r of reqs) byPiece.set(r.piece, [...(byPiece.get(r.piece) ?? []), [r.begin, r.length]]);
    const sorted = (p: number) => [...byPiece.get(p)!].sort((a, b) => a[0] - b[0]);
    assert.deepEqual(sorted(0), [[0, 16384], [16384, 16384], [32768, 7232]]);
    assert.deepEqual(sorted(1), [[0, 16384], [16384, 16384], [32768, 7232]]);
    assert.deepEqual(sorted(2), [[0, 9000]]);
    assert.equal(pk.blockLength(2, 0), 9000);
    assert.equal(pk.blockLength(2, 16384), -1);
    assert.equal(pk.blockLength(0, 100), -1);
    assert.equal(pk.blockLength(3, 0), -1);
  });

  test('inconsistent geometry is refused', () => {
    assert.throws(() => new Picker({ pieceCount: 2, pieceLength: 10, totalLength: 21 }), RangeError);
    assert.throws(() => new Picker({ pieceCount: 2, pieceLength: 10, totalLength: 10 }), RangeError);
    assert.throws(() => new Picker({ pieceCount: 2, pieceLength: 10, totalLength: 15, blockSize: 0 }), RangeError);
  });

  test('an empty file is complete from the start and asks for nothing', () => {
    const pk = new Picker({ pieceCount: 0, pieceLength: 16384, totalLength: 0 });
    pk.peerJoined(1, 'all');
    assert.equal(pk.complete, true);
    assert.equal(take(pk, 1, 10).length, 0);
    assert.equal(pk.isInteresting(1), false);
  });
});

describe('Picker order', () => {
  test('only seeders connected: new pieces in index order (the verified prefix grows); a sparse peer brings back random ties', () => {
    const pk = picker({ pieceCount: 64, randomFirstPieces: 4 });
    pk.peerJoined(1, 'all');
    pk.peerJoined(2, 'all');
    const a = take(pk, 1, 8), b = take(pk, 2, 8);
    assert.deepEqual([...new Set(a.map((r) => r.piece))], [0, 1]);
    assert.deepEqual([...new Set(b.map((r) => r.piece))], [2, 3]);
    deliver(pk, 1, a);
    deliver(pk, 2, b);
    // A piece failing goes back to the candidates below the cursor and is taken next.
    pk.pieceFailed(1);
    assert.equal(take(pk, 1, 4)[0]!.piece, 1);
    // A downloader connects: pieces are no longer taken strictly in order.
    pk.peerJoined(3, 'none');
    const picked = new Set<number>();
    for (let i = 0; i < 10; i++) for (const r of take(pk, 1, 4)) picked.add(r.piece);
    assert.notDeepEqual([...picked].sort((x, y) => x - y), [...picked]);
  });

  test('partial pieces are finished before a new piece is started', () => {
    const pk = picker({ pieceCount: 8, randomFirstPieces: 0 });
    pk.peerJoined(1, 'all');
    pk.peerJoined(2, 'all');
    const first = take(pk, 1, 2);
    assert.equal(new Set(first.map((r) => r.piece)).size, 1);
    const piece = first[0]!.piece;
    assert.equal(pk.piecePhase(piece), 'partial');
    const second = take(pk, 2, 2);
    assert.deepEqual(second.map((r) => r.piece), [piece, piece]);
    assert.deepEqual(second.map((r) => r.begin).sort((a, b) => a - b), [2 * 16384, 3 * 16384]);
  });

  test('rarest first: a peer is given the piece the fewest peers have', () => {
    const pk = picker({ pieceCount: 6, randomFirstPieces: 0 });
    pk.peerJoined(1, 'all');
    pk.peerJoined(2, bf(6, [0, 1, 2, 3, 5]));
    pk.peerJoined(3, bf(6, [0, 1, 2, 3]));
    pk.peerJoined(4, bf(6, [0, 1, 2, 5]));
    // Availability: 0,1,2 -> 4; 3 -> 3; 4 -> 1; 5 -> 3.
    assert.deepEqual([0, 1, 2, 3, 4, 5].map((p) => pk.availability(p)), [4, 4, 4, 3, 1, 3]);
    assert.equal(take(pk, 1, 4)[0]!.piece, 4);
    const next = take(pk, 1, 4)[0]!.piece;
    assert.ok(next === 3 || next === 5, `expected 3 or 5, got ${next}`);
    // Peer 3 lacks 4 and 5: it gets 3 if still untouched, else one of the common pieces.
    const third = take(pk, 3, 4)[0]!.piece;
    if (next === 3) assert.ok([0, 1, 2].includes(third), `got ${third}`);
    else assert.equal(third, 3);
  });

  test('requests only name pieces the peer has', () => {
    const pk = picker({ pieceCount: 40, randomFirstPieces: 0 });
    const has = [3, 17, 18, 39];
    pk.peerJoined(1, bf(40, has));
    const reqs = take(pk, 1, 1000);
    assert.deepEqual([...new Set(reqs.map((r) => r.piece))].sort((a, b) => a - b), has);
    assert.equal(reqs.length, 16);
    assert.equal(pk.outstanding(1), 16);
    assert.equal(take(pk, 1, 10).length, 0);
  });

  test('random first: with fewer verified pieces than randomFirstPieces, rarity is ignored', () => {
    // Pieces 50..99 are rarer (only the seeder has them); rarest first would always pick one.
    const firsts = new Set<boolean>();
    for (let seed = 1; seed <= 40; seed++) {
      const pk = new Picker({ pieceCount: 100, pieceLength: 16384, totalLength: 100 * 16384, rng: prng(seed) });
      pk.peerJoined(1, 'all');
      pk.peerJoined(2, bf(100, Array.from({ length: 50 }, (_, i) => i)));
      firsts.add(take(pk, 1, 1)[0]!.piece < 50);
      const strict = new Picker({ pieceCount: 100, pieceLength: 16384, totalLength: 100 * 16384, rng: prng(seed), randomFirstPieces: 0 });
      strict.peerJoined(1, 'all');
      strict.peerJoined(2, bf(100, Array.from({ length: 50 }, (_, i) => i)));
      assert.ok(take(strict, 1, 1)[0]!.piece >= 50);
    }
    assert.deepEqual([...firsts].sort(), [false, true]);
  });

  test('sparse peers beyond the probe budget still get the rarest piece', () => {
    // 3000 pieces; peer 2 has pieces spread out, one of which (2999) is rarer than the rest.
    const n = 3000;
    const pk = new Picker({ pieceCount: n, pieceLength: 16384, totalLength: n * 16384, rng: prng(3), randomFirstPieces: 0 });
    const common = Array.from({ length: n / 2 }, (_, i) => 2 * i);
    pk.peerJoined(1, bf(n, common));
    pk.peerJoined(2, bf(n, [...common.filter((p) => p % 300 === 0), 2999]));
    pk.peerJoined(3, bf(n, common.filter((p) => p % 300 === 0)));
    assert.equal(take(pk, 2, 1)[0]!.piece, 2999);
    const got = take(pk, 2, 100).map((r) => r.piece);
    assert.deepEqual([...got].sort((a, b) => a - b), common.filter((p) => p % 300 === 0));
  });
});
