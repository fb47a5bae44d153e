/**
 * How fast buildManifest hashes, against the machine's raw SHA-1 speed.
 *
 *   node dist/bench/hash-speed.js [--size-mib N] [--runs R] [--piece-kib K] [--keep]
 *
 * Generates an N MiB file (default 1024) under the OS temp dir, syncs it to disk and reads it
 * once so the page cache is warm, then times, best and median of R runs (default 3):
 *   sha1 raw          SHA-1 of 256 KiB pieces of one in-memory 4 MiB buffer, N MiB in all: the
 *                     hardware's speed, no I/O
 *   sha1+sha256 raw   both hashes on one thread, in memory: what a one-thread build cannot beat
 *   build, 1 thread   buildManifest({ parallel: false })
 *   build, 2 threads  buildManifest({ parallel: true }): the default for files of 64 MiB or more
 * and prints MB/s and each case's ratio to raw SHA-1 in the same round (cases are interleaved,
 * so a round's ratio compares runs under the same load). The target for 2 threads is >= 0.8.
 * CPU time is printed too: on a shared machine wall time is noisy, CPU time much less so.
 */
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, mkdtempSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildManifest } from '../src/swarm/manifest.js';
import { hashFile } from '../src/swarm/manifest-hash.js';

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
}
const MiB = 1024 * 1024;
const size = arg('size-mib', 1024) * MiB;
const runs = arg('runs', 3);
const pieceLength = arg('piece-kib', 256) * 1024;
const keep = process.argv.includes('--keep');

const dir = mkdtempSync(join(tmpdir(), 'coterie-hash-bench-'));
const path = join(dir, 'data.bin');

function makeFile(): void {
  // Random 4 MiB blocks, each varied so no two pieces are equal; written, then fsynced so the
  // timing never includes writeback.
  const block = randomBytes(4 * MiB);
  const fd = openSync(path, 'w');
  for (let off = 0, i = 0; off < size; off += block.length, i++) {
    block.writeUInt32LE(i, 0);
    writeSync(fd, block, 0, Math.min(block.length, size - off));
  }
  fsyncSync(fd);
  closeSync(fd);
  const rfd = openSync(path, 'r');
  for (let off = 0; off < size; off += block.length) readSync(rfd, block, 0, block.length, off);
  closeSync(rfd);
}

interface Timing { wall: number; cpu: number }

async function time(fn: () => unknown): Promise<Timing> {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await fn();
  const wall = (performance.now() - t0) / 1000;
  const c = process.cpuUsage(cpu0);
  return { wall, cpu: (c.user + c.system) / 1e6 };
}

function rawSha1(): void {
  const buf = Buffer.alloc(4 * MiB, 0x5a);
  for (let done = 0; done < size; done += buf.length) {
    for (let off = 0; off < buf.length; off += pieceLength) createHash('sha1').update(buf.subarray(off, off + pieceLength)).digest();
  }
}

function rawBoth(): void {
  const buf = Buffer.alloc(4 * MiB, 0x5a);
  const h = createHash('sha256');
  for (let done = 0; done < size; done += buf.length) {
    h.update(buf);
    for (let off = 0; off < buf.length; off += pieceLength) createHash('sha1').update(buf.subarray(off, off + pieceLength)).digest();
  }
  h.digest();
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const mbps = (secs: number): number => size / secs / 1e6;

try {
  console.log(`hash-speed: ${size / MiB} MiB file, ${pieceLength / 1024} KiB pieces, ${runs} runs each`);
  makeFile();
  const cases: Array<[string, () => unknown]> = [
    ['sha1 raw', rawSha1],
    ['sha1+sha256 raw', rawBoth],
    ['build, 1 thread', () => buildManifest(path, { pieceLength, parallel: false })],
    ['build, 2 threads', () => buildManifest(path, { pieceLength, parallel: true })],
  ];
  // Rounds interleave the cases so that each round's ratios compare runs under the same load
  // (the machine is shared); the median ratio is the figure to quote.
  const walls: Record<string, number[]> = {};
  const cpus: Record<string, number[]> = {};
  const ratios: Record<string, number[]> = {};
  for (let r = 0; r < runs; r++) {
    for (const [name, fn] of cases) {
      const t = await time(fn);
      (walls[name] ??= []).push(t.wall);
      (cpus[name] ??= []).push(t.cpu);
      if (name !== 'sha1 raw') (ratios[name] ??= []).push(walls['sha1 raw']![r]! / t.wall);
    }
  }
  for (const [name] of cases) {
    const w = walls[name]!;
    const ratio = ratios[name] ? `  ratio to raw sha1: median ${median(ratios[name]!).toFixed(2)}, best ${Math.max(...ratios[name]!).toFixed(2)}` : '';
    console.log(`${name.padEnd(17)} best ${mbps(Math.min(...w)).toFixed(0).padStart(5)} MB/s  median ${mbps(median(w)).toFixed(0).padStart(5)} MB/s  cpu ${median(cpus[name]!).toFixed(2)} s${ratio}`);
  }
  const fd = openSync(path, 'r');
  const { workerPieces } = await hashFile(fd, size, pieceLength, { parallel: true });
  closeSync(fd);
  console.log(`(with 2 threads the worker hashed ${(100 * workerPieces / Math.ceil(size / pieceLength)).toFixed(1)}% of the pieces besides the SHA-256)`);
} finally {
  if (!keep) rmSync(dir, { recursive: true, force: true });
  else console.log(`kept ${path}`);
}
