import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Choker, type ChokerPeer } from '../../../src/swarm/choker.js';
import { seededRandom } from '../../../src/common/prng.js';

const prng = seededRandom;

const peer = (key: number, rate: number, interested = true, snubbed = false): ChokerPeer => ({ key, rate, interested, snubbed });
const sorted = (s: Set<number>) => [...s].sort((a, b) => a - b);

describe('Choker', () => {
  test('the best `slots` interested peers by rate get regular slots, plus one optimistic', () => {
    const ch = new Choker({ slots: 2, rng: prng(1) });
    const peers = [peer(1, 100), peer(2, 500), peer(3, 300), peer(4, 50), peer(5, 1000, false)];
    const out = ch.decide(peers);
    assert.equal(out.size, 3);
    assert.ok(out.has(2) && out.has(3), 'the two fastest interested peers');
    assert.ok(!out.has(5), 'not interested: never unchoked');
    const opt = ch.optimisticPeer;
    assert.ok(opt === 1 || opt === 4);
    assert.ok(out.has(opt!));
  });

  test('fewer interested peers than slots: all of them, nobody else', () => {
    const ch = new Choker({ rng: prng(2) });
    assert.deepEqual(sorted(ch.decide([peer(1, 0), peer(2, 0, false), peer(3, 7)])), [1, 3]);
    assert.deepEqual(sorted(ch.decide([])), []);
    assert.equal(ch.optimisticPeer, null);
  });

  test('snubbed peers get no regular slot, only the optimistic one', () => {
    const ch = new Choker({ slots: 2, rng: prng(3) });
    const out = ch.decide([peer(1, 900, true, true), peer(2, 10), peer(3, 5)]);
    assert.deepEqual(sorted(out), [1, 2, 3]);
    assert.equal(ch.optimisticPeer, 1, 'the only peer left for the optimistic slot');
    const ch2 = new Choker({ slots: 2, rng: prng(3) });
    const out2 = ch2.decide([peer(1, 900, true, true), peer(2, 10), peer(3, 5), peer(4, 1)]);
    assert.ok(out2.has(2) && out2.has(3));
    assert.equal(out2.size, 3);
  });

  test('the optimistic unchoke rotates every `optimisticEvery` rounds, not on extra calls', () => {
    const ch = new Choker({ slots: 1, optimisticEvery: 3, rng: prng(4) });
    const peers = [peer(0, 1000), ...Array.from({ length: 6 }, (_, i) => peer(i + 1, 0))];
    const seen: Array<number | null> = [];
    for (let round = 0; round < 12; round++) {
      ch.decide(peers);
      const o = ch.optimisticPeer;
      // Calls between rounds (peers coming and going) must not move it.
      ch.decide(peers, false);
      assert.equal(ch.optimisticPeer, o);
      seen.push(o);
    }
    for (let r = 0; r < 12; r++) {
      assert.notEqual(seen[r], 0, 'the regular peer is never the optimistic one');
      if (r % 3 !== 0) assert.equal(seen[r], seen[r - 1], `round ${r}: kept`);
      else if (r > 0) assert.notEqual(seen[r], seen[r - 1], `round ${r}: rotated`);
    }
  });

  test('an optimistic peer that leaves or loses interest is replaced at once', () => {
    const ch = new Choker({ slots: 1, optimisticEvery: 5, rng: prng(5) });
    ch.decide([peer(1, 100), peer(2, 0), peer(3, 0)]);
    const o = ch.optimisticPeer!;
    const other = o === 2 ? 3 : 2;
    const out = ch.decide([peer(1, 100), peer(o, 0, false), peer(other, 0)], false);
    assert.deepEqual(sorted(out), [1, other].sort((a, b) => a - b));
    assert.equal(ch.optimisticPeer, other);
  });

  test('equal rates do not churn: peers already unchoked keep their slots', () => {
    const ch = new Choker({ slots: 2, optimisticEvery: 1000, rng: prng(6) });
    const peers = Array.from({ length: 8 }, (_, i) => peer(i, 10));
    const first = ch.decide(peers);
    const opt = ch.optimisticPeer;
    for (let i = 0; i < 5; i++) {
      assert.deepEqual(sorted(ch.decide(peers)), sorted(first));
      assert.equal(ch.optimisticPeer, opt);
    }
  });

  test('property: only interested peers, at most slots + 1, the regular ones ranked by rate', () => {
    const arb = fc.record({
      slots: fc.integer({ min: 0, max: 6 }),
      every: fc.integer({ min: 1, max: 4 }),
      seed: fc.integer(),
      rounds: fc.array(fc.array(fc.record({
        key: fc.integer({ min: 0, max: 15 }), interested: fc.boolean(), rate: fc.integer({ min: 0, max: 5 }), snubbed: fc.boolean(),
      }), { maxLength: 16 }), { minLength: 1, maxLength: 12 }),
    });
    fc.assert(fc.property(arb, ({ slots, every, seed, rounds }) => {
      const ch = new Choker({ slots, optimisticEvery: every, rng: prng(seed) });
      for (const raw of rounds) {
        const peers = [...new Map(raw.map((p) => [p.key, p])).values()];
        const out = ch.decide(peers);
        const byKey = new Map(peers.map((p) => [p.key, p]));
        assert.ok(out.size <= slots + 1);
        for (const k of out) assert.equal(byKey.get(k)?.interested, true);
        const opt = ch.optimisticPeer;
        if (opt !== null) assert.ok(out.has(opt));
        const regular = [...out].filter((k) => k !== opt).map((k) => byKey.get(k)!);
        assert.ok(regular.length <= slots);
        assert.ok(regular.every((p) => !p.snubbed));
        // No choked, interested, unsnubbed peer is faster than a regular one.
        const minRegular = Math.min(...regular.map((p) => p.rate));
        for (const p of peers) if (p.interested && !p.snubbed && !out.has(p.key)) assert.ok(p.rate <= minRegular);
        const eligible = peers.filter((p) => p.interested && !p.snubbed).length;
        assert.equal(regular.length, Math.min(slots, eligible));
        // The optimistic slot goes to an interested peer outside the regular set whenever there is one.
        const others = peers.filter((p) => p.interested && !regular.includes(p));
        if (others.length === 0) assert.equal(opt, null);
        else assert.ok(others.some((p) => p.key === opt));
      }
    }), { numRuns: 300 });
  });
});
