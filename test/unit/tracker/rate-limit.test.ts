import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { CoterieError } from '../../../src/common/errors.js';
import { FailureLimiter } from '../../../src/tracker/domain/rate-limit.js';

const limited = (l: FailureLimiter, key: string) => {
  try { l.check(key); return false; } catch (e) { assert.equal((e as CoterieError).code, 'RATE_LIMITED'); return true; }
};

describe('FailureLimiter', () => {
  test('refuses after `limit` failures within the window, per key', () => {
    let t = 0;
    const l = new FailureLimiter({ limit: 3, windowMs: 1000, now: () => t });
    for (let i = 0; i < 3; i++) { assert.ok(!limited(l, 'a')); l.fail('a'); }
    assert.ok(limited(l, 'a'));
    assert.ok(!limited(l, 'b'));
  });

  test('the window slides: old failures stop counting', () => {
    let t = 0;
    const l = new FailureLimiter({ limit: 2, windowMs: 1000, now: () => t });
    l.fail('a'); t = 600; l.fail('a');
    assert.ok(limited(l, 'a'));
    t = 1000; // the first failure is now exactly a window old
    assert.ok(!limited(l, 'a'));
    l.fail('a');
    assert.ok(limited(l, 'a'));
    t = 2601;
    assert.ok(!limited(l, 'a'));
    assert.equal(l.size, 0, 'a key with no recent failures is forgotten');
  });

  test('reset forgets a key', () => {
    const l = new FailureLimiter({ limit: 1, windowMs: 1000, now: () => 0 });
    l.fail('a');
    assert.ok(limited(l, 'a'));
    l.reset('a');
    assert.ok(!limited(l, 'a'));
  });

  test('memory is bounded: at most maxKeys keys, the least recently failed go first', () => {
    const l = new FailureLimiter({ limit: 1, windowMs: 1_000_000, now: () => 0, maxKeys: 100 });
    for (let i = 0; i < 1000; i++) l.fail(`k${i}`);
    assert.equal(l.size, 100);
    assert.ok(!limited(l, 'k0'));
    assert.ok(limited(l, 'k999'));
  });

  test('matches a naive model (property)', () => {
    fc.assert(fc.property(fc.array(fc.record({ dt: fc.integer({ min: 0, max: 400 }), key: fc.constantFrom('x', 'y'), fail: fc.boolean() }), { maxLength: 60 }), (steps) => {
      let t = 0;
      const l = new FailureLimiter({ limit: 3, windowMs: 1000, now: () => t });
      const log: { key: string; at: number }[] = [];
      for (const s of steps) {
        t += s.dt;
        const recent = log.filter((e) => e.key === s.key && e.at > t - 1000).length;
        assert.equal(limited(l, s.key), recent >= 3);
        if (s.fail && recent < 3) { l.fail(s.key); log.push({ key: s.key, at: t }); }
      }
    }));
  });
});
