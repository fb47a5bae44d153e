// The short version of the wire fuzz run (test/fuzz/wire-fuzz.ts; the long one is `npm run fuzz`):
// a few thousand generated and mutated inputs per target with a fixed seed, so that a failure
// here is reproducible with `node dist/test/fuzz/run.js --seed 202611 --target NAME`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runTarget } from '../../fuzz/targets.js';
import { wireTargets } from '../../fuzz/wire-fuzz.js';

for (const t of wireTargets()) {
  test(`fuzz ${t.name}: 4,000 inputs, only named errors, properties hold`, () => {
    const r = runTarget(t, 4000, 202611, 1000);
    assert.equal(r.tried, 4000);
    assert.deepEqual(r.failures, []);
    // Both outcomes must be exercised, or the run proves little.
    assert.ok(r.rejected > 200, `only ${r.rejected} rejected`);
    assert.ok(r.accepted > 200, `only ${r.accepted} accepted`);
  });
}
