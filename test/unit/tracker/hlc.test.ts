import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { CoterieError } from '../../../src/common/errors.js';
import {
  compareHlc, compareStamps, decodeHlc, encodeHlc, HybridClock, MAX_LOGICAL, MAX_SKEW_MS,
} from '../../../src/tracker/store/hlc.js';

function fakeClock(start = 1_700_000_000_000) {
  let t = start;
  return { now: () => t, set: (v: number) => { t = v; }, advance: (d: number) => { t += d; } };
}

function code(fn: () => unknown): string | undefined {
  try { fn(); } catch (e) { return e instanceof CoterieError ? e.code : 'not-coterie'; }
  return undefined;
}

describe('HLC encoding', () => {
  test('fixed width, zero padded', () => {
    assert.equal(encodeHlc({ wall: 1732412345678, logical: 3 }), '1732412345678-000003');
    assert.equal(encodeHlc({ wall: 5, logical: 0 }), '0000000000005-000000');
  });

  test('decode inverts encode', () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 9_999_999_999_999 }), fc.integer({ min: 0, max: MAX_LOGICAL }), (wall, logical) => {
      assert.deepEqual(decodeHlc(encodeHlc({ wall, logical })), { wall, logical });
    }));
  });

  test('string order is time order', () => {
    const hlc = fc.record({ wall: fc.integer({ min: 0, max: 9_999_999_999_999 }), logical: fc.integer({ min: 0, max: MAX_LOGICAL }) });
    fc.assert(fc.property(hlc, hlc, (a, b) => {
      const sa = encodeHlc(a), sb = encodeHlc(b);
      assert.equal(Math.sign(compareHlc(a, b)), sa < sb ? -1 : sa > sb ? 1 : 0);
    }));
  });

  test('malformed strings and out-of-range values are refused', () => {
    for (const s of ['', '1732412345678-00003', '173241234567-000003', '1732412345678_000003', 'abcdefghijklm-000000', '1732412345678-000003 ']) {
      assert.equal(code(() => decodeHlc(s)), 'BAD_REQUEST', s);
    }
    assert.equal(code(() => encodeHlc({ wall: -1, logical: 0 })), 'BAD_REQUEST');
    assert.equal(code(() => encodeHlc({ wall: 1, logical: MAX_LOGICAL + 1 })), 'BAD_REQUEST');
    assert.equal(code(() => encodeHlc({ wall: 1.5, logical: 0 })), 'BAD_REQUEST');
  });
});

describe('HybridClock', () => {
  test('now() follows the physical clock', () => {
    const pc = fakeClock();
    const c = new HybridClock(pc.now);
    assert.deepEqual(decodeHlc(c.now()), { wall: pc.now(), logical: 0 });
    pc.advance(10);
    assert.deepEqual(decodeHlc(c.now()), { wall: pc.now(), logical: 0 });
  });

  test('now() is strictly increasing when the physical clock stands still or goes back', () => {
    const pc = fakeClock();
    const c = new HybridClock(pc.now);
    const seen: string[] = [];
    for (let i = 0; i < 50; i++) {
      if (i === 20) pc.advance(-5_000);
      seen.push(c.now());
    }
    for (let i = 1; i < seen.length; i++) assert.ok(seen[i - 1]! < seen[i]!, `${seen[i - 1]} < ${seen[i]}`);
    assert.equal(decodeHlc(seen[49]!).wall, 1_700_000_000_000);
    assert.equal(decodeHlc(seen[49]!).logical, 49);
  });

  test('logical overflow borrows the next millisecond instead of wrapping', () => {
    const pc = fakeClock();
    const c = new HybridClock(pc.now);
    c.restore(encodeHlc({ wall: pc.now(), logical: MAX_LOGICAL }));
    const next = c.now();
    assert.deepEqual(decodeHlc(next), { wall: pc.now() + 1, logical: 0 });
  });

  test('observe() moves the clock past a remote stamp', () => {
    const pc = fakeClock();
    const c = new HybridClock(pc.now);
    const remote = encodeHlc({ wall: pc.now() + 30_000, logical: 7 });
    c.observe(remote);
    const after = c.now();
    assert.ok(after > remote);
    assert.deepEqual(decodeHlc(after), { wall: pc.now() + 30_000, logical: 8 });
  });

  test('observe() of an older stamp changes nothing', () => {
    const pc = fakeClock();
    const c = new HybridClock(pc.now);
    const a = c.now();
    c.observe(encodeHlc({ wall: pc.now() - 1000, logical: 5 }));
    assert.equal(c.peek(), a);
  });

  test('a stamp more than MAX_SKEW_MS ahead is refused with CLOCK_SKEW and leaves the clock alone', () => {
    const pc = fakeClock();
    const c = new HybridClock(pc.now);
    const before = c.now();
    assert.equal(code(() => c.observe(encodeHlc({ wall: pc.now() + MAX_SKEW_MS + 1, logical: 0 }))), 'CLOCK_SKEW');
    assert.equal(c.peek(), before);
    // Exactly at the bound is still accepted.
    c.observe(encodeHlc({ wall: pc.now() + MAX_SKEW_MS, logical: 0 }));
    assert.equal(decodeHlc(c.peek()).wall, pc.now() + MAX_SKEW_MS);
  });

  test('restore() skips the skew check (own log after the wall clock went back)', () => {
    const pc = fakeClock();
    const c = new HybridClock(pc.now);
    const future = encodeHlc({ wall: pc.now() + 10 * MAX_SKEW_MS, logical: 2 });
    c.restore(future);
    assert.ok(c.now() > future);
  });

  test('a sequence of now/observe never goes backwards (property)', () => {
    fc.assert(fc.property(fc.array(fc.oneof(
      fc.record({ kind: fc.constant('tick' as const), d: fc.integer({ min: -2000, max: 2000 }) }),
      fc.record({ kind: fc.constant('obs' as const), d: fc.integer({ min: -100_000, max: MAX_SKEW_MS }), l: fc.integer({ min: 0, max: 1000 }) }),
    ), { maxLength: 60 }), (ops) => {
      const pc = fakeClock();
      const c = new HybridClock(pc.now);
      let last = c.now();
      for (const op of ops) {
        if (op.kind === 'tick') pc.advance(op.d);
        else {
          const r = encodeHlc({ wall: pc.now() + op.d, logical: op.l });
          c.observe(r);
          const n = c.now();
          assert.ok(n > r);
        }
        const n = c.now();
        assert.ok(n > last);
        last = n;
      }
    }));
  });
});

describe('stamps', () => {
  test('ordered by hlc, then origin', () => {
    const a = { hlc: '1732412345678-000001', origin: 'ffffffffffffffff' };
    const b = { hlc: '1732412345678-000002', origin: '0000000000000000' };
    const c = { hlc: '1732412345678-000002', origin: '0000000000000001' };
    assert.ok(compareStamps(a, b) < 0);
    assert.ok(compareStamps(b, c) < 0);
    assert.ok(compareStamps(c, a) > 0);
    assert.equal(compareStamps(b, { ...b }), 0);
  });
});
