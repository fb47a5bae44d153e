/**
 * Scenario 5b: replication lag with 3 trackers (time from an ack on one tracker to the row being
 * visible on the others). The measurement itself is bench/replication-lag.ts, written with the
 * replication layer (`runReplicationBench`); this adapter finds it at run time (so the suite builds
 * and runs without it), calls it once per rep, and picks p50 / p99 out of what it returns. If the
 * module exports no known function, it is run as a program (`--json`) and its output is searched
 * for `p50` and `p99` figures in ms.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { note } from '../lib/util.js';

const MODULE = new URL('../replication-lag.js', import.meta.url);

export interface LagResult {
  p50_ms: number[];
  p99_ms: number[];
  /** Catch-up of a restarted tracker, changes per second (when the measurement reports it). */
  catchUp_per_s: number[];
  raw: unknown[];
}

/** Finds a number under a key that mentions `p` (e.g. p50, p50Ms, p50_ms), searching nested objects. */
function findPercentile(v: unknown, p: string): number | null {
  if (v === null || typeof v !== 'object') return null;
  for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
    if (k.toLowerCase().includes(p) && typeof x === 'number') return /(^|_)s$|seconds/i.test(k) ? x * 1000 : x;
  }
  for (const x of Object.values(v as Record<string, unknown>)) {
    const r = findPercentile(x, p);
    if (r !== null) return r;
  }
  return null;
}

function runAsProgram(path: string, quick: boolean): Promise<unknown> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [path, '--json', ...(quick ? ['--samples', '50', '--changes', '1000'] : [])], { maxBuffer: 16 << 20, timeout: 600_000 }, (err, stdout, stderr) => {
      if (err) { reject(new Error(`replication-lag.js failed: ${(stderr || err.message).split('\n').slice(-3).join(' ')}`)); return; }
      const text = stdout + '\n' + stderr;
      for (const line of text.split('\n').reverse()) {
        try { const j = JSON.parse(line) as unknown; if (findPercentile(j, 'p50') !== null) { resolve(j); return; } } catch { /* not JSON */ }
      }
      const p50 = /p50[^0-9]*([\d.]+)\s*ms/i.exec(text), p99 = /p99[^0-9]*([\d.]+)\s*ms/i.exec(text);
      if (p50 && p99) resolve({ p50: Number(p50[1]), p99: Number(p99[1]) });
      else reject(new Error('replication-lag.js printed no p50/p99 figures'));
    });
  });
}

/** null when bench/replication-lag.ts does not exist (yet). */
export async function runReplicationLag(o: { quick: boolean; reps: number; workParent?: string }): Promise<LagResult | null> {
  const path = fileURLToPath(MODULE);
  if (!existsSync(path)) return null;
  const mod = await import(MODULE.href) as Record<string, unknown>;
  const fn = ['runReplicationBench', 'measureReplicationLag', 'runReplicationLag', 'run']
    .map((k) => mod[k]).find((f): f is (opts: unknown) => Promise<unknown> => typeof f === 'function');
  const out: LagResult = { p50_ms: [], p99_ms: [], catchUp_per_s: [], raw: [] };
  for (let rep = 0; rep < o.reps; rep++) {
    // runReplicationBench({samples, changes}): lag over `samples` writes, catch-up of `changes` after a restart.
    const r = fn ? await fn(o.quick ? { samples: 50, changes: 1_000 } : { samples: 200, changes: 10_000 }) : await runAsProgram(path, o.quick);
    const p50 = findPercentile(r, 'p50'), p99 = findPercentile(r, 'p99');
    if (p50 === null || p99 === null) throw new Error('replication-lag returned no p50/p99');
    out.p50_ms.push(p50);
    out.p99_ms.push(p99);
    out.raw.push(r);
    const cu = (r as { catchUpChangesPerSec?: unknown }).catchUpChangesPerSec;
    if (typeof cu === 'number') out.catchUp_per_s.push(cu);
    note(`replication lag rep ${rep + 1}/${o.reps}: p50 ${p50.toFixed(1)} ms, p99 ${p99.toFixed(1)} ms`);
  }
  return out;
}
