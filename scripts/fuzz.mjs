#!/usr/bin/env node
// The long fuzz run (`npm run fuzz`): every fuzz target, 100,000 inputs each by default.
//   npm run fuzz                         both runners, default iterations, time-based seed
//   npm run fuzz -- --iterations 500000 --seed 42
// Arguments go to both runners: dist/test/fuzz/run.js (bencode, parseManifest, verifyTicket,
// parseRequest) and dist/test/fuzz/wire-fuzz.js (peer wire, extended handshake, RPC stream).
import { spawnSync } from 'node:child_process';

const root = new URL('..', import.meta.url).pathname;
const args = process.argv.slice(2);
if (!args.includes('--seed')) args.push('--seed', String(Date.now() % 2 ** 31));
let code = 0;
for (const runner of ['dist/test/fuzz/run.js', 'dist/test/fuzz/wire-fuzz.js']) {
  const r = spawnSync(process.execPath, ['--expose-gc', runner, ...args], { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) code = 1;
}
process.exit(code);
