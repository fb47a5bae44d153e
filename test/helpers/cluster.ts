/**
 * A cluster of tracker processes for system tests: one tracker_info file, a data dir per tracker,
 * and (optionally) a {@link TcpProxy} on every directed tracker-to-tracker path so a test can cut
 * and heal links. Trackers learn the proxies through the replication test hook
 * `COTERIE_PEER_ADDR_OVERRIDE` (listed address -> dial address); clients connect directly.
 *
 *   const c = await TrackerCluster.start({ n: 3, dir, proxied: true });
 *   c.isolate(2); ...; c.healAll();
 *   await c.waitConverged(10_000);
 *   await c.close();   // kills every tracker by PID, closes proxies
 *
 * Trackers are numbered from 0 here (tracker_no = index + 1).
 *
 * A test file that runs one cluster gets its temp dir and teardown from {@link clusterFixture}:
 *
 *   const fx = clusterFixture('coterie-my-test-');
 *   test('...', async () => { const c = await fx.start({ n: 3, proxied: true }); ... });
 */
import { after, before } from 'node:test';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePorts } from './ports.js';
import { RpcTestClient, startTracker, stopAllTrackers, writeTrackerInfo, type TrackerProcess } from './tracker.js';
import { TcpProxy } from './tcp-proxy.js';

export interface ClusterOptions {
  n: number;
  /** Parent directory for tracker_info and data dirs (under os.tmpdir()). */
  dir: string;
  /** Put a proxy on every tracker-to-tracker path. */
  proxied?: boolean;
  env?: NodeJS.ProcessEnv;
}

/** One peer link in a tracker's status. */
export interface PeerLinkStatus {
  addr: string; connected: boolean; origin: string | null;
  lag: number | null; behind: number | null; lastContactMsAgo: number | null;
}

/** What a tracker's status says about replication, as the tests read it. */
export interface ReplStatus {
  origin: string;
  digest: string;
  versionVector: Record<string, number>;
  peers: PeerLinkStatus[];
  online?: number;
}

export class TrackerCluster {
  readonly procs: (TrackerProcess | null)[];
  private constructor(
    readonly opts: ClusterOptions,
    readonly ports: number[],
    readonly infoFile: string,
    readonly proxies: Map<string, TcpProxy>,
  ) {
    this.procs = ports.map(() => null);
  }

  static async start(opts: ClusterOptions): Promise<TrackerCluster> {
    mkdirSync(opts.dir, { recursive: true });
    const ports = await freePorts(opts.n);
    const info = writeTrackerInfo(opts.dir, ports);
    const proxies = new Map<string, TcpProxy>();
    if (opts.proxied) {
      for (let i = 0; i < opts.n; i++) {
        for (let j = 0; j < opts.n; j++) {
          if (i !== j) proxies.set(`${i}>${j}`, await TcpProxy.start({ host: '127.0.0.1', port: ports[j]! }));
        }
      }
    }
    const c = new TrackerCluster(opts, ports, info, proxies);
    try {
      await Promise.all(ports.map((_, i) => c.start(i)));
    } catch (err) {
      await c.close();
      throw err;
    }
    return c;
  }

  get n(): number { return this.ports.length; }

  dataDir(i: number): string { return join(this.opts.dir, `t${i + 1}`); }

  /** The test hook value for tracker i: every other tracker through its proxy. */
  private overrideFor(i: number): string {
    const pairs: string[] = [];
    for (let j = 0; j < this.n; j++) {
      const p = this.proxies.get(`${i}>${j}`);
      if (p) pairs.push(`127.0.0.1:${this.ports[j]}=127.0.0.1:${p.port}`);
    }
    return pairs.join(',');
  }

  async start(i: number): Promise<TrackerProcess> {
    if (this.procs[i]) throw new Error(`tracker ${i} is running`);
    const p = await startTracker({
      infoFile: this.infoFile, no: i + 1, dataDir: this.dataDir(i),
      env: { ...this.opts.env, ...(this.proxies.size > 0 ? { COTERIE_PEER_ADDR_OVERRIDE: this.overrideFor(i) } : {}) },
    });
    this.procs[i] = p;
    return p;
  }

  async kill9(i: number): Promise<void> {
    const p = this.procs[i];
    this.procs[i] = null;
    if (p) await p.kill9();
  }

  async stop(i: number): Promise<void> {
    const p = this.procs[i];
    this.procs[i] = null;
    if (p) await p.stop();
  }

  /** Stops tracker i and deletes its data dir (a new origin on the next start). */
  async wipe(i: number): Promise<void> {
    await this.kill9(i);
    rmSync(this.dataDir(i), { recursive: true, force: true });
  }

  running(i: number): boolean { return this.procs[i] !== null; }

  /** Cuts (or heals) both directions between trackers i and j. */
  cut(i: number, j: number, cut = true): void {
    for (const k of [`${i}>${j}`, `${j}>${i}`]) {
      const p = this.proxies.get(k);
      if (!p) throw new Error('cluster started without proxies');
      if (cut) p.cut(); else p.heal();
    }
  }

  heal(i: number, j: number): void { this.cut(i, j, false); }

  /** Cuts tracker i off from every other tracker. */
  isolate(i: number): void { for (let j = 0; j < this.n; j++) if (j !== i) this.cut(i, j); }

  healAll(): void { for (const p of this.proxies.values()) p.heal(); }

  /** Calls `status` on tracker i (null if it is not running or does not answer). */
  async status(i: number, timeoutMs = 3000): Promise<ReplStatus | null> {
    if (!this.procs[i]) return null;
    let c: RpcTestClient | null = null;
    try {
      c = await RpcTestClient.connect(this.ports[i]!, '127.0.0.1', { timeoutMs });
      const r = await c.call('status', {}, undefined, timeoutMs);
      return r.ok ? (r.result as ReplStatus) : null;
    } catch {
      return null;
    } finally {
      c?.close();
    }
  }

  /**
   * Waits until every running tracker reports the same digest and version vector; resolves with
   * the time it took (ms). Throws with the last statuses after `timeoutMs`.
   */
  async waitConverged(timeoutMs: number, which?: number[]): Promise<number> {
    const t0 = Date.now();
    const idx = which ?? this.procs.map((_, i) => i).filter((i) => this.procs[i]);
    let last: (ReplStatus | null)[] = [];
    while (Date.now() - t0 < timeoutMs) {
      last = await Promise.all(idx.map((i) => this.status(i)));
      if (last.every((s) => s !== null)) {
        const d = last.map((s) => s!.digest);
        const v = last.map((s) => JSON.stringify(sortKeys(s!.versionVector)));
        if (d.every((x) => x === d[0]) && v.every((x) => x === v[0])) return Date.now() - t0;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`trackers ${idx.join(',')} did not converge within ${timeoutMs} ms: ${JSON.stringify(last.map((s) => s && { digest: s.digest, v: s.versionVector }))}`);
  }

  /**
   * Waits until tracker i holds at least `vector` (cheaper than {@link waitConverged} when the
   * target is known: one status call per poll); resolves with the ms it took.
   */
  async waitVector(i: number, vector: Record<string, number>, timeoutMs: number, pollMs = 25): Promise<number> {
    const t0 = Date.now();
    let last: ReplStatus | null = null;
    while (Date.now() - t0 < timeoutMs) {
      last = await this.status(i);
      if (last && Object.entries(vector).every(([o, s]) => (last!.versionVector[o] ?? 0) >= s)) return Date.now() - t0;
      await new Promise((r) => setTimeout(r, pollMs));
    }
    throw new Error(`tracker ${i} did not reach ${JSON.stringify(vector)} within ${timeoutMs} ms: ${JSON.stringify(last?.versionVector)}`);
  }

  /** Kills every tracker (by PID) and closes the proxies. */
  async close(): Promise<void> {
    await Promise.all(this.procs.map((_, i) => this.kill9(i)));
    for (const p of this.proxies.values()) await p.close();
  }
}

function sortKeys(o: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : 1)));
}

/**
 * The setup and teardown shared by the cluster system tests, registered as node:test hooks where
 * it is called (a test file's top level, or a describe block): before the tests, a fresh temp dir
 * named `prefix...` under os.tmpdir(); after them, in this order, everything handed to
 * {@link ClusterFixture.track} or {@link ClusterFixture.onTeardown} (in the order given), the
 * clusters started with {@link ClusterFixture.start}, every tracker process still running, and the
 * temp dir.
 */
export interface ClusterFixture {
  /** The temp dir (once the fixture's `before` hook has run). */
  readonly dir: string;
  /** Starts a cluster in `dir` (or in `dir/<sub>`); it is closed after the tests. */
  start(opts: Omit<ClusterOptions, 'dir'> & { sub?: string }): Promise<TrackerCluster>;
  /** Closes `x` after the tests, before the cluster goes; returns `x`. */
  track<T extends { close(): unknown }>(x: T): T;
  /** Runs `f` after the tests, before the cluster goes (awaited if it returns a promise). */
  onTeardown(f: () => unknown): void;
}

/** See {@link ClusterFixture}. */
export function clusterFixture(prefix: string): ClusterFixture {
  let dir: string | undefined;
  const clusters: TrackerCluster[] = [];
  const teardown: (() => unknown)[] = [];
  before(() => { dir = mkdtempSync(join(tmpdir(), prefix)); });
  after(async () => {
    for (const f of teardown) {
      const r = f();
      if (r instanceof Promise) await r;
    }
    for (const c of clusters) await c.close();
    await stopAllTrackers();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });
  const fx: ClusterFixture = {
    get dir(): string {
      if (dir === undefined) throw new Error('clusterFixture: dir used before its before hook ran');
      return dir;
    },
    async start({ sub, ...opts }) {
      const c = await TrackerCluster.start({ ...opts, dir: sub === undefined ? fx.dir : join(fx.dir, sub) });
      clusters.push(c);
      return c;
    },
    track(x) {
      teardown.push(() => x.close());
      return x;
    },
    onTeardown(f) { teardown.push(f); },
  };
  return fx;
}
