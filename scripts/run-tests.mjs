#!/usr/bin/env node
// Runs the compiled test files with node's test runner and fails when zero tests ran, so that a
// broken glob or an empty build can never pass as green.
//   node scripts/run-tests.mjs            every suite (unit, then system)
//   node scripts/run-tests.mjs unit       only test/unit
//   node scripts/run-tests.mjs system     only test/system
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawn } from 'node:child_process';

const root = new URL('..', import.meta.url).pathname;
const which = process.argv[2] ?? 'all';
const dirs = which === 'all' ? ['unit', 'system'] : [which];

function collect(dir) {
  let out = [];
  let names;
  try { names = readdirSync(dir); } catch { return out; }
  for (const name of names.sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out = out.concat(collect(p));
    else if (name.endsWith('.test.js')) out.push(p);
  }
  return out;
}

let tests = 0, pass = 0, fail = 0, code = 0;
for (const d of dirs) {
  const files = collect(join(root, 'dist', 'test', d));
  if (files.length === 0) continue;
  // Unit tests are CPU-light and run in parallel; system tests spawn real processes on a 2-core
  // machine, so they run one file at a time to keep timings (and timeouts) honest.
  const conc = d === 'system' ? '1' : '2';
  const child = spawn(process.execPath,
    ['--test', `--test-concurrency=${conc}`, '--test-reporter=tap', ...files],
    { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, NODE_NO_WARNINGS: '1' } });
  let tail = '';
  child.stdout.on('data', (b) => { process.stdout.write(b); tail = (tail + b.toString()).slice(-4000); });
  const rc = await new Promise((r) => child.on('close', r));
  const num = (k) => Number((tail.match(new RegExp(`^# ${k} (\\d+)`, 'm')) ?? [0, 0])[1]);
  tests += num('tests'); pass += num('pass'); fail += num('fail');
  if (rc !== 0) code = 1;
}
console.log(`${pass} passed, ${fail} failed`);
if (tests === 0) { console.error('error: the test runner executed zero tests'); process.exit(1); }
process.exit(code || (fail > 0 ? 1 : 0));
