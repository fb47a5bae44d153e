/**
 * The swarm engine in-process over real loopback sockets: access control through the authorize
 * hook and tickets, unseeding that cuts peers off at once, a finished download seeding on, pause
 * and resume, stalled and hostile peers, peer refresh when starved, connection caps.
 */
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { join } from 'node:path';
import { silentLogger } from '../../src/common/log.js';
import type { DownloadSpec, ResumeStore } from '../../src/swarm/api.js';
import { Bitfield } from '../../src/swarm/bitfield.js';
import { createSwarmEngine, type AuthorizeRequest, type SwarmEngineExt } from '../../src/swarm/engine.js';
import { PeerServer } from '../../src/swarm/peer-server.js';
import { encodeBitfield, encodeHandshake, encodeRequest, UNCHOKE } from '../../src/swarm/wire/codec.js';
import { prepareFile, sha256File, tempDir, type Prepared } from '../helpers/swarm.js';

class MemResume implements ResumeStore {
  recs = new Map<string, { bitfield: Uint8Array; partSize: number; partMtimeMs: number }>();
  load(id: string) { return this.recs.get(id); }
  save(id: string, bitfield: Uint8Array, partSize: number, partMtimeMs: number): void { this.recs.set(id, { bitfield: Uint8Array.from(bitfield), partSize, partMtimeMs }); }
  complete(id: string): void { this.recs.delete(id); }
}

const engines: SwarmEngineExt[] = [];
const cleanups: Array<() => void> = [];
after(async () => {
  for (const e of engines) await e.close();
  for (const c of cleanups) c();
});

async function engine(opts: Partial<Parameters<typeof createSwarmEngine>[0]> = {}): Promise<SwarmEngineExt> {
  const e = createSwarmEngine({ listen: { host: '127.0.0.1', port: 0 }, resume: new MemResume(), logger: silentLogger(), ...opts });
  await e.listen();
  engines.push(e);
  return e;
}

async function file(sizeMiB: number, pieceKiB = 64): Promise<Prepared> {
  const { dir, cleanup } = tempDir();
  cleanups.push(cleanup);
  return prepareFile(dir, sizeMiB * 1024 * 1024, { pieceLength: pieceKiB * 1024 });
}

const addr = (e: SwarmEngineExt): string => `127.0.0.1:${e.address.port}`;

/** Starts a download and resolves with its result. */
function download(e: SwarmEngineExt, p: Prepared, dest: string, peers: string[], extra: Partial<DownloadSpec> = {}): Promise<{ ok: boolean; error?: Error }> {
  return new Promise((resolve) => {
    e.download({
      id: extra.id ?? dest, group: 'g', manifest: p.manifest, sha256: p.sha256, destPath: dest,
      peers: peers.map((a) => ({ addr: a })),
      refreshPeers: async () => ({ peers: peers.map((a) => ({ addr: a })) }),
      ...extra,
      onDone: (r) => resolve(r.ok ? { ok: true } : { ok: false, error: r.error }),
    });
  });
}

async function until(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('swarm engine', () => {
  test('the authorize hook sees ticket and group; a refused peer gets nothing, an allowed one the file', async () => {
    const p = await file(4);
    const asked: AuthorizeRequest[] = [];
    const seeder = await engine({ authorize: (r) => { asked.push(r); return r.ticket === 'good' && r.groups.includes(r.group ?? ''); } });
    seeder.seed({ group: 'g', manifest: p.manifest, path: p.file });
    const bad = await engine();
    const destBad = join(p.dir, 'bad.bin');
    void download(bad, p, destBad, [addr(seeder)], { ticket: 'forged' });
    await until(() => asked.length > 0, 5000, 'the hook is asked');
    assert.equal(asked[0]!.ticket, 'forged');
    assert.equal(asked[0]!.group, 'g');
    assert.deepEqual(asked[0]!.groups, ['g']);
    assert.equal(asked[0]!.infoHashHex, p.manifest.infoHashHex);
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal(bad.status()[0]!.bytesDone, 0);
    assert.equal(bad.status()[0]!.peers, 0);
    await bad.pauseAll();

    const ok = await engine();
    const dest = join(p.dir, 'ok.bin');
    const r = await download(ok, p, dest, [addr(seeder)], { ticket: 'good' });
    assert.equal(r.ok, true, r.error?.message);
    assert.equal(sha256File(dest), p.sha256);
  });

  test('unseed cuts the file\'s peers off at once; seeding again lets the download finish', async () => {
    const p = await file(8);
    const seeder = await engine();
    seeder.seed({ group: 'g', manifest: p.manifest, path: p.file });
    const d = await engine({ maxDownloadRate: 2 * 1024 * 1024 });
    const dest = join(p.dir, 'out.bin');
    const done = download(d, p, dest, [addr(seeder)]);
    await until(() => (d.status()[0]?.bytesDone ?? 0) > 0, 5000, 'progress');
    seeder.unseed('g', p.manifest.infoHashHex);
    await until(() => d.status()[0]!.peers === 0, 1000, 'peer dropped');
    const stalled = d.status()[0]!.bytesDone;
    await new Promise((r) => setTimeout(r, 700));
    assert.ok(d.status()[0]!.bytesDone - stalled <= 2 * p.manifest.pieceLength, 'no more data after unseed');
    seeder.seed({ group: 'g', manifest: p.manifest, path: p.file });
    const r = await done;
    assert.equal(r.ok, true, r.error?.message);
    assert.equal(sha256File(dest), p.sha256);
  });

  test('a finished download seeds on: a third peer fetches from it after the original seeder left', async () => {
    const p = await file(4);
    const seeder = await engine();
    seeder.seed({ group: 'g', manifest: p.manifest, path: p.file });
    const a = await engine();
    const destA = join(p.dir, 'a.bin');
    assert.equal((await download(a, p, destA, [addr(seeder)])).ok, true);
    await seeder.close();
    const b = await engine();
    const destB = join(p.dir, 'b.bin');
    const r = await download(b, p, destB, [addr(seeder), addr(a)]);
    assert.equal(r.ok, true, r.error?.message);
    assert.equal(sha256File(destB), p.sha256);
    assert.ok(a.uploaded() >= p.manifest.length);
  });

  test('pause keeps verified pieces; downloading again resumes without fetching them twice', async () => {
    const p = await file(8);
    const seeder = await engine();
    seeder.seed({ group: 'g', manifest: p.manifest, path: p.file });
    const resume = new MemResume();
    const d = await engine({ resume, maxDownloadRate: 4 * 1024 * 1024 });
    const dest = join(p.dir, 'out.bin');
    void download(d, p, dest, [addr(seeder)], { id: 'x' });
    await until(() => (d.status()[0]?.bytesDone ?? 0) >= p.manifest.length / 3, 10_000, 'a third');
    await d.pauseAll();
    await d.whenIdle();
    assert.equal(d.status()[0]!.state, 'paused');
    const had = d.downloadStats('x')!.piecesFetched;
    assert.ok(resume.recs.has('x'));
    await d.close();
    const d2 = await engine({ resume });
    const r = await download(d2, p, dest, [addr(seeder)], { id: 'x' });
    assert.equal(r.ok, true, r.error?.message);
    assert.equal(sha256File(dest), p.sha256);
    assert.ok(d2.downloadStats('x')!.piecesFetched <= p.manifest.pieceCount - had);
    assert.equal(resume.recs.has('x'), false);
  });

  test('peers come from refreshPeers when the download starts with none', async () => {
    const p = await file(2);
    const seeder = await engine();
    seeder.seed({ group: 'g', manifest: p.manifest, path: p.file });
    const d = await engine();
    let calls = 0;
    const dest = join(p.dir, 'out.bin');
    const r = await download(d, p, dest, [], {
      refreshPeers: async () => { calls++; return { peers: calls >= 2 ? [{ addr: addr(seeder) }] : [] }; },
    });
    assert.equal(r.ok, true, r.error?.message);
    assert.ok(calls >= 2);
  });

  test('a peer that takes requests and never answers: its requests move to others after the stall timeout', async () => {
    const p = await file(8, 64);
    // A mute "seeder": handshake, all pieces, unchoke, then silence.
    const mute = net.createServer((sock) => {
      sock.once('data', () => {
        sock.write(encodeHandshake(p.manifest.infoHash, Buffer.alloc(20, 9), Buffer.alloc(8)));
        sock.write(encodeBitfield(Bitfield.allSet(p.manifest.pieceCount).bytes()));
        sock.write(UNCHOKE);
        sock.on('data', () => { /* swallow requests */ });
      });
      sock.on('error', () => {});
    });
    await new Promise<void>((r) => mute.listen(0, '127.0.0.1', () => r()));
    cleanups.push(() => mute.close());
    // The good seeder is slow enough that the download is still far from endgame (where
    // duplicate requests would rescue the mute peer's blocks anyway) when the stall is noticed.
    const seeder = await engine({ maxUploadRate: 1024 * 1024 });
    seeder.seed({ group: 'g', manifest: p.manifest, path: p.file });
    const d = await engine();
    const dest = join(p.dir, 'out.bin');
    const r = await download(d, p, dest, [`127.0.0.1:${(mute.address() as net.AddressInfo).port}`, addr(seeder)], { id: 'stall' });
    assert.equal(r.ok, true, r.error?.message);
    assert.equal(sha256File(dest), p.sha256);
    assert.ok(d.downloadStats('stall')!.stalls >= 1, 'the stall was detected');
  });

  test('hostile input to the peer server: disconnected, and the server keeps serving', async () => {
    const p = await file(1);
    const seeder = await engine();
    seeder.seed({ group: 'g', manifest: p.manifest, path: p.file });
    const closes = async (bytes: Buffer[]): Promise<void> => {
      const sock = net.connect(seeder.address.port, '127.0.0.1');
      sock.on('error', () => {});
      await new Promise<void>((r) => sock.once('connect', () => r()));
      for (const b of bytes) sock.write(b);
      await new Promise<void>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error('not disconnected')), 3000);
        sock.on('close', () => { clearTimeout(t); resolve(); });
        sock.resume();
      });
    };
    await closes([Buffer.from('GET / HTTP/1.0\r\n\r\n')]);
    await closes([encodeHandshake(Buffer.alloc(20, 1), Buffer.alloc(20, 2))]); // unknown info-hash
    const hs = encodeHandshake(p.manifest.infoHash, Buffer.alloc(20, 2), Buffer.alloc(8));
    await closes([hs, encodeRequest(p.manifest.pieceCount + 5, 0, 16384)]); // out of range
    const huge = Buffer.alloc(8); huge.writeUInt32BE(0x7fffffff, 0); huge[4] = 7;
    await closes([hs, huge]); // frame over the cap
    const d = await engine();
    const dest = join(p.dir, 'out.bin');
    assert.equal((await download(d, p, dest, [addr(seeder)])).ok, true);
  });

  test('our own address among the peers (a wildcard bind): recognised by peer id, dialled once', async () => {
    const p = await file(2);
    const seeder = await engine();
    seeder.seed({ group: 'g', manifest: p.manifest, path: p.file });
    const d = await engine({ listen: { host: '0.0.0.0', port: 0 } });
    const dest = join(p.dir, 'out.bin');
    const r = await download(d, p, dest, [`127.0.0.1:${d.address.port}`, addr(seeder)]);
    assert.equal(r.ok, true, r.error?.message);
    assert.equal(sha256File(dest), p.sha256);
  });

  test('the peer server caps connections per address', async () => {
    const server = new PeerServer({ listen: { host: '127.0.0.1', port: 0 }, lookup: () => undefined, logger: silentLogger(), maxPerAddress: 2 });
    await server.listen();
    const socks: net.Socket[] = [];
    const closed: boolean[] = [];
    for (let i = 0; i < 3; i++) {
      const s = net.connect(server.address.port, '127.0.0.1');
      s.on('error', () => {});
      const k = i;
      closed[k] = false;
      s.on('close', () => { closed[k] = true; });
      await new Promise<void>((r) => s.once('connect', () => r()));
      socks.push(s);
    }
    await until(() => closed[2] === true, 2000, 'third connection refused');
    assert.equal(closed[0], false);
    assert.equal(closed[1], false);
    assert.equal(server.connections, 2);
    for (const s of socks) s.destroy();
    await until(() => server.connections === 0, 2000, 'connections released');
    await server.close();
  });
});
