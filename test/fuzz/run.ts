/**
 * Long fuzz run of every hostile-input decoder (targets.ts: bencode, manifest, ticket, RPC request;
 * wire-fuzz.ts: peer wire, extended handshake, RPC stream). `npm run fuzz` runs it with --expose-gc.
 *
 *   node dist/test/fuzz/run.js [--iterations N] [--seed S] [--target NAME] [--max-ms MS]
 *
 * N inputs per target (default 100,000), from seed S (default: time-based, printed so a failure
 * can be replayed). Prints one line per target: inputs tried, accepted, rejected, slowest input,
 * failures with the iteration and the input (hex). Exits 1 if any target failed.
 */
import { allTargets, runTarget } from './targets.js';
import { wireTargets } from './wire-fuzz.js';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

function num(name: string, dflt: number): number {
  const v = arg(name);
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0) { console.error(`error: --${name} wants a non-negative integer`); process.exit(2); }
  return n;
}

const iterations = num('iterations', 100_000);
const seed = num('seed', Date.now() % 2 ** 31);
const maxMs = num('max-ms', 1000);
const only = arg('target');

const targets = [...(await allTargets()), ...wireTargets()].filter((t) => !only || t.name === only);
if (targets.length === 0) { console.error(`error: no target named ${only}`); process.exit(2); }
console.log(`fuzzing ${targets.map((t) => t.name).join(', ')}: ${iterations} inputs each, seed ${seed}`);
let failed = false;
for (const t of targets) {
  const heap0 = process.memoryUsage().heapUsed;
  const start = performance.now();
  const r = runTarget(t, iterations, seed, maxMs);
  const secs = (performance.now() - start) / 1000;
  // Heap growth across a target is only meaningful after a collection (run with --expose-gc).
  (globalThis as { gc?: () => void }).gc?.();
  const growth = (process.memoryUsage().heapUsed - heap0) / 1024 / 1024;
  console.log(`${r.target.padEnd(14)} tried ${r.tried}  accepted ${r.accepted}  rejected ${r.rejected}  failures ${r.failures.length}  slowest ${r.maxMs.toFixed(1)} ms  heap ${growth >= 0 ? '+' : ''}${growth.toFixed(1)} MiB  (${secs.toFixed(1)} s)`);
  for (const f of r.failures) {
    failed = true;
    console.log(`  FAIL at iteration ${f.iteration}: ${f.message}\n  input (hex): ${f.input}`);
  }
}
console.log(`rss ${(process.memoryUsage().rss / 1024 / 1024).toFixed(0)} MiB`);
console.log(failed ? 'FAILED' : 'ok');
process.exit(failed ? 1 : 0);
