/**
 * Swarm transfers between separate processes on 127.0.0.1, no tracker (peers passed in):
 * several seeders to one downloader, a seeder dying mid-transfer, and a seeder whose file went
 * bad on disk after it was hashed.
 */
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, openSync, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import {
  downloadArgs, killAll, seedArgs, sha256File, swarmFixture,
} from '../helpers/swarm.js';

const fx = swarmFixture();
const { node, setup } = fx;
after(() => fx.cleanup());

describe('swarm between processes', () => {
  test('three seeders to one downloader, byte-exact, every seeder serving', async () => {
    const p = await setup(48);
    const seeds = [node(seedArgs(p)), node(seedArgs(p)), node(seedArgs(p))];
    const ports = await Promise.all(seeds.map((s) => s.port()));
    const dest = join(p.dir, 'out.bin');
    const d = node(downloadArgs(p, dest, join(p.dir, 'resume.json'), ports));
    const done = await d.waitFor((e) => e.event === 'done', 30_000, 'done');
    assert.equal(done['ok'], true, String(done['error']));
    assert.equal(done['piecesFetched'], p.manifest.pieceCount);
    assert.equal(sha256File(dest), p.sha256);
    assert.deepEqual(done['banned'], []);
    // Each seeder reports what it served; all three took part.
    await Promise.all(seeds.map((s) => s.waitFor((e) => e.event === 'uploaded' && (e['bytes'] as number) > 0, 5000, 'upload report')));
    await killAll(seeds);
  });

  test('a seeder killed mid-download: the download still completes from the others', async () => {
    const p = await setup(32);
    const seeds = [node(seedArgs(p)), node(seedArgs(p)), node(seedArgs(p))];
    const ports = await Promise.all(seeds.map((s) => s.port()));
    const dest = join(p.dir, 'out.bin');
    // Throttled so that the kill lands mid-transfer.
    const d = node(downloadArgs(p, dest, join(p.dir, 'resume.json'), ports, ['--max-down', String(12 * 1024 * 1024)]));
    await d.waitFor((e) => e.event === 'progress' && (e['bytesDone'] as number) > p.manifest.length / 4, 20_000, 'a quarter');
    await seeds[0]!.kill();
    const atKill = d.events.length;
    const done = await d.waitFor((e) => e.event === 'done', 30_000, 'done');
    assert.equal(done['ok'], true, String(done['error']));
    assert.equal(sha256File(dest), p.sha256);
    const after = d.events.slice(atKill).filter((e) => e.event === 'progress');
    assert.ok(after.some((e) => (e['bytesDone'] as number) < p.manifest.length / 2), 'the kill happened well before the end');
    await killAll(seeds);
  });

  test('a seeder whose file went bad after hashing: byte-exact anyway, that seeder banned', async () => {
    const p = await setup(32);
    // The bad seeder serves a copy with bytes flipped in every piece, so whatever it sends fails
    // (with only some pieces bad it could, by chance, never be asked for one of them).
    const badFile = join(p.dir, 'bad-copy.bin');
    copyFileSync(p.file, badFile);
    const fd = openSync(badFile, 'r+');
    for (let piece = 0; piece < p.manifest.pieceCount; piece++) {
      writeSync(fd, Buffer.from('CORRUPT!'), 0, 8, piece * p.manifest.pieceLength + 1000 + (piece % 16) * 16384);
    }
    closeSync(fd);
    // The good seeders are throttled so the transfer cannot finish before the unthrottled bad one
    // has been asked for (and has sent) blocks: on a loaded machine it once connected too late to
    // be blamed for anything.
    const slow = ['--max-up', String(6 * 1024 * 1024)];
    const good = [node(seedArgs(p, slow)), node(seedArgs(p, slow))];
    const bad = node(seedArgs({ ...p, file: badFile }));
    const [g1, g2, b] = await Promise.all([good[0]!.port(), good[1]!.port(), bad.port()]);
    const dest = join(p.dir, 'out.bin');
    const d = node(downloadArgs(p, dest, join(p.dir, 'resume.json'), [b!, g1!, g2!]));
    const done = await d.waitFor((e) => e.event === 'done', 30_000, 'done');
    assert.equal(done['ok'], true, String(done['error']));
    assert.equal(sha256File(dest), p.sha256);
    assert.deepEqual(done['banned'], [`127.0.0.1:${b}`]);
    await killAll([...good, bad]);
  });
});
