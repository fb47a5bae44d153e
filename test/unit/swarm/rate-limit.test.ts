import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { RateMeter, TokenBucket, bucketFor } from '../../../src/swarm/rate-limit.js';

describe('token bucket', () => {
  test('starts full, goes into debt, and says how long to wait', () => {
    const clock = { t: 0 };
    const b = new TokenBucket(1000, () => clock.t, 500);
    assert.equal(b.delay(), 0);
    assert.equal(b.reserve(400), 0);
    assert.equal(b.available, 100);
    assert.equal(b.reserve(600), 500); // 500 bytes of debt at 1000 B/s
    assert.equal(b.delay(), 500);
    clock.t += 250;
    assert.equal(b.delay(), 250);
    clock.t += 250;
    assert.equal(b.delay(), 0);
    clock.t += 10_000;
    assert.equal(b.available, 500, 'refill stops at the burst');
  });

  test('a sender that waits as told moves exactly rate x time (plus the initial burst)', () => {
    const clock = { t: 0 };
    const rate = 2_000_000;
    const b = new TokenBucket(rate, () => clock.t);
    let sent = 0;
    while (clock.t < 10_000) {
      const d = b.delay();
      if (d > 0) { clock.t += d; continue; }
      b.reserve(1_048_576);
      sent += 1_048_576;
    }
    const max = rate * 10 + b.burst + 1_048_576;
    assert.ok(sent <= max, `${sent} > ${max}`);
    assert.ok(sent >= rate * 10 - 1_048_576, `${sent} too low`);
  });

  test('property: over any schedule, bytes reserved never exceed burst + rate x elapsed + one reservation', () => {
    fc.assert(fc.property(
      fc.integer({ min: 1000, max: 10_000_000 }),
      fc.array(fc.tuple(fc.integer({ min: 0, max: 2000 }), fc.integer({ min: 1, max: 2_000_000 })), { maxLength: 200 }),
      (rate, steps) => {
        const clock = { t: 0 };
        const b = new TokenBucket(rate, () => clock.t);
        let sent = 0, maxChunk = 0;
        for (const [dt, n] of steps) {
          clock.t += dt;
          if (b.delay() > 0) continue; // a well-behaved caller waits
          b.reserve(n);
          sent += n;
          maxChunk = Math.max(maxChunk, n);
          assert.ok(b.available <= b.burst);
        }
        assert.ok(sent <= b.burst + (rate * clock.t) / 1000 + maxChunk + 1);
      }), { numRuns: 300 });
  });

  test('no limit means no bucket; nonsense rates are refused', () => {
    assert.equal(bucketFor(undefined), null);
    assert.equal(bucketFor(0), null);
    assert.ok(bucketFor(100) instanceof TokenBucket);
    assert.throws(() => new TokenBucket(-1), RangeError);
    assert.throws(() => new TokenBucket(Number.NaN), RangeError);
  });
});

describe('rate meter', () => {
  test('a steady stream reads at its rate; silence decays to zero', () => {
    const clock = { t: 0 };
    const m = new RateMeter(() => clock.t);
    for (let i = 0; i < 300; i++) { clock.t += 10; m.add(10_000); } // 1 MB/s for 3 s
    const r = m.rate();
    assert.ok(r > 950_000 && r < 1_050_000, `rate ${r}`);
    clock.t += 2500;
    assert.equal(m.rate(), 0);
    assert.equal(m.total, 3_000_000);
  });

  test('a young meter divides by its age, not the whole window', () => {
    const clock = { t: 0 };
    const m = new RateMeter(() => clock.t);
    clock.t += 500;
    m.add(500_000);
    const r = m.rate();
    assert.ok(r > 900_000 && r <= 1_000_000, `rate ${r}`);
  });
});
