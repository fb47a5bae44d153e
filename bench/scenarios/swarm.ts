/**
 * Coterie swarms on loopback, timed the way lt_swarm.py times libtorrent: S seeder processes and
 * L downloader processes (each its own `./client`), one `./tracker`, all on 127.0.0.1.
 *
 * Untimed setup: a random source file (fsynced), the tracker, the seeders (create_user, login,
 * create_group / join_group + accept_request, `upload_file`). An observer RPC connection (a member
 * with no shares, so never handed out as a peer) waits until every seeder is online and reads the
 * piece length the manifest really has.
 *
 * Each rep: `sync`; fresh downloader processes with fresh data dirs log in (rep 0 creates their
 * users and gets them accepted); `sync` again; then the clock starts just before `download_file`
 * is written to the first downloader's stdin (all of them, back to back) and stops at the last
 * downloader's `download complete` log line (file whole, every piece SHA-1 checked, whole-file
 * SHA-256 checked, renamed). After timing: each downloader's peak RSS (VmHWM) and CPU, then every
 * downloaded file is compared with the source by SHA-1; downloaders quit (log out) and their
 * files are deleted, so no rep's copy serves the next.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseManifest } from '../../src/swarm/manifest.js';
import { freePorts } from '../../test/helpers/ports.js';
import { CoterieClient, CoterieTracker, until, writeTrackerInfo } from '../lib/coterie.js';
import { BenchRpc } from '../lib/rpc.js';
import { fmtSize, makeRandomFile, makeWorkDir, MiB, note, processCpuSeconds, processMemory, removeDir, sha1File, syncDisks } from '../lib/util.js';

export interface SwarmShape { size: number; seeders: number; leechers: number; pieceKiB: number }

export interface CoterieSwarmRep {
  /** Clock start (download_file written) to the last downloader's completion, seconds. */
  wall_s: number;
  /** Each downloader's own time from the same start. */
  leech_s: number[];
  /** Every downloaded file equal to the source (SHA-1). */
  verify: boolean;
  leech_hwm_MiB: number[];
  /** CPU of each downloader from the start of the clock to its completion. */
  leech_cpu_s: number[];
  /** CPU of all seeders during the rep. */
  seed_cpu_s: number;
  /** From the clock's start to each downloader's `download started` log line (command, get_peers, set-up). */
  start_s: number[];
  /** Each downloader's last verified piece to complete (whole-file SHA-256 tail, rename), seconds. */
  tail_s: number[];
  /** Block bytes each downloader received but could not use (duplicates in endgame, late blocks). */
  wasted_MiB: number[];
  /** What each downloader had served to other downloaders when it completed. */
  uploaded_MiB: number[];
}

export interface CoterieSwarmResult { reps: CoterieSwarmRep[]; pieceLength: number }

export interface SwarmOptions {
  workParent?: string;
  /** Extra environment for every client (e.g. the piece-size override). */
  clientEnv?: NodeJS.ProcessEnv;
  keep?: boolean;
}

const GROUP = 'bench';
const FILE = 'payload.bin';
const PASSWORD = 'bench-pw';

export async function runCoterieSwarm(shape: SwarmShape, reps: number, o: SwarmOptions = {}): Promise<CoterieSwarmResult> {
  const wd = makeWorkDir(o.workParent, 'coterie_swarm.');
  const tag = `${fmtSize(shape.size)} ${shape.seeders}->${shape.leechers}`;
  const repTimeoutMs = Math.max(120_000, (shape.size * shape.leechers / (5 * MiB)) * 1000);
  const clientEnv = { ...o.clientEnv, COTERIE_PIECE_KIB: String(shape.pieceKiB) };
  let tracker: CoterieTracker | null = null;
  const seeders: CoterieClient[] = [];
  let observer: BenchRpc | null = null;
  try {
    const src = join(wd, 'src', FILE);
    note(`coterie ${tag}: writing a ${fmtSize(shape.size)} random source file`);
    const srcSha1 = makeRandomFile(src, shape.size);

    const [trackerPort] = await freePorts(1);
    const info = writeTrackerInfo(join(wd, 'trackers.txt'), [trackerPort!]);
    tracker = await CoterieTracker.start(info, 1, join(wd, 'tracker-1'));

    // Seeders: the first owns the group and accepts the others.
    const seedPorts = await freePorts(shape.seeders);
    for (let i = 0; i < shape.seeders; i++) {
      const c = CoterieClient.start({ name: `seeder${i}`, port: seedPorts[i]!, infoFile: info, dataDir: join(wd, `seed${i}`), cwd: wd, stay: true, env: clientEnv });
      seeders.push(c);
      await c.run(`create_user s${i} ${PASSWORD}`);
      await c.run(`login s${i} ${PASSWORD}`);
      if (i === 0) await c.run(`create_group ${GROUP}`);
      else {
        await c.run(`join_group ${GROUP}`);
        await seeders[0]!.run(`accept_request ${GROUP} s${i}`);
      }
    }
    const owner = seeders[0]!;
    for (const c of seeders) {
      note(`coterie ${tag}: ${c.name} upload_file (hashing)`);
      await c.run(`upload_file ${src} ${GROUP}`, { timeoutMs: 600_000 });
    }

    // Observer: sees what a downloader would get from get_peers.
    observer = await BenchRpc.connect(tracker.port);
    await observer.ok('create_user', { user: 'observer', password: PASSWORD });
    const clientId = randomBytes(8).toString('hex');
    const { token } = await observer.ok<{ token: string }>('login', { user: 'observer', password: PASSWORD, peer: '127.0.0.1:9', clientId });
    await observer.ok('join_group', { group: GROUP }, token);
    await owner.run(`accept_request ${GROUP} observer`);
    let pieceLength = 0;
    await until(async () => {
      const r = await observer!.call('get_peers', { group: GROUP, name: FILE }, token);
      if (!r.ok) return false;
      const res = r.result as { info: string; peers: unknown[] };
      pieceLength = parseManifest(Buffer.from(res.info, 'base64')).pieceLength;
      return res.peers.length >= shape.seeders;
    }, 30_000, `all ${shape.seeders} seeders online`);
    if (pieceLength !== shape.pieceKiB * 1024) {
      note(`coterie ${tag}: WARNING the manifest has ${pieceLength / 1024} KiB pieces, not ${shape.pieceKiB} KiB (the client ignored COTERIE_PIECE_KIB)`);
    }

    const results: CoterieSwarmRep[] = [];
    for (let rep = 0; rep < reps; rep++) {
      syncDisks();
      const repDir = join(wd, `rep${rep}`);
      const ports = await freePorts(shape.leechers);
      const leechers: CoterieClient[] = [];
      const dests: string[] = [];
      try {
        for (let j = 0; j < shape.leechers; j++) {
          const d = join(repDir, `leech${j}`);
          const dest = join(d, 'dl');
          mkdirSync(dest, { recursive: true });
          dests.push(dest);
          const c = CoterieClient.start({ name: `leecher${j}`, port: ports[j]!, infoFile: info, dataDir: join(d, 'state'), cwd: d, env: clientEnv });
          leechers.push(c);
          if (rep === 0) {
            await c.run(`create_user d${j} ${PASSWORD}`);
            await c.run(`login d${j} ${PASSWORD}`);
            await c.run(`join_group ${GROUP}`);
            await owner.run(`accept_request ${GROUP} d${j}`);
          } else {
            await c.run(`login d${j} ${PASSWORD}`);
          }
          c.markLog();
        }
        syncDisks();
        const seedCpu0 = seeders.reduce((a, s) => a + processCpuSeconds(s.pid), 0);
        const cpu0 = leechers.map((c) => processCpuSeconds(c.pid));
        // ---- timed window starts
        // COTERIE_BENCH_ON_START: a shell command started (detached) with the clock, e.g. a
        // system-wide `perf record` over the transfer; it gets the downloaders' PIDs in $LEECH_PIDS.
        const hook = process.env['COTERIE_BENCH_ON_START'];
        if (hook) spawn('sh', ['-c', hook], { stdio: 'ignore', detached: true, env: { ...process.env, LEECH_PIDS: leechers.map((c) => c.pid).join(' ') } }).unref();
        const t0 = Date.now();
        for (const [j, c] of leechers.entries()) c.send(`download_file ${GROUP} ${FILE} ${dests[j]}`);
        const ends = await Promise.all(leechers.map(async (c) => {
          let started = NaN;
          let done: Record<string, unknown> = {};
          const l = await c.waitLog((x) => {
            if (x.msg === 'download started') started = x.time;
            if (x.msg === 'download complete') done = x as Record<string, unknown>;
            return x.msg === 'download complete' ? 'ok' : x.msg === 'download failed' || x.msg === 'download crashed' ? 'fail' : undefined;
          }, repTimeoutMs);
          const mem = processMemory(c.pid);
          const cpu = processCpuSeconds(c.pid);
          const num = (k: string): number => (typeof done[k] === 'number' ? done[k] as number : NaN);
          return { t: l.time, started, mem, cpu, tailMs: num('tailMs'), wasted: num('wastedBytes'), uploaded: num('uploadedBytes') };
        }));
        // ---- timed window ends (at the last `time` above)
        const seedCpu = seeders.reduce((a, s) => a + processCpuSeconds(s.pid), 0) - seedCpu0;
        const leech_s = ends.map((e) => (e.t - t0) / 1000);
        const verify = dests.every((d) => sha1File(join(d, FILE)) === srcSha1);
        const r: CoterieSwarmRep = {
          wall_s: Math.max(...leech_s), leech_s, verify,
          leech_hwm_MiB: ends.map((e) => (e.mem?.hwm ?? NaN) / MiB),
          leech_cpu_s: ends.map((e, j) => e.cpu - cpu0[j]!),
          seed_cpu_s: seedCpu,
          start_s: ends.map((e) => (e.started - t0) / 1000),
          tail_s: ends.map((e) => e.tailMs / 1000),
          wasted_MiB: ends.map((e) => e.wasted / MiB),
          uploaded_MiB: ends.map((e) => e.uploaded / MiB),
        };
        results.push(r);
        note(`coterie ${tag} rep ${rep + 1}/${reps}: wall_s=${r.wall_s.toFixed(2)} MBps=${(shape.size / r.wall_s / 1e6).toFixed(0)} ` +
          `leech_cpu_s=${r.leech_cpu_s.map((x) => x.toFixed(2)).join('/')} seed_cpu_s=${seedCpu.toFixed(2)} ` +
          `start_s=${r.start_s.map((x) => x.toFixed(2)).join('/')} tail_s=${r.tail_s.map((x) => x.toFixed(2)).join('/')} ` +
          `up_MiB=${r.uploaded_MiB.map((x) => x.toFixed(0)).join('/')} wasted_MiB=${r.wasted_MiB.map((x) => x.toFixed(1)).join('/')} hwm_MiB=${r.leech_hwm_MiB.map((x) => x.toFixed(0)).join('/')} verify=${verify ? 'ok' : 'MISMATCH'}`);
        if (!verify) throw new Error(`coterie ${tag}: a downloaded file does not match the source`);
      } finally {
        await Promise.all(leechers.map((c) => c.quit()));
        removeDir(repDir);
      }
    }
    return { reps: results, pieceLength };
  } finally {
    observer?.close();
    await Promise.all(seeders.map((c) => c.quit()));
    await tracker?.stop();
    if (!o.keep) removeDir(wd);
  }
}
