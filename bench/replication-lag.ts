/**
 * Tracker replication figures on loopback, with three real tracker processes:
 *
 *   lag        time from the ack of a write on tracker 1 (create_group) to its visibility on
 *              trackers 2 and 3 (a `list_requests` of that group stops failing with
 *              NO_SUCH_GROUP; each is polled back to back, so the figure includes up to one RPC
 *              round trip of polling granularity); p50, p99 and max over every (write, tracker)
 *   catch-up   tracker 3 is killed, 10,000 changes are written on tracker 1 (5,000 groups), then
 *              tracker 3 is restarted: time from its "listening" line until its version vector
 *              reaches tracker 1's (polled every 25 ms; digests are checked equal afterwards)
 *
 *   node dist/bench/replication-lag.js [--samples N] [--changes N] [--json]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TrackerCluster } from '../test/helpers/cluster.js';
import { RpcTestClient, stopAllTrackers } from '../test/helpers/tracker.js';

export interface ReplicationBenchResult {
  /** (write, tracker) pairs measured: two per write. */
  samples: number;
  lagP50Ms: number;
  lagP99Ms: number;
  lagMaxMs: number;
  changes: number;
  writeMs: number;
  catchUpMs: number;
  catchUpChangesPerSec: number;
}

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((s.length - 1) * p))]!;
}

async function login(x: RpcTestClient, user: string, clientId: string): Promise<string> {
  return (await x.ok<{ token: string }>('login', { user, password: 'pw', peer: '127.0.0.1:7000', clientId })).token;
}

export async function runReplicationBench(opts: { samples?: number; changes?: number } = {}): Promise<ReplicationBenchResult> {
  const samples = opts.samples ?? 200;
  const changes = opts.changes ?? 10_000;
  const dir = mkdtempSync(join(tmpdir(), 'coterie-bench-repl-'));
  let c: TrackerCluster | null = null;
  const conns: RpcTestClient[] = [];
  const connect = async (port: number) => { const x = await RpcTestClient.connect(port); conns.push(x); return x; };
  try {
    c = await TrackerCluster.start({ n: 3, dir });
    const [a, b, d] = [await connect(c.ports[0]!), await connect(c.ports[1]!), await connect(c.ports[2]!)];
    await a.ok('create_user', { user: 'alice', password: 'pw' });
    await c.waitConverged(10_000);
    const [ta, tb, td] = [await login(a, 'alice', 'a'.repeat(16)), await login(b, 'alice', 'b'.repeat(16)), await login(d, 'alice', 'c'.repeat(16))];
    await c.waitConverged(10_000);

    const lags: number[] = [];
    const seen = async (x: RpcTestClient, tok: string, group: string, t0: number) => {
      for (;;) {
        const r = await x.call('list_requests', { group }, tok);
        if (r.ok) { lags.push(performance.now() - t0); return; }
        if (r.error.code !== 'NO_SUCH_GROUP') throw new Error(`list_requests: ${r.error.code}`);
        if (performance.now() - t0 > 10_000) throw new Error(`${group} not visible after 10 s`);
      }
    };
    for (let i = 0; i < samples; i++) {
      const g = `lag${i}`;
      await a.ok('create_group', { group: g }, ta);
      const t0 = performance.now();
      await Promise.all([seen(b, tb, g, t0), seen(d, td, g, t0)]);
    }

    // Catch-up.
    await c.waitConverged(10_000);
    await c.kill9(2);
    const tw = Date.now();
    const writers = [await connect(c.ports[0]!), await connect(c.ports[0]!)];
    let next = 0;
    const groups = Math.ceil(changes / 2);
    await Promise.all(writers.map(async (x) => {
      const inflight = new Set<Promise<void>>();
      while (next < groups) {
        const p: Promise<void> = x.ok('create_group', { group: `cu${next++}` }, ta).then(() => { inflight.delete(p); });
        inflight.add(p);
        if (inflight.size >= 64) await Promise.race(inflight);
      }
      await Promise.all(inflight);
    }));
    const writeMs = Date.now() - tw;
    await c.waitConverged(20_000, [0, 1]);
    const target = (await c.status(0))!.versionVector;
    await c.start(2);
    const catchUpMs = await c.waitVector(2, target, 120_000);
    await c.waitConverged(20_000);
    return {
      samples: lags.length,
      lagP50Ms: pct(lags, 0.5), lagP99Ms: pct(lags, 0.99), lagMaxMs: Math.max(...lags),
      changes: groups * 2, writeMs, catchUpMs,
      catchUpChangesPerSec: Math.round((groups * 2) / Math.max(0.001, catchUpMs / 1000)),
    };
  } finally {
    for (const x of conns) x.close();
    await c?.close();
    await stopAllTrackers();
    rmSync(dir, { recursive: true, force: true });
  }
}

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const r = await runReplicationBench({ samples: arg('samples', 200), changes: arg('changes', 10_000) });
  if (process.argv.includes('--json')) console.log(JSON.stringify(r));
  else {
    console.log(`replication lag (ack on tracker 1 -> visible on 2 and 3, ${r.samples / 2} writes x 2 trackers): p50 ${r.lagP50Ms.toFixed(2)} ms, p99 ${r.lagP99Ms.toFixed(2)} ms, max ${r.lagMaxMs.toFixed(2)} ms`);
    console.log(`catch-up: ${r.changes} changes written in ${r.writeMs} ms while tracker 3 was down; it caught up in ${r.catchUpMs} ms after it was listening (${r.catchUpChangesPerSec} changes/s)`);
  }
}
