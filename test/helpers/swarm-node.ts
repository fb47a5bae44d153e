/**
 * A swarm node for multi-process tests and benchmarks: seeds or downloads one file with the real
 * engine, no tracker (peers are passed in), and reports on stdout as JSON lines.
 *
 *   node swarm-node.js seed --file F --info I [--listen 127.0.0.1:0] [--max-up BPS]
 *   node swarm-node.js download --info I --sha256 H --dest D --resume R --peers a:1,b:2
 *                      [--listen 127.0.0.1:0] [--max-down BPS] [--max-up BPS] [--id ID] [--stay] [--pipeline N]
 *                      [--write sync|async]
 *
 * `--info` is a file holding the exact bencoded info dict; `--resume` a JSON file used as the
 * ResumeStore. Lines: {"event":"listening","port"}, {"event":"progress",...} every 100 ms while
 * downloading, {"event":"first-piece"}, {"event":"done","ok",...,"piecesFetched","banned",
 * "ms","verifiedMs","maxRssKiB"}. A seed runs until killed; a download exits after "done" unless
 * `--stay` (then it keeps serving). Stdin line "quit" pauses and exits cleanly.
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { parseEndpoint } from '../../src/common/config.js';
import { silentLogger, stderrLogger } from '../../src/common/log.js';
import type { ResumeStore } from '../../src/swarm/api.js';
import { createSwarmEngine } from '../../src/swarm/engine.js';
import { parseManifest } from '../../src/swarm/manifest.js';

function args(argv: string[]): { cmd: string; opt: Map<string, string> } {
  const [cmd = '', ...rest] = argv;
  const opt = new Map<string, string>();
  for (let i = 0; i < rest.length; i++) {
    const k = rest[i]!;
    if (!k.startsWith('--')) throw new Error(`unexpected argument ${k}`);
    const next = rest[i + 1];
    if (next === undefined || next.startsWith('--')) opt.set(k.slice(2), 'true');
    else { opt.set(k.slice(2), next); i++; }
  }
  return { cmd, opt };
}

/** `IP:PORT` where port 0 (any free port) is allowed, unlike a peer address. */
function listenEndpoint(text: string): { host: string; port: number } {
  const i = text.lastIndexOf(':');
  if (text.endsWith(':0')) return { host: text.slice(0, i), port: 0 };
  return parseEndpoint(text);
}

/**
 * Peak RSS of this process, KiB: VmHWM, which starts afresh at exec. (getrusage's ru_maxrss also
 * counts the parent's memory at fork time, so a test runner holding a big buffer inflates it.)
 */
function peakRssKiB(): number {
  try {
    const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync('/proc/self/status', 'utf8'));
    if (m) return Number(m[1]);
  } catch { /* not Linux */ }
  return process.resourceUsage().maxRSS;
}

function emit(o: Record<string, unknown>): void {
  process.stdout.write(JSON.stringify(o) + '\n');
}

/** A ResumeStore in one JSON file, written atomically (write + rename) so kill -9 never tears it. */
function jsonResume(path: string): ResumeStore {
  type Rec = { bitfield: string; partSize: number; partMtimeMs: number };
  const read = (): Record<string, Rec> => (existsSync(path) ? JSON.parse(readFileSync(path, 'utf8')) as Record<string, Rec> : {});
  const write = (all: Record<string, Rec>): void => {
    writeFileSync(`${path}.tmp`, JSON.stringify(all));
    renameSync(`${path}.tmp`, path);
  };
  return {
    load(id) {
      const r = read()[id];
      return r ? { bitfield: Buffer.from(r.bitfield, 'base64'), partSize: r.partSize, partMtimeMs: r.partMtimeMs } : undefined;
    },
    save(id, bitfield, partSize, partMtimeMs) {
      const all = read();
      all[id] = { bitfield: Buffer.from(bitfield).toString('base64'), partSize, partMtimeMs };
      write(all);
    },
    complete(id) {
      const all = read();
      delete all[id];
      write(all);
    },
  };
}

async function main(): Promise<void> {
  const { cmd, opt } = args(process.argv.slice(2));
  const need = (k: string): string => {
    const v = opt.get(k);
    if (v === undefined) throw new Error(`missing --${k}`);
    return v;
  };
  const num = (k: string): number | undefined => (opt.has(k) ? Number(opt.get(k)) : undefined);
  const manifest = parseManifest(readFileSync(need('info')));
  const logger = process.env['COTERIE_LOG'] ? stderrLogger(`swarm-node-${cmd}`) : silentLogger();
  const resumePath = opt.get('resume');
  const resume: ResumeStore = resumePath ? jsonResume(resumePath) : { load: () => undefined, save: () => {}, complete: () => {} };
  const maxUp = num('max-up');
  const maxDown = num('max-down');
  const pipeline = num('pipeline');
  const engine = createSwarmEngine({
    listen: listenEndpoint(opt.get('listen') ?? '127.0.0.1:0'),
    resume, logger,
    ...(maxUp !== undefined ? { maxUploadRate: maxUp } : {}),
    ...(maxDown !== undefined ? { maxDownloadRate: maxDown } : {}),
    ...(pipeline !== undefined ? { maxPipeline: pipeline } : {}),
    ...(opt.has('write') ? { writeMode: opt.get('write') as 'sync' | 'async' } : {}),
  });
  await engine.listen();
  emit({ event: 'listening', port: engine.address.port, pid: process.pid });

  createInterface({ input: process.stdin }).on('line', (line) => {
    if (line.trim() === 'quit') void engine.pauseAll().then(() => engine.close()).then(() => process.exit(0));
  });

  if (cmd === 'seed') {
    engine.seed({ group: opt.get('group') ?? 'g', manifest, path: need('file') });
    emit({ event: 'seeding', infoHash: manifest.infoHashHex });
    const cpu = (): number => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; };
    setInterval(() => emit({ event: 'uploaded', bytes: engine.uploaded(), cpuMs: cpu() }), 500).unref();
    return; // runs until killed
  }
  if (cmd !== 'download') throw new Error(`unknown command ${cmd}`);
  const id = opt.get('id') ?? manifest.infoHashHex;
  const peers = (opt.get('peers') ?? '').split(',').filter((s) => s !== '').map((addr) => ({ addr }));
  const started = performance.now();
  const stay = opt.has('stay');
  const progress = setInterval(() => {
    const st = engine.status().find((s) => s.id === id);
    const stats = engine.downloadStats(id);
    if (st) emit({ event: 'progress', bytesDone: st.bytesDone, state: st.state, peers: st.peers, piecesFetched: stats?.piecesFetched ?? 0, uploaded: engine.uploaded() });
  }, 100);
  engine.download({
    id, group: opt.get('group') ?? 'g', manifest, sha256: need('sha256'), destPath: need('dest'), peers,
    refreshPeers: async () => ({ peers }),
    onFirstPiece: () => emit({ event: 'first-piece' }),
    onDone: (r) => {
      const ms = performance.now() - started;
      const stats = engine.downloadStats(id);
      clearInterval(progress);
      emit({
        event: 'done', ok: r.ok, error: r.ok ? undefined : r.error.message, code: r.ok ? undefined : (r.error as { code?: string }).code,
        piecesFetched: stats?.piecesFetched ?? 0, banned: stats?.banned ?? [],
        ms, verifiedMs: stats && stats.verifiedAt > 0 ? stats.verifiedAt - started : null,
        uploaded: engine.uploaded(), maxRssKiB: peakRssKiB(), cpuMs: (process.cpuUsage().user + process.cpuUsage().system) / 1000,
      });
      if (!stay) setTimeout(() => { void engine.close().finally(() => process.exit(r.ok ? 0 : 1)); }, 10);
      else setInterval(() => emit({ event: 'uploaded', bytes: engine.uploaded() }), 1000).unref();
    },
  });
}

main().catch((err: unknown) => {
  emit({ event: 'fatal', error: (err as Error).message });
  process.exit(2);
});
