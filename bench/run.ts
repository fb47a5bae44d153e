/**
 * `npm run bench`: Coterie and the libtorrent reference (lt_swarm.py) on the same shapes, in one
 * pass, each figure printed with its ratio (Coterie / libtorrent, lower is better); medians of
 * `--reps` reps (default 3).
 *
 *   node dist/bench/run.js [--reps N] [--quick] [--only 1,3,5] [--no-ref] [--workdir DIR] [--keep]
 *
 * Scenarios (issue "Performance: faster than libtorrent on the same swarm, measured side by side"):
 *   1  1 GiB, 3 seeders -> 1 downloader; and 1 GiB, 2 seeders -> 1
 *   2  256 MiB, 1 seeder -> 8 downloaders starting together (and: all 8 within 3x one alone?)
 *   3  256 MiB, 1 seeder -> 1 downloader
 *   4  upload_file hashing (buildManifest) of 1 GiB vs raw SHA-1 over the same bytes
 *   5  tracker: req/s with 200 clients mixing login, list_files, get_peers; replication lag p50/p99
 *   6  peak RSS: a downloader fetching 2 GiB; a tracker with 10,000 users, 1,000 groups, 100,000 files
 * --quick uses small sizes (64 MiB swarms, 128 MiB hashing and download RSS, a tenth of the tracker
 * state, 3 s throughput windows) for trying things out; its results go to bench/results/partial.json.
 * A full pass (no --quick, no --only, at least 3 reps) writes bench/results/latest.json and latest.md.
 *
 * Env: COTERIE_REF_BENCH (reference scripts dir, default <repo>/../shared/bench),
 * COTERIE_BENCH_PYTHON (default /usr/bin/python3), COTERIE_BENCH_WORKDIR (default the OS temp dir).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { ensureBuilt, killAll } from './lib/coterie.js';
import { fmtStat, markdown, type Figure, type Results } from './lib/report.js';
import { referenceEnv, runLtSwarm, type LtRep, type ReferenceEnv } from './lib/reference.js';
import { fmtSize, GiB, MiB, note, REPO_ROOT, stat, type Stat } from './lib/util.js';
import { runHashing } from './scenarios/hashing.js';
import { runReplicationLag } from './scenarios/replication.js';
import { runCoterieSwarm, type CoterieSwarmResult, type SwarmShape } from './scenarios/swarm.js';
import { mixLabel, runTrackerRps, runTrackerRss, type RpsMix } from './scenarios/tracker.js';

interface Options { reps: number; quick: boolean; only: number[] | null; ref: boolean; workdir: string | undefined; keep: boolean }

function parseArgs(argv: string[]): Options {
  const o: Options = { reps: 3, quick: false, only: null, ref: true, workdir: process.env['COTERIE_BENCH_WORKDIR'], keep: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const val = (): string => { const v = argv[++i]; if (v === undefined) throw new Error(`${a} needs a value`); return v; };
    if (a === '--reps') o.reps = Number(val());
    else if (a.startsWith('--reps=')) o.reps = Number(a.slice(7));
    else if (a === '--quick') o.quick = true;
    else if (a === '--only' || a.startsWith('--only=')) {
      const v = a === '--only' ? val() : a.slice(7);
      o.only = v.split(/[ ,]+/).filter(Boolean).map(Number);
      if (o.only.some((n) => !(n >= 1 && n <= 6))) throw new Error(`--only takes scenario numbers 1-6, got "${v}"`);
    } else if (a === '--no-ref') o.ref = false;
    else if (a === '--workdir') o.workdir = val();
    else if (a === '--keep') o.keep = true;
    else if (a === '-h' || a === '--help') { process.stdout.write('usage: node dist/bench/run.js [--reps N] [--quick] [--only 1,2,...] [--no-ref] [--workdir DIR] [--keep]\n'); process.exit(0); }
    else throw new Error(`unknown argument ${a}`);
  }
  if (!(Number.isInteger(o.reps) && o.reps >= 1)) throw new Error('--reps must be a positive integer');
  return o;
}

const PIECE_KIB = 256;

/** Everything one pass collects. */
class Pass {
  figures: Figure[] = [];
  notes: string[] = [];
  constructor(readonly o: Options, readonly ref: ReferenceEnv) {}
  want(n: number): boolean { return this.o.only === null || this.o.only.includes(n); }
  add(f: Figure): void { this.figures.push(f); }
  fail(scenario: number, id: string, label: string, err: unknown): void {
    const msg = err instanceof Error ? err.message.split('\n')[0]! : String(err);
    note(`scenario ${scenario} (${label}) FAILED: ${msg}`);
    this.add({ id, scenario, label, unit: '', coterie: null, status: 'failed', note: msg.slice(0, 200) });
  }
}

const mbps = (size: number, s: Stat): string => `${(size / s.median / 1e6).toFixed(0)} MB/s`;

/** Runs libtorrent (if available) and Coterie on one shape; returns both raw results. */
async function swarmPair(p: Pass, shape: SwarmShape): Promise<{ lt: LtRep[] | null; ltErr: string | null; co: CoterieSwarmResult | null; coErr: unknown }> {
  let lt: LtRep[] | null = null, ltErr: string | null = null;
  if (!p.o.ref) ltErr = 'disabled (--no-ref)';
  else if (p.ref.unavailable) ltErr = p.ref.unavailable;
  else {
    try { lt = await runLtSwarm(p.ref, shape, p.o.reps, p.o.workdir ?? (process.env['TMPDIR'] || '/tmp')); }
    catch (err) { ltErr = err instanceof Error ? err.message.split('\n')[0]! : String(err); note(`libtorrent FAILED: ${ltErr}`); }
  }
  let co: CoterieSwarmResult | null = null, coErr: unknown = null;
  try { co = await runCoterieSwarm(shape, p.o.reps, { ...(p.o.workdir ? { workParent: p.o.workdir } : {}), keep: p.o.keep }); }
  catch (err) { coErr = err; }
  return { lt, ltErr, co, coErr };
}

function timeFigure(id: string, scenario: number, label: string, size: number, co: CoterieSwarmResult | null, coErr: unknown,
  lt: LtRep[] | null, ltErr: string | null, pick: (r: { wall_s: number }) => number = (r) => r.wall_s): Figure {
  const cs = co ? stat(co.reps.map(pick)) : null;
  const ls = lt ? stat(lt.map((r) => r.wall_s)) : null;
  const f: Figure = {
    id, scenario, label, unit: 's', coterie: cs,
    // lt's xfer_s leaves out its process start and first connect tick (up to 0.5 s), for the reader who wants it.
    reference: { name: 'libtorrent', stat: ls, ...(ls ? { text: `${fmtStatShort(ls)}, ${mbps(size, ls)} (xfer_s ${stat(lt!.map((r) => r.xfer_s)).median.toFixed(2)})` } : { text: `– (${ltErr})` }) },
    ratio: cs && ls ? cs.median / ls.median : null,
    status: co ? 'ok' : 'failed',
    details: { coterie: co, libtorrent: lt },
  };
  if (cs) f.coterieText = `${fmtStatShort(cs)}, ${mbps(size, cs)}`;
  if (co && co.pieceLength !== PIECE_KIB * 1024) f.note = `Coterie used ${co.pieceLength / 1024} KiB pieces`;
  if (!co) f.note = coErr instanceof Error ? coErr.message.split('\n')[0]!.slice(0, 200) : String(coErr);
  return f;
}

/** Downloaders' CPU seconds (user+sys, all downloaders) from the start of the clock to completion. */
function cpuFigure(id: string, scenario: number, label: string, co: CoterieSwarmResult | null, lt: LtRep[] | null): Figure | null {
  if (!co) return null;
  const cs = stat(co.reps.map((r) => r.leech_cpu_s.reduce((a, b) => a + b, 0)));
  const ls = lt ? stat(lt.map((r) => r.leech_cpu_s)) : null;
  return {
    id, scenario, label, unit: 's', coterie: cs, reference: { name: 'libtorrent', stat: ls },
    ratio: ls ? cs.median / ls.median : null, status: 'ok',
  };
}

function fmtStatShort(s: Stat): string {
  return s.samples.length > 1 && s.min !== s.max ? `${s.median.toFixed(2)} s (${s.min.toFixed(2)}–${s.max.toFixed(2)})` : `${s.median.toFixed(2)} s`;
}

async function main(): Promise<number> {
  const o = parseArgs(process.argv.slice(2));
  const ref = referenceEnv();
  if (!o.ref) note('libtorrent reference disabled (--no-ref)');
  else if (ref.unavailable) note(`libtorrent reference SKIPPED: ${ref.unavailable}`);
  else note(`libtorrent reference: ${ref.dir} (libtorrent ${ref.libtorrentVersion})`);
  ensureBuilt();
  const load0 = loadavg()[0]!;
  const started = Date.now();
  const p = new Pass(o, ref);
  const q = o.quick;
  const S = {
    s1: q ? 64 * MiB : GiB, s2: q ? 64 * MiB : 256 * MiB, s3: q ? 64 * MiB : 256 * MiB,
    s4: q ? 128 * MiB : GiB, s6: q ? 128 * MiB : 2 * GiB,
    tracker: q ? { users: 1_000, groups: 100, files: 10_000 } : { users: 10_000, groups: 1_000, files: 100_000 },
  };
  const wp = o.workdir ? { workParent: o.workdir } : {};

  // 4: hashing.
  if (p.want(4)) {
    const label = `upload_file hashing of ${fmtSize(S.s4)} (buildManifest, 256 KiB pieces) vs raw SHA-1`;
    try {
      const reps = await runHashing(S.s4, PIECE_KIB * 1024, o.reps, o.workdir);
      const pct = stat(reps.map((r) => r.percent));
      p.add({
        id: 's4.hash', scenario: 4, label, unit: 'MB/s', coterie: stat(reps.map((r) => r.manifest_MBps)),
        reference: { name: 'raw SHA-1, node crypto', stat: stat(reps.map((r) => r.sha1_MBps)) },
        ratio: pct.median / 100, ratioText: `${pct.median.toFixed(0)} % of raw SHA-1`, status: 'ok', details: reps,
      });
    } catch (err) { p.fail(4, 's4.hash', label, err); }
  }

  // 5: tracker throughput, replication lag.
  if (p.want(5)) {
    const clients = 200;
    // Each client logs in once per rep (timed apart: logins/s), then list_files / get_peers only:
    // the headline is that steady state, as a client logs in once and then browses and fetches.
    const mixes: RpsMix[] = [{ login: 0, list_files: 50, get_peers: 50 }];
    const label = `tracker req/s, ${clients} clients`;
    try {
      const runs = await runTrackerRps({ clients, warmupMs: q ? 1_000 : 2_000, measureMs: q ? 3_000 : 10_000, mixes, ...wp }, o.reps);
      mixes.forEach((mix, k) => {
        const rs = runs.map((row) => row[k]!);
        const gp = stat(rs.map((r) => r.perOp['get_peers']?.p99_ms ?? NaN));
        const lg = rs[0]!.perOp['login'];
        const rps = stat(rs.map((r) => r.rps));
        p.add({
          id: `s5.rps.${k}`, scenario: 5, label: `${label}, steady state after login (${mixLabel(mix)})`, unit: 'req/s', coterie: rps,
          coterieText: `${fmtStat(rps, 'req/s')}; p99 get_peers ${gp.median.toFixed(1)} ms${lg ? `, login ${stat(rs.map((r) => r.perOp['login']?.p99_ms ?? NaN)).median.toFixed(0)} ms` : ''}`,
          reference: null, status: 'ok', details: rs,
        });
        const lps = stat(rs.map((r) => r.logins.perSec));
        p.add({
          id: `s5.logins.${k}`, scenario: 5, label: `tracker logins/s, ${clients} clients logging in at once (real scrypt, N=2^14 r=8)`,
          unit: 'logins/s', coterie: lps,
          coterieText: `${fmtStat(lps, 'logins/s')}; p99 ${stat(rs.map((r) => r.logins.p99_ms)).median.toFixed(0)} ms`,
          reference: null, status: 'ok', details: rs.map((r) => r.logins),
        });
      });
    } catch (err) { p.fail(5, 's5.rps', label, err); }
    const lagLabel = 'replication lag, 3 trackers: ack on one to row visible on the others';
    try {
      const lag = await runReplicationLag({ quick: q, reps: o.reps, ...wp });
      if (lag === null) p.add({ id: 's5.lag', scenario: 5, label: lagLabel, unit: 'ms', coterie: null, status: 'skipped', note: 'bench/replication-lag.ts not there yet' });
      else {
        p.add({
          id: 's5.lag', scenario: 5, label: lagLabel, unit: 'ms', coterie: stat(lag.p50_ms),
          coterieText: `p50 ${stat(lag.p50_ms).median.toFixed(1)} ms, p99 ${stat(lag.p99_ms).median.toFixed(1)} ms`,
          reference: null, status: 'ok', details: lag,
        });
        if (lag.catchUp_per_s.length) {
          p.add({
            id: 's5.catchup', scenario: 5, label: `replication catch-up of a restarted tracker (${q ? '1,000' : '10,000'} changes missed)`,
            unit: 'changes/s', coterie: stat(lag.catchUp_per_s), reference: null, status: 'ok',
          });
        }
      }
    } catch (err) { p.fail(5, 's5.lag', lagLabel, err); }
  }

  // 6 (tracker half): memory of a populated tracker.
  if (p.want(6)) {
    const t = S.tracker;
    const label = `tracker peak RSS, ${t.users.toLocaleString('en')} users, ${t.groups.toLocaleString('en')} groups, ${t.files.toLocaleString('en')} files`;
    try {
      const r = await runTrackerRss(t, o.workdir);
      note(`tracker rss: VmHWM ${r.hwm_MiB.toFixed(0)} MiB, VmRSS ${r.rss_MiB.toFixed(0)} MiB, db ${r.db_MiB.toFixed(0)} MiB, manifests ${r.info_MiB.toFixed(0)} MiB (base64), populated in ${r.populate_s.toFixed(0)} s`);
      p.add({
        id: 's6.tracker', scenario: 6, label, unit: 'MiB', coterie: stat([r.hwm_MiB]),
        reference: { name: '', stat: null, text: `database ${r.db_MiB.toFixed(0)} MiB on disk` }, status: 'ok', details: r,
      });
    } catch (err) { p.fail(6, 's6.tracker', label, err); }
  }

  // 3 before 2: scenario 2 compares against one downloader alone.
  let alone: { co: Stat | null; lt: Stat | null } = { co: null, lt: null };
  const s3Shape: SwarmShape = { size: S.s3, seeders: 1, leechers: 1, pieceKiB: PIECE_KIB };
  if (p.want(3)) {
    const r = await swarmPair(p, s3Shape);
    const f = timeFigure('s3.1to1', 3, `${fmtSize(S.s3)}, 1 seeder → 1 downloader: time`, S.s3, r.co, r.coErr, r.lt, r.ltErr);
    p.add(f);
    const c = cpuFigure('s3.1to1.cpu', 3, 'downloader CPU time (user+sys) for it', r.co, r.lt);
    if (c) p.add(c);
    alone = { co: f.coterie, lt: f.reference?.stat ?? null };
  }
  if (p.want(2)) {
    const shape: SwarmShape = { size: S.s2, seeders: 1, leechers: 8, pieceKiB: PIECE_KIB };
    if (shape.size !== S.s3 || !alone.co) {
      note('scenario 2: measuring one downloader alone first (scenario 3 did not run at this size)');
      const r = await swarmPair(p, { ...s3Shape, size: S.s2 });
      alone = { co: r.co ? stat(r.co.reps.map((x) => x.wall_s)) : null, lt: r.lt ? stat(r.lt.map((x) => x.wall_s)) : null };
    }
    const r = await swarmPair(p, shape);
    const f8 = timeFigure('s2.1to8', 2, `${fmtSize(S.s2)}, 1 seeder → 8 downloaders together: time until all 8 are done`, S.s2, r.co, r.coErr, r.lt, r.ltErr);
    if (r.co && f8.coterieText) {
      // The spread inside the swarm: when the first downloader finished, and the median one.
      const first = stat(r.co.reps.map((x) => Math.min(...x.leech_s))).median;
      const mid = stat(r.co.reps.map((x) => stat(x.leech_s).median)).median;
      f8.coterieText += `; first done ${first.toFixed(2)} s, median ${mid.toFixed(2)} s`;
    }
    p.add(f8);
    const within = (all8: Stat | null, one: Stat | null): string => {
      if (!all8 || !one) return '–';
      const x = all8.median / one.median;
      return `${x <= 3 ? 'yes' : 'NO'} (${x.toFixed(1)}× one alone: ${one.median.toFixed(2)} s)`;
    };
    const co8 = r.co ? stat(r.co.reps.map((x) => x.wall_s)) : null;
    const lt8 = r.lt ? stat(r.lt.map((x) => x.wall_s)) : null;
    p.add({
      id: 's2.within3x', scenario: 2, label: 'all 8 done within 3× the time of one downloader alone?', unit: '',
      coterie: co8, coterieText: within(co8, alone.co), reference: { name: 'libtorrent', stat: lt8, text: within(lt8, alone.lt) },
      status: r.co ? 'ok' : 'failed', ...(r.co ? {} : { note: 'see above' }),
      details: { aloneCoterie: alone.co, aloneLibtorrent: alone.lt },
    });
  }
  if (p.want(1)) {
    for (const seeders of [3, 2]) {
      const r = await swarmPair(p, { size: S.s1, seeders, leechers: 1, pieceKiB: PIECE_KIB });
      p.add(timeFigure(`s1.${seeders}to1`, 1, `${fmtSize(S.s1)}, ${seeders} seeders → 1 downloader: time`, S.s1, r.co, r.coErr, r.lt, r.ltErr));
      const c = cpuFigure(`s1.${seeders}to1.cpu`, 1, 'downloader CPU time (user+sys) for it', r.co, r.lt);
      if (c) p.add(c);
    }
  }
  // 6 (downloader half): peak RSS while fetching the big file, 1 seeder -> 1.
  if (p.want(6)) {
    const label = `downloader peak RSS fetching ${fmtSize(S.s6)} (1 seeder → 1)`;
    const r = await swarmPair(p, { size: S.s6, seeders: 1, leechers: 1, pieceKiB: PIECE_KIB });
    const cs = r.co ? stat(r.co.reps.map((x) => x.leech_hwm_MiB[0]!)) : null;
    const ls = r.lt ? stat(r.lt.map((x) => x.leech_maxrss_MiB)) : null;
    p.add({
      id: 's6.downloader', scenario: 6, label, unit: 'MiB', coterie: cs,
      reference: { name: 'libtorrent', stat: ls, ...(ls ? {} : { text: `– (${r.ltErr})` }) },
      ratio: cs && ls ? cs.median / ls.median : null, status: r.co ? 'ok' : 'failed',
      ...(r.co ? {} : { note: r.coErr instanceof Error ? r.coErr.message.split('\n')[0]!.slice(0, 200) : String(r.coErr) }),
      details: { coterie: r.co, libtorrent: r.lt },
    });
    if (r.co || r.lt) {
      p.add(timeFigure('s6.downloader.time', 6, `${fmtSize(S.s6)}, 1 seeder → 1 downloader: time`, S.s6, r.co, r.coErr, r.lt, r.ltErr));
    }
  }

  if ([1, 2, 3, 6].some((n) => p.want(n))) p.notes.push('Swarm times: Coterie from writing `download_file` to the client until its log says `download complete` (every piece SHA-1 checked, whole file SHA-256 checked, renamed); ' +
    'libtorrent (lt_swarm.py `wall_s`) from spawning the leechers to the last `torrent_finished_alert`. Real processes on 127.0.0.1, one per peer, 256 KiB pieces, source synced before every rep, every download compared with the source by SHA-1 afterwards.');
  if (p.figures.some((f) => f.id.endsWith('.cpu'))) {
    p.notes.push('Downloader CPU: Coterie from the start of the clock to completion (/proc/<pid>/stat); libtorrent from its leecher process start (getrusage), so it includes Python and libtorrent start-up.');
  }
  p.notes.sort();
  // Cheap scenarios ran first and 3 before 2; the table reads in the issue's order (sort is stable).
  p.figures.sort((a, b) => a.scenario - b.scenario);
  const res: Results = {
    version: 1,
    generated: new Date().toISOString(),
    commit: (() => { try { return execFileSync('git', ['rev-parse', 'HEAD'], { cwd: REPO_ROOT, encoding: 'utf8' }).trim(); } catch { return null; } })(),
    machine: {
      cpus: cpus().length, cpuModel: cpus()[0]?.model.trim() ?? '?', memGiB: Math.round(totalmem() / GiB), node: process.versions.node, kernel: release(),
      loadAvg1mStart: load0, loadAvg1mEnd: loadavg()[0]!,
    },
    options: { reps: o.reps, quick: o.quick, only: o.only, reference: o.ref ? 'lt_swarm.py' : 'disabled' },
    reference: { available: o.ref && !ref.unavailable, libtorrent: ref.libtorrentVersion, reason: o.ref ? ref.unavailable : 'disabled (--no-ref)' },
    durationS: Math.round((Date.now() - started) / 1000),
    figures: p.figures,
    notes: p.notes,
  };
  const md = markdown(res);
  process.stdout.write('\n' + md);
  const dir = join(REPO_ROOT, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  // Only a complete pass at full size with at least 3 reps backs the README table.
  const full = !o.quick && o.only === null && o.reps >= 3;
  const base = full ? 'latest' : 'partial';
  writeFileSync(join(dir, `${base}.json`), JSON.stringify(res, null, 2) + '\n');
  writeFileSync(join(dir, `${base}.md`), md);
  note(`wrote bench/results/${base}.json and ${base}.md${full ? ' (run `node dist/bench/readme-table.js` to update README.md)' : ''}`);
  return p.figures.some((f) => f.status === 'failed') ? 1 : 0;
}

process.on('SIGINT', () => { killAll(); process.exit(130); });
process.on('SIGTERM', () => { killAll(); process.exit(143); });
process.on('exit', () => killAll());
main().then((code) => process.exit(code), (err: unknown) => { killAll(); process.stderr.write(`bench: ${err instanceof Error ? err.stack : String(err)}\n`); process.exit(2); });
