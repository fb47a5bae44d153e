/**
 * Resume and relay between separate processes: a downloader killed with SIGKILL resumes without
 * fetching again what it had verified, and a second downloader fetches from a first one that is
 * still downloading (the original seeder rate-limited, then killed).
 */
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import {
  downloadArgs, killAll, seedArgs, sha256File, swarmFixture,
} from '../helpers/swarm.js';

const fx = swarmFixture();
const { node, setup } = fx;
after(() => fx.cleanup());

describe('swarm resume and relay', () => {
  test('kill -9 mid-download, restart: verified pieces are kept, not fetched again', async () => {
    const p = await setup(32);
    const seed = node(seedArgs(p));
    const port = await seed.port();
    const dest = join(p.dir, 'out.bin');
    const resume = join(p.dir, 'resume.json');
    const args = downloadArgs(p, dest, resume, [port], ['--max-down', String(8 * 1024 * 1024), '--id', 'dl-1']);
    const first = node(args);
    const mid = await first.waitFor((e) => e.event === 'progress' && (e['piecesFetched'] as number) >= p.manifest.pieceCount / 3, 20_000, 'a third');
    await first.kill('SIGKILL');
    const before = mid['piecesFetched'] as number;
    assert.ok(before < p.manifest.pieceCount);
    assert.ok(existsSync(`${dest}.part`));
    assert.ok(!existsSync(dest));

    const second = node(args.filter((a, i) => !(a === '--max-down' || args[i - 1] === '--max-down')));
    const done = await second.waitFor((e) => e.event === 'done', 30_000, 'done');
    assert.equal(done['ok'], true, String(done['error']));
    assert.equal(sha256File(dest), p.sha256);
    assert.ok(!existsSync(`${dest}.part`));
    const fetched = done['piecesFetched'] as number;
    // Every piece verified before the kill (at least `before`) came from disk, not the network.
    assert.ok(fetched <= p.manifest.pieceCount - before, `fetched ${fetched} again after ${before} were verified`);
    assert.ok(fetched > 0);
    // The first progress line of the second run already counts the resumed bytes.
    const firstProgress = await second.waitFor((e) => e.event === 'progress', 1000, 'progress');
    assert.ok((firstProgress['bytesDone'] as number) >= before * p.manifest.pieceLength);
    await killAll([seed]);
  });

  test('a second downloader fetches from a first one still downloading; the original seeder then dies', async () => {
    const p = await setup(24);
    // The seeder is slow (3 MiB/s in all), so most of the first downloader's pieces reach the
    // second one only through the first.
    const seed = node(seedArgs(p, ['--max-up', String(3 * 1024 * 1024)]));
    const sport = await seed.port();
    const destA = join(p.dir, 'a.bin'), destB = join(p.dir, 'b.bin');
    const a = node(downloadArgs(p, destA, join(p.dir, 'ra.json'), [sport], ['--stay']));
    const aport = await a.port();
    await a.waitFor((e) => e.event === 'progress' && (e['bytesDone'] as number) >= p.manifest.length / 4, 20_000, 'A at a quarter');
    const b = node(downloadArgs(p, destB, join(p.dir, 'rb.json'), [sport, aport]));
    // B catches up with A quickly (A is not rate-limited): A serves B while A itself is still
    // downloading from the slow seeder.
    await b.waitFor((e) => e.event === 'progress' && (e['bytesDone'] as number) >= p.manifest.length / 4, 10_000, 'B at a quarter');
    await a.waitFor((e) => e.event === 'progress' && (e['uploaded'] as number) >= 4 * 1024 * 1024
      && (e['bytesDone'] as number) < p.manifest.length, 10_000, 'A serving B mid-download');
    // When A has everything, the seeder goes away; B finishes from A alone.
    const doneA = await a.waitFor((e) => e.event === 'done', 30_000, 'A done');
    assert.equal(doneA['ok'], true, String(doneA['error']));
    await seed.kill();
    const doneB = await b.waitFor((e) => e.event === 'done', 30_000, 'B done');
    assert.equal(doneB['ok'], true, String(doneB['error']));
    assert.equal(sha256File(destA), p.sha256);
    assert.equal(sha256File(destB), p.sha256);
    assert.equal(statSync(destB).size, p.manifest.length);
    await killAll([a, b]);
  });
});
