import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ByteCappedCache } from '../../../src/tracker/store/byte-cache.js';

test('byte-capped cache: evicts oldest-inserted first, never over budget, hits do not reorder', () => {
  const c = new ByteCappedCache<number>(100);
  c.set('a', 1, 40);
  c.set('b', 2, 40);
  assert.equal(c.get('a'), 1); // a hit: no reordering
  c.set('c', 3, 40); // 120 > 100: the oldest (a) goes
  assert.equal(c.get('a'), undefined);
  assert.deepEqual([c.get('b'), c.get('c')], [2, 3]);
  c.set('b', 20, 10); // replacing counts the new cost only: 50, nothing evicted
  c.set('d', 4, 50);
  assert.deepEqual([c.get('b'), c.get('c'), c.get('d')], [20, 3, 4]);
  c.set('huge', 5, 500); // bigger than the budget: everything goes, itself included
  assert.equal(c.size, 0);
});

test('byte-capped cache: matches a model under random operations', () => {
  const op = fc.oneof(
    fc.record({ t: fc.constant('set' as const), k: fc.integer({ min: 0, max: 9 }), n: fc.integer({ min: 0, max: 60 }) }),
    fc.record({ t: fc.constant('del' as const), k: fc.integer({ min: 0, max: 9 }) }),
    fc.record({ t: fc.constant('clear' as const) }),
  );
  fc.assert(fc.property(fc.array(op, { maxLength: 200 }), (ops) => {
    const c = new ByteCappedCache<number>(100);
    let model: Array<{ k: string; n: number }> = [];
    for (const o of ops) {
      if (o.t === 'clear') { c.clear(); model = []; continue; }
      const k = String(o.k);
      model = model.filter((e) => e.k !== k);
      if (o.t === 'del') { c.delete(k); continue; }
      c.set(k, o.n, o.n);
      model.push({ k, n: o.n });
      while (model.reduce((a, e) => a + e.n, 0) > 100) model.shift();
    }
    assert.equal(c.size, model.length);
    for (const e of model) assert.equal(c.get(e.k), e.n);
  }));
});
