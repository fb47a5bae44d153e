/**
 * The libtorrent side of the swarm scenarios: runs the reference script `lt_swarm.py` (kept beside
 * the repository, in `../shared/bench/`, or wherever COTERIE_REF_BENCH points) with the same size,
 * seeders, leechers and 256 KiB pieces, in the same pass as Coterie, and parses its per-rep lines.
 *
 * Its `wall_s` runs from just before the leecher processes are spawned to the last
 * torrent_finished_alert (every piece SHA-1 verified); every downloaded file is compared with the
 * source by SHA-1 afterwards. See the reference's RESULTS.md.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fmtSize, note, REPO_ROOT } from './util.js';

/** Where the reference scripts are, and the Python that can import Debian's libtorrent bindings. */
export interface ReferenceEnv {
  dir: string;
  python: string;
  /** Why the reference cannot run (absent scripts, no libtorrent); null when it can. */
  unavailable: string | null;
  libtorrentVersion: string | null;
}

export function referenceEnv(): ReferenceEnv {
  const dir = resolve(process.env['COTERIE_REF_BENCH'] ?? join(REPO_ROOT, '..', 'shared', 'bench'));
  const python = process.env['COTERIE_BENCH_PYTHON'] ?? '/usr/bin/python3';
  const base = { dir, python, libtorrentVersion: null };
  if (!existsSync(join(dir, 'lt_swarm.py'))) {
    return { ...base, unavailable: `reference scripts not found at ${dir} (set COTERIE_REF_BENCH)` };
  }
  const r = spawnSync(python, ['-c', 'import libtorrent as lt; print(lt.__version__)'], { encoding: 'utf8', timeout: 30_000 });
  if (r.status !== 0) {
    return { ...base, unavailable: `${python} cannot import libtorrent (apt-get install python3-libtorrent)` };
  }
  return { ...base, unavailable: null, libtorrentVersion: r.stdout.trim() };
}

/** One rep of lt_swarm.py, as its `lt_swarm_rep` line reports it. */
export interface LtRep {
  wall_s: number;
  xfer_s: number;
  data_s: number;
  leech_cpu_s: number;
  seed_cpu_s: number;
  leech_maxrss_MiB: number;
  verify: boolean;
}

export interface LtShape { size: number; seeders: number; leechers: number; pieceKiB: number }

/** Runs lt_swarm.py for `reps` reps; throws with its output if it fails or does not verify. */
export async function runLtSwarm(env: ReferenceEnv, shape: LtShape, reps: number, workdir: string): Promise<LtRep[]> {
  if (env.unavailable) throw new Error(env.unavailable);
  const args = [join(env.dir, 'lt_swarm.py'), '--size', fmtSize(shape.size), '--seeders', String(shape.seeders),
    '--leechers', String(shape.leechers), '--reps', String(reps), '--piece-kib', String(shape.pieceKiB), '--workdir', workdir];
  note(`libtorrent: lt_swarm.py --size ${fmtSize(shape.size)} --seeders ${shape.seeders} --leechers ${shape.leechers} --reps ${reps}`);
  const out = await new Promise<string>((resolveOut, reject) => {
    const child = spawn(env.python, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let text = '';
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stdout.on('data', (s: string) => { text += s; });
    child.stderr.on('data', (s: string) => { text += s; });
    child.on('error', reject);
    child.on('exit', (code) => {
      if (code === 0) resolveOut(text);
      else reject(new Error(`lt_swarm.py exited with ${code}:\n${text.split('\n').slice(-8).join('\n')}`));
    });
  });
  const res: LtRep[] = [];
  for (const line of out.split('\n')) {
    if (!line.startsWith('lt_swarm_rep ')) continue;
    const kv = new Map([...line.matchAll(/(\w+)=(\S+)/g)].map((m) => [m[1]!, m[2]!]));
    const num = (k: string) => Number(kv.get(k) ?? NaN);
    res.push({
      wall_s: num('wall_s'), xfer_s: num('xfer_s'), data_s: num('data_s'), leech_cpu_s: num('leech_cpu_s'),
      seed_cpu_s: num('seed_cpu_s'), leech_maxrss_MiB: num('leech_maxrss_MiB'), verify: kv.get('verify') === 'ok',
    });
  }
  if (res.length !== reps) throw new Error(`lt_swarm.py reported ${res.length} of ${reps} reps:\n${out.slice(-2000)}`);
  if (!res.every((r) => r.verify)) throw new Error('lt_swarm.py: a downloaded file did not match its source');
  return res;
}
