/**
 * Small helpers shared by the benchmark scenarios: paths, files, statistics, process memory.
 * Nothing here knows about Coterie's protocols.
 */
import { execFileSync } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, mkdirSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (this file is compiled to dist/bench/lib/util.js). */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

export const KiB = 1024;
export const MiB = 1024 * 1024;
export const GiB = 1024 * 1024 * 1024;

/** "64MiB", "1GiB", as lt_swarm.py and humans write sizes. */
export function fmtSize(n: number): string {
  for (const [u, f] of [['GiB', GiB], ['MiB', MiB], ['KiB', KiB]] as const) if (n >= f && n % f === 0) return `${n / f}${u}`;
  return `${n}B`;
}

/** Parses "64MiB", "1GiB", "512K", "1000". */
export function parseSize(s: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(i?B?)\s*$/i.exec(s);
  if (!m) throw new Error(`bad size: ${s}`);
  const mult: Record<string, number> = { '': 1, K: KiB, M: MiB, G: GiB, T: GiB * 1024 };
  return Math.floor(Number(m[1]) * mult[m[2]!.toUpperCase()]!);
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Progress lines go to stderr so that stdout carries only the final table. */
export function note(msg: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
}

/** Median, min, max and the samples, as results carry them. */
export interface Stat { median: number; min: number; max: number; samples: number[] }

export function stat(samples: number[]): Stat {
  const s = [...samples].sort((a, b) => a - b);
  if (s.length === 0) return { median: NaN, min: NaN, max: NaN, samples: [] };
  const mid = s.length >> 1;
  const median = s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
  return { median, min: s[0]!, max: s[s.length - 1]!, samples };
}

/** Nearest-rank percentile (p in 0..100) of unsorted samples. */
export function percentile(samples: number[], p: number): number {
  if (samples.length === 0) return NaN;
  const s = [...samples].sort((a, b) => a - b);
  const i = Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1));
  return s[i]!;
}

/** A fresh work directory under `parent` (default: the OS temp dir). */
export function makeWorkDir(parent: string | undefined, prefix: string): string {
  const base = parent ?? tmpdir();
  mkdirSync(base, { recursive: true });
  return mkdtempSync(join(base, prefix));
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/**
 * Writes `size` random (incompressible) bytes to `path`, fsyncs it (background writeback would
 * otherwise run inside the timed window: RESULTS.md measured it halving throughput), and returns
 * its SHA-1 hex. One reused 16 MiB buffer.
 */
export function makeRandomFile(path: string, size: number): string {
  mkdirSync(dirname(path), { recursive: true });
  const buf = Buffer.allocUnsafe(16 * MiB);
  const h = createHash('sha1');
  const fd = openSync(path, 'w');
  try {
    let left = size;
    while (left > 0) {
      const n = Math.min(left, buf.length);
      const b = buf.subarray(0, n);
      randomFillSync(b);
      h.update(b);
      let off = 0;
      while (off < n) off += writeSync(fd, b, off, n - off);
      left -= n;
    }
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  return h.digest('hex');
}

/** SHA-1 hex of a file, read with one reused 4 MiB buffer. */
export function sha1File(path: string): string {
  const buf = Buffer.allocUnsafe(4 * MiB);
  const h = createHash('sha1');
  const fd = openSync(path, 'r');
  try {
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n <= 0) break;
      h.update(buf.subarray(0, n));
    }
  } finally {
    closeSync(fd);
  }
  return h.digest('hex');
}

/** Flushes every dirty page to disk (`sync`), so the previous rep's writeback does not run in the next one. */
export function syncDisks(): void {
  try { execFileSync('sync', { stdio: 'ignore' }); } catch { /* best effort */ }
}

/** A process's memory from /proc/<pid>/status, in bytes: peak (VmHWM) and current (VmRSS). */
export function processMemory(pid: number): { hwm: number; rss: number } | null {
  try {
    const text = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN) * 1024;
    return { hwm: kb('VmHWM'), rss: kb('VmRSS') };
  } catch {
    return null;
  }
}

/** CPU seconds (user + system) a process has used so far, from /proc/<pid>/stat. */
export function processCpuSeconds(pid: number): number {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name, which is in parentheses and may contain spaces.
    const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(rest[11]) + Number(rest[12]); // utime, stime (fields 14, 15)
    return ticks / 100; // USER_HZ is 100 on Linux
  } catch {
    return NaN;
  }
}

export function fileExists(p: string): boolean { return existsSync(p); }
