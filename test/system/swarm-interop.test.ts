/**
 * Interop with a standard client: libtorrent (Debian's python3-libtorrent under /usr/bin/python3)
 * downloads from a Coterie seeder, and a Coterie download fetches from a libtorrent seeder; both
 * byte-exact. libtorrent sends no ticket, so the Coterie seeder runs with open access here.
 */
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { torrentFile } from '../../src/swarm/manifest.js';
import {
  SwarmNode, downloadArgs, killAll, prepareFile, seedArgs, sha256File, tempDir, type NodeEvent,
} from '../helpers/swarm.js';

const PYTHON = '/usr/bin/python3';
const LT_PEER = new URL('../../../test/helpers/lt_peer.py', import.meta.url).pathname;
const haveLibtorrent = spawnSync(PYTHON, ['-c', 'import libtorrent'], { stdio: 'ignore' }).status === 0;

/** A libtorrent peer process with its JSON lines. */
class LtPeer {
  readonly proc: ChildProcess;
  readonly events: NodeEvent[] = [];
  stderr = '';
  exited = false;
  constructor(args: string[]) {
    this.proc = spawn(PYTHON, [LT_PEER, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    createInterface({ input: this.proc.stdout! }).on('line', (l) => { try { this.events.push(JSON.parse(l) as NodeEvent); } catch { /* ignore */ } });
    this.proc.stderr!.on('data', (b: Buffer) => { this.stderr = (this.stderr + b.toString()).slice(-5000); });
    this.proc.on('exit', () => { this.exited = true; });
  }
  async waitFor(pred: (e: NodeEvent) => boolean, timeoutMs: number, what: string): Promise<NodeEvent> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const e = this.events.find(pred);
      if (e) return e;
      const err = this.events.find((x) => x.event === 'error');
      if (err) throw new Error(`libtorrent error: ${String(err['message'])}`);
      if (this.exited) throw new Error(`libtorrent peer exited before ${what}: ${this.stderr}`);
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} from libtorrent; last ${JSON.stringify(this.events.slice(-2))}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  kill(): void {
    if (!this.exited && this.proc.pid) { try { process.kill(this.proc.pid, 'SIGKILL'); } catch { /* gone */ } }
  }
}

const nodes = new Set<SwarmNode>();
const lts = new Set<LtPeer>();
const dirs: Array<() => void> = [];
after(async () => {
  for (const l of lts) l.kill();
  await killAll(nodes);
  for (const c of dirs) c();
});

describe('interop with libtorrent', { skip: haveLibtorrent ? false : 'python3-libtorrent is not installed' }, () => {
  test('a libtorrent leecher downloads from a Coterie seeder, byte-exact', async () => {
    const { dir, cleanup } = tempDir();
    dirs.push(cleanup);
    const p = await prepareFile(dir, 24 * 1024 * 1024, { pieceLength: 256 * 1024 });
    const torrentPath = join(dir, 'x.torrent');
    writeFileSync(torrentPath, torrentFile(p.manifest));
    const seed = new SwarmNode(seedArgs(p));
    nodes.add(seed);
    const port = await seed.port();
    const save = join(dir, 'lt-save');
    mkdirSync(save);
    const lt = new LtPeer(['leech', '--torrent', torrentPath, '--save', save, '--connect', String(port)]);
    lts.add(lt);
    await lt.waitFor((e) => e.event === 'done', 40_000, 'done');
    assert.equal(sha256File(join(save, p.manifest.name)), p.sha256);
    lt.kill();
    await seed.kill();
  });

  test('a Coterie download fetches from a libtorrent seeder, byte-exact', async () => {
    const { dir, cleanup } = tempDir();
    dirs.push(cleanup);
    const p = await prepareFile(dir, 24 * 1024 * 1024, { pieceLength: 256 * 1024 });
    const torrentPath = join(dir, 'x.torrent');
    writeFileSync(torrentPath, torrentFile(p.manifest));
    const lt = new LtPeer(['seed', '--torrent', torrentPath, '--save', dir]);
    lts.add(lt);
    const port = (await lt.waitFor((e) => e.event === 'listening', 20_000, 'listening'))['port'] as number;
    await lt.waitFor((e) => e.event === 'seeding', 20_000, 'seeding');
    const dest = join(dir, 'from-lt.bin');
    const d = new SwarmNode(downloadArgs(p, dest, join(dir, 'resume.json'), [port]));
    nodes.add(d);
    const done = await d.waitFor((e) => e.event === 'done', 40_000, 'done');
    assert.equal(done['ok'], true, String(done['error']));
    assert.equal(done['piecesFetched'], p.manifest.pieceCount);
    assert.equal(sha256File(dest), p.sha256);
    lt.kill();
  });
});
