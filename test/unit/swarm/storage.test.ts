import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readSync, rmSync, statSync, truncateSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoterieError, IntegrityError } from '../../../src/common/errors.js';
import type { Manifest, ResumeStore } from '../../../src/swarm/api.js';
import { buildManifest } from '../../../src/swarm/manifest.js';
import { BufferPool } from '../../../src/swarm/buffer-pool.js';
import { FdCache, SeedSource } from '../../../src/swarm/seed-files.js';
import { PartFile } from '../../../src/swarm/storage.js';

const PL = 32 * 1024;

class MemResume implements ResumeStore {
  recs = new Map<string, { bitfield: Uint8Array; partSize: number; partMtimeMs: number }>();
  saves = 0;
  completed: string[] = [];
  load(id: string) { return this.recs.get(id); }
  save(id: string, bitfield: Uint8Array, partSize: number, partMtimeMs: number): void {
    this.saves++;
    this.recs.set(id, { bitfield: Uint8Array.from(bitfield), partSize, partMtimeMs });
  }
  complete(id: string): void { this.completed.push(id); this.recs.delete(id); }
}

let dir: string;
let data: Buffer;
let manifest: Manifest;
let sha256: string;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'coterie-storage-'));
  data = randomBytes(10 * PL + 1234);
  writeFileSync(join(dir, 'src.bin'), data);
  ({ manifest, sha256 } = await buildManifest(join(dir, 'src.bin'), { pieceLength: PL }));
});
after(() => rmSync(dir, { recursive: true, force: true }));

function piece(i: number): Buffer {
  return data.subarray(i * PL, Math.min(data.length, (i + 1) * PL));
}

/** Writes piece `i` through a pooled-size buffer, as the assembler does. */
function writePiece(pf: PartFile, i: number): void {
  const buf = Buffer.alloc(PL);
  const p = piece(i);
  p.copy(buf);
  pf.writePiece(i, buf, p.length);
}

describe('part file', () => {
  test('fresh download: sized at once, pieces written in place, served back, resume saved in batches', async () => {
    const dest = join(dir, 'fresh.bin');
    const store = new MemResume();
    const pf = await PartFile.open({ id: 'd1', manifest, destPath: dest, resume: store });
    assert.equal(pf.mode, 'fresh');
    assert.equal(statSync(`${dest}.part`).size, manifest.length);
    for (const i of [3, 0, 10, 7]) writePiece(pf, i);
    assert.equal(store.saves, 0, 'saves are batched, not per piece');
    await new Promise((r) => setTimeout(r, 350));
    assert.equal(store.saves, 1);
    assert.deepEqual([...pf.have], [0, 3, 7, 10]);
    assert.ok(pf.has(10) && !pf.has(1) && !pf.has(-1) && !pf.has(11));
    // Serving: a readv across a piece boundary returns the file's bytes.
    const v1 = Buffer.alloc(1000), v2 = Buffer.alloc(PL);
    pf.readBlocks([v1, v2], 3 * PL + PL - 1000, 1000 + PL);
    assert.ok(Buffer.concat([v1, v2]).equals(Buffer.concat([piece(3).subarray(PL - 1000), Buffer.alloc(PL)])));
    pf.close();
    const rec = store.recs.get('d1')!;
    assert.equal(rec.partSize, manifest.length);
    assert.equal(rec.partMtimeMs, statSync(`${dest}.part`).mtimeMs);
  });

  test('resume: a matching record is trusted; a changed file is re-hashed and keeps only good pieces', async () => {
    const dest = join(dir, 'resume.bin');
    const store = new MemResume();
    let pf = await PartFile.open({ id: 'r', manifest, destPath: dest, resume: store });
    for (const i of [1, 2, 5, 10]) writePiece(pf, i);
    pf.close();
    pf = await PartFile.open({ id: 'r', manifest, destPath: dest, resume: store });
    assert.equal(pf.mode, 'trusted');
    assert.deepEqual([...pf.have], [1, 2, 5, 10]);
    pf.close();
    // Corrupt piece 2 on disk: size and mtime change, so nothing recorded is trusted.
    const bad = Buffer.from(readFileSync(`${dest}.part`));
    bad[2 * PL + 17] ^= 0xff;
    writeFileSync(`${dest}.part`, bad);
    utimesSync(`${dest}.part`, new Date(), new Date(Date.now() + 5000));
    pf = await PartFile.open({ id: 'r', manifest, destPath: dest, resume: store });
    assert.equal(pf.mode, 'rehashed');
    assert.deepEqual([...pf.have], [1, 5, 10]);
    // The re-hash result is saved at once, with the file's current size and mtime.
    assert.equal(store.recs.get('r')!.partMtimeMs, statSync(`${dest}.part`).mtimeMs);
    pf.close();
  });

  test('resume without a record (crash before the first save) re-hashes what is on disk', async () => {
    const dest = join(dir, 'norecord.bin');
    const part = Buffer.alloc(manifest.length);
    piece(4).copy(part, 4 * PL);
    piece(10).copy(part, 10 * PL);
    writeFileSync(`${dest}.part`, part);
    const pf = await PartFile.open({ id: 'n', manifest, destPath: dest, resume: new MemResume() });
    assert.equal(pf.mode, 'rehashed');
    assert.deepEqual([...pf.have], [4, 10]);
    pf.close();
  });

  test('a short .part (truncated) only counts whole pieces', async () => {
    const dest = join(dir, 'short.bin');
    writeFileSync(`${dest}.part`, data.subarray(0, 3 * PL + 100));
    const pf = await PartFile.open({ id: 's', manifest, destPath: dest, resume: new MemResume() });
    assert.deepEqual([...pf.have], [0, 1, 2]);
    assert.equal(statSync(`${dest}.part`).size, manifest.length);
    pf.close();
  });

  test('finish: SHA-256 checked, renamed, record dropped', async () => {
    const dest = join(dir, 'done.bin');
    const store = new MemResume();
    const pf = await PartFile.open({ id: 'f', manifest, destPath: dest, resume: store });
    for (let i = 0; i < manifest.pieceCount; i++) writePiece(pf, i);
    await pf.finish(sha256);
    assert.ok(readFileSync(dest).equals(data));
    assert.ok(!existsSync(`${dest}.part`));
    assert.deepEqual(store.completed, ['f']);
    assert.equal(pf.isOpen, false);
  });

  test('prefix hash in a worker: pieces in any order, SHA-256 right, a wrong one still refused', async () => {
    for (const [name, want, ok] of [['prefix-ok.bin', sha256, true], ['prefix-bad.bin', 'f'.repeat(64), false]] as const) {
      const dest = join(dir, name);
      const store = new MemResume();
      const pf = await PartFile.open({ id: name, manifest, destPath: dest, resume: store, prefixHash: true, prefixStartBytes: 1 });
      // In order first (the worker follows the prefix), then a gap filled last.
      for (const i of [0, 1, 2, 5, 6, 4, 3, 7, 8, 10, 9]) writePiece(pf, i);
      if (ok) {
        await pf.finish(want);
        assert.deepEqual(readFileSync(dest), data);
      } else {
        await assert.rejects(pf.finish(want), (e: Error) => e instanceof IntegrityError);
        assert.equal(existsSync(dest), false);
        pf.close();
      }
    }
  });

  test('prefix hash: the worker starts only once the verified prefix holds prefixStartBytes', async () => {
    const dest = join(dir, 'prefix-late.bin');
    const pf = await PartFile.open({
      id: 'pl', manifest, destPath: dest, resume: new MemResume(), prefixHash: true, prefixStartBytes: 3 * manifest.pieceLength,
    });
    assert.equal(pf.prefixHashing, false);
    for (const i of [7, 8, 4]) writePiece(pf, i);
    assert.equal(pf.prefixHashing, false, 'no prefix yet');
    for (const i of [0, 1]) writePiece(pf, i);
    assert.equal(pf.prefixHashing, false, 'a prefix of 2 pieces is under the threshold');
    writePiece(pf, 2);
    assert.equal(pf.prefixHashing, true, 'prefix of 3 pieces: worker started');
    for (const i of [3, 5, 6, 9, 10]) writePiece(pf, i);
    await pf.finish(sha256);
    assert.deepEqual(readFileSync(dest), data);
  });

  test('prefix hash never started (no prefix formed before the end): hashed at finish', async () => {
    const dest = join(dir, 'prefix-never.bin');
    const pf = await PartFile.open({ id: 'pn', manifest, destPath: dest, resume: new MemResume(), prefixHash: true });
    for (let i = manifest.pieceCount - 1; i >= 1; i--) writePiece(pf, i);
    assert.equal(pf.prefixHashing, false);
    writePiece(pf, 0);
    assert.equal(pf.prefixHashing, false, 'a prefix that is the whole file starts no worker');
    await pf.finish(sha256);
    assert.deepEqual(readFileSync(dest), data);
  });

  test('prefix hash: a resumed .part is hashed from what it already holds; close stops the worker', async () => {
    const dest = join(dir, 'prefix-resume.bin');
    const store = new MemResume();
    const pf = await PartFile.open({ id: 'pr', manifest, destPath: dest, resume: store, prefixHash: true, prefixStartBytes: 1 });
    for (const i of [0, 1, 2, 3]) writePiece(pf, i);
    pf.close();
    const pf2 = await PartFile.open({ id: 'pr', manifest, destPath: dest, resume: store, prefixHash: true, prefixStartBytes: 1 });
    assert.equal(pf2.prefixHashing, true, 'the resumed prefix (4 pieces) starts the worker at open');
    assert.equal(pf2.have.count, 4);
    for (let i = 4; i <= 10; i++) writePiece(pf2, i);
    await pf2.finish(sha256);
    assert.deepEqual(readFileSync(dest), data);
  });

  test('finish with a wrong SHA-256: IntegrityError, no complete file', async () => {
    const dest = join(dir, 'badsha.bin');
    const pf = await PartFile.open({ id: 'b', manifest, destPath: dest, resume: new MemResume() });
    for (let i = 0; i < manifest.pieceCount; i++) writePiece(pf, i);
    await assert.rejects(pf.finish('0'.repeat(64)), (e: Error) => e instanceof IntegrityError && (e as CoterieError).code === 'INTEGRITY');
    assert.ok(!existsSync(dest));
    pf.close();
  });

  test('disk full: the write fails with a clear IO error', async () => {
    const dest = join(dir, 'full.bin');
    const enospc = Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
    const pf = await PartFile.open({
      id: 'x', manifest, destPath: dest, resume: new MemResume(),
      write: () => { throw enospc; },
    });
    assert.throws(() => writePiece(pf, 0), (e: CoterieError) => e.code === 'IO' && /disk full/.test(e.message));
    assert.ok(!pf.has(0));
    pf.close();
  });

  test('unwritable destination (no such directory): IO error at open', async () => {
    const dest = join(dir, 'missing-dir', 'x.bin');
    await assert.rejects(PartFile.open({ id: 'm', manifest, destPath: dest, resume: new MemResume() }),
      (e: CoterieError) => e.code === 'IO' && /no such directory/.test(e.message));
    // A destination whose parent is a regular file.
    const dest2 = join(dir, 'src.bin', 'x.bin');
    await assert.rejects(PartFile.open({ id: 'm', manifest, destPath: dest2, resume: new MemResume() }), (e: CoterieError) => e.code === 'IO');
  });

  test('asynchronous writes: recorded on completion; a close waits for writes in flight', async () => {
    const dest = join(dir, 'async.bin');
    const store = new MemResume();
    const pf = await PartFile.open({ id: 'a', manifest, destPath: dest, resume: store });
    const results: Array<string | null> = [];
    const bufs = [0, 1, 2, 3].map((i) => { const b = Buffer.alloc(PL); piece(i).copy(b); return b; });
    for (const i of [0, 1, 2, 3]) pf.writePieceAsync(i, bufs[i]!, piece(i).length, (err) => results.push(err ? err.code : null));
    assert.equal(pf.writesInFlight, 4);
    assert.equal(pf.has(0), false, 'not served before it is written');
    pf.close(); // must not close the descriptor under the writes
    assert.equal(pf.isOpen, true);
    await pf.whenWritten();
    assert.deepEqual(results, [null, null, null, null]);
    assert.equal(pf.isOpen, false);
    assert.ok(readFileSync(`${dest}.part`).subarray(0, 4 * PL).equals(data.subarray(0, 4 * PL)));
    // Writes that completed after the close was asked for are on disk but not recorded: a
    // resume re-hashes and finds them.
    const again = await PartFile.open({ id: 'a', manifest, destPath: dest, resume: store });
    assert.deepEqual([...again.have], [0, 1, 2, 3]);
    again.close();
  });

  test('asynchronous write failure is reported as an IO error', async () => {
    const dest = join(dir, 'async-full.bin');
    const enospc = Object.assign(new Error('ENOSPC'), { code: 'ENOSPC' });
    const pf = await PartFile.open({
      id: 'af', manifest, destPath: dest, resume: new MemResume(),
      writeAsync: (_fd, _b, _o, _l, _p, cb) => setImmediate(() => cb(enospc, 0)),
    });
    const err = await new Promise<CoterieError | null>((r) => pf.writePieceAsync(0, Buffer.alloc(PL), PL, r));
    assert.equal(err?.code, 'IO');
    assert.match(err!.message, /disk full/);
    assert.equal(pf.has(0), false);
    pf.close();
  });

  test('an empty file completes with zero pieces', async () => {
    writeFileSync(join(dir, 'empty-src'), Buffer.alloc(0));
    const m = await buildManifest(join(dir, 'empty-src'));
    const dest = join(dir, 'empty.bin');
    const pf = await PartFile.open({ id: 'e', manifest: m.manifest, destPath: dest, resume: new MemResume() });
    assert.equal(pf.have.full, true);
    await pf.finish(m.sha256);
    assert.equal(statSync(dest).size, 0);
  });
});

describe('seed source and caches', () => {
  test('positional reads of a seeded file; a file that shrank is an IO error', () => {
    const path = join(dir, 'seed.bin');
    writeFileSync(path, data);
    const cache = new FdCache(4);
    const src = new SeedSource(path, manifest, cache);
    const a = Buffer.alloc(100), b = Buffer.alloc(5000);
    src.readBlocks([a, b], 7 * PL + 3, 5100);
    assert.ok(Buffer.concat([a, b]).equals(data.subarray(7 * PL + 3, 7 * PL + 5103)));
    assert.ok(src.has(0) && src.has(manifest.pieceCount - 1) && !src.has(manifest.pieceCount));
    truncateSync(path, 5 * PL);
    // The cached descriptor reads short now.
    assert.throws(() => src.readBlocks([Buffer.alloc(PL)], 8 * PL, PL), (e: CoterieError) => e.code === 'IO');
    // A fresh open notices the size change at once.
    cache.closeAll();
    assert.throws(() => src.readBlocks([Buffer.alloc(10)], 0, 10), (e: CoterieError) => e.code === 'IO' && /changed/.test(e.message));
  });

  test('the descriptor cache stays bounded and still serves every file', () => {
    const cache = new FdCache(2);
    const paths = [0, 1, 2, 3].map((i) => {
      const p = join(dir, `f${i}.bin`);
      writeFileSync(p, Buffer.from([i, i, i]));
      return p;
    });
    for (let round = 0; round < 3; round++) {
      for (const [i, p] of paths.entries()) {
        const b = Buffer.alloc(1);
        assert.equal(readSync(cache.get(p, 3), b, 0, 1, 0), 1);
        assert.equal(b[0], i);
      }
    }
    cache.closeAll();
  });

  test('buffer pool reuses what it is given', () => {
    const pool = new BufferPool(1024, 2);
    const a = pool.take(), b = pool.take();
    pool.give(a);
    assert.equal(pool.take(), a);
    pool.give(b);
    assert.equal(pool.out, 1);
  });
});
