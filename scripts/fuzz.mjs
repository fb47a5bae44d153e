#!/usr/bin/env node
// The long fuzz run (`npm run fuzz`): every fuzz target, 100,000 inputs each by default.
//   npm run fuzz                         every target, default iterations, time-based seed
//   npm run fuzz -- --iterations 500000 --seed 42
// Arguments go to dist/test/fuzz/run.js (bencode, parseManifest, verifyTicket, parseRequest, peer
// wire, extended handshake, RPC stream), run with --expose-gc so heap growth can be reported.
import { spawnSync } from 'node:child_process';

const root = new URL('..', import.meta.url).pathname;
const args = process.argv.slice(2);
if (!args.includes('--seed')) args.push('--seed', String(Date.now() % 2 ** 31));
const r = spawnSync(process.execPath, ['--expose-gc', 'dist/test/fuzz/run.js', ...args], { cwd: root, stdio: 'inherit' });
process.exit(r.status ?? 1);
