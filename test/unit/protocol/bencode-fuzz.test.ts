// The short version of the fuzz run (test/fuzz/run.ts): a few thousand generated and mutated
// inputs per target, with a fixed seed so that a failure here is reproducible.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { allTargets, runTarget } from '../../fuzz/targets.js';

const targets = await allTargets();

test('fuzz targets include the bencode decoder, parseManifest and verifyTicket', () => {
  const names = targets.map((t) => t.name);
  for (const n of ['bencode', 'parseManifest', 'verifyTicket']) assert.ok(names.includes(n), n);
});

for (const t of targets) {
  test(`fuzz ${t.name}: 3,000 inputs, only named errors, properties hold`, () => {
    const r = runTarget(t, 3000, 0xc07e41e, 1000);
    assert.equal(r.tried, 3000);
    assert.deepEqual(r.failures, []);
    // The generators must exercise both outcomes, or the run proves little.
    assert.ok(r.rejected > 0, 'nothing was rejected');
    assert.ok(r.accepted > 0, 'nothing was accepted');
  });
}
