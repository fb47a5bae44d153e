import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoterieError } from '../../../src/common/errors.js';
import { decode, dictValueBytes, encode, type BDict, type BEncodable } from '../../../src/protocol/bencode.js';
import {
  buildManifest, choosePieceLength, parseManifest, pieceHash, pieceSize, torrentFile,
  ManifestError, MAX_PIECES,
} from '../../../src/swarm/manifest.js';

const KiB = 1024, MiB = 1024 * 1024;
let dir: string;
before(() => { dir = mkdtempSync(join(tmpdir(), 'coterie-manifest-')); });
after(() => { rmSync(dir, { recursive: true, force: true }); });

function makeFile(name: string, size: number): { path: string; data: Buffer } {
  const data = randomBytes(size);
  const path = join(dir, name);
  writeFileSync(path, data);
  return { path, data };
}

/** Reference hashes computed the obvious way, independently of the code under test. */
function reference(data: Buffer, pieceLength: number): { pieces: Buffer; sha256: string } {
  const parts: Buffer[] = [];
  for (let off = 0; off < data.length; off += pieceLength) parts.push(createHash('sha1').update(data.subarray(off, off + pieceLength)).digest());
  return { pieces: Buffer.concat(parts), sha256: createHash('sha256').update(data).digest('hex') };
}

function badCode(code: string) {
  return (e: unknown): boolean => e instanceof CoterieError && e.code === code;
}

describe('byte-for-byte against mktorrent', () => {
  // mktorrent -p puts exactly length, name, piece length, pieces, private=1 in info.
  const cases: Array<[string, number, number]> = [
    ['odd-size.bin', 1_000_000, 18],          // not a multiple of the piece length
    ['one-piece.bin', 1000, 18],              // a single short piece
    ['exact.bin', 3 * 256 * KiB, 18],         // an exact multiple
    ['exact-one.bin', 256 * KiB, 18],         // exactly one full piece
    ['small-pieces.bin', 300 * KiB + 7, 15],  // 32 KiB pieces (mktorrent's minimum)
    ['big-piece.bin', 3 * MiB + 5, 20],       // 1 MiB pieces
    ['empty.bin', 0, 18],                     // zero length: zero pieces, "pieces" is empty
    ['name with spaces ü.bin', 70_000, 16],
  ];
  for (const [name, size, log2] of cases) {
    test(`${name}: ${size} bytes, 2^${log2} pieces`, async () => {
      const { path, data } = makeFile(name, size);
      const out = join(dir, `${name}.torrent`);
      rmSync(out, { force: true });
      execFileSync('mktorrent', ['-p', '-t', '1', '-l', String(log2), '-o', out, path], { stdio: 'ignore' });
      const theirs = dictValueBytes(readFileSync(out), 'info');
      assert.ok(theirs);
      const { manifest, sha256 } = await buildManifest(path, { pieceLength: 2 ** log2 });
      assert.deepEqual(manifest.infoBytes, theirs);
      assert.equal(manifest.infoHashHex, createHash('sha1').update(theirs).digest('hex'));
      const ref = reference(data, 2 ** log2);
      assert.deepEqual(manifest.pieces, ref.pieces);
      assert.equal(sha256, ref.sha256);
      assert.equal(manifest.name, name);
      assert.equal(manifest.length, size);
      assert.equal(manifest.pieceCount, Math.ceil(size / 2 ** log2));
      // Their file parses to the same manifest.
      assert.deepEqual(parseManifest(theirs), manifest);
    });
  }
});

describe('buildManifest', () => {
  test('two-thread pipeline equals the reference, across slot reuse and short last chunks', async () => {
    // 4 MiB chunks in a ring of 4: 30 MiB + 123 bytes is 8 chunks, the last one short.
    const { path, data } = makeFile('pipeline.bin', 30 * MiB + 123);
    for (const pl of [32 * KiB, 256 * KiB, 8 * MiB]) {
      const ref = reference(data, pl);
      for (const parallel of [true, false]) {
        const { manifest, sha256 } = await buildManifest(path, { pieceLength: pl, parallel });
        assert.deepEqual(manifest.pieces, ref.pieces, `pieceLength ${pl} parallel ${parallel}`);
        assert.equal(sha256, ref.sha256);
      }
    }
  });

  test('parallel pipeline handles tiny and empty files', async () => {
    for (const size of [0, 1, 256 * KiB, 4 * MiB]) {
      const { path, data } = makeFile(`par-${size}.bin`, size);
      const { manifest, sha256 } = await buildManifest(path, { pieceLength: 256 * KiB, parallel: true });
      const ref = reference(data, 256 * KiB);
      assert.deepEqual(manifest.pieces, ref.pieces);
      assert.equal(sha256, ref.sha256);
    }
  });

  test('a file that shrinks while hashed fails with IO, and the next build still works', async () => {
    for (const parallel of [true, false]) {
      const { path, data } = makeFile(`shrinks-${parallel}.bin`, 20 * MiB);
      let truncated = false;
      await assert.rejects(buildManifest(path, { pieceLength: 256 * KiB, parallel }, () => {
        if (!truncated) { truncated = true; truncateSync(path, 5 * MiB); }
      }), badCode('IO'));
      writeFileSync(path, data);
      const { sha256 } = await buildManifest(path, { pieceLength: 256 * KiB, parallel });
      assert.equal(sha256, reference(data, 256 * KiB).sha256);
    }
  });

  test('concurrent parallel builds share the worker and both come out right', async () => {
    const a = makeFile('conc-a.bin', 12 * MiB + 5);
    const b = makeFile('conc-b.bin', 9 * MiB);
    const [ra, rb] = await Promise.all([
      buildManifest(a.path, { pieceLength: 64 * KiB, parallel: true }),
      buildManifest(b.path, { pieceLength: 64 * KiB, parallel: true }),
    ]);
    assert.deepEqual(ra.manifest.pieces, reference(a.data, 64 * KiB).pieces);
    assert.equal(rb.sha256, reference(b.data, 64 * KiB).sha256);
  });

  test('reports monotonic progress ending at the total', async () => {
    const { path } = makeFile('progress.bin', 9 * MiB + 1);
    const seen: Array<[number, number]> = [];
    await buildManifest(path, { pieceLength: 256 * KiB }, (d, t) => seen.push([d, t]));
    assert.ok(seen.length >= 3);
    for (let i = 1; i < seen.length; i++) assert.ok(seen[i]![0] > seen[i - 1]![0]);
    assert.deepEqual(seen.at(-1), [9 * MiB + 1, 9 * MiB + 1]);
  });

  test('name defaults to the basename and can be overridden, but must be valid', async () => {
    const { path } = makeFile('named.bin', 10);
    assert.equal((await buildManifest(path)).manifest.name, 'named.bin');
    assert.equal((await buildManifest(path, { name: 'other name' })).manifest.name, 'other name');
    await assert.rejects(buildManifest(path, { name: 'a/b' }), badCode('INVALID_NAME'));
    await assert.rejects(buildManifest(path, { name: '' }), badCode('INVALID_NAME'));
    await assert.rejects(buildManifest(path, { name: 'x\u0007' }), badCode('INVALID_NAME'));
  });

  test('refuses bad piece lengths, missing files and directories', async () => {
    const { path } = makeFile('refuse.bin', 10);
    for (const pl of [0, 1000, 8 * KiB, 32 * MiB, 3 * 256 * KiB]) {
      await assert.rejects(buildManifest(path, { pieceLength: pl }), badCode('BAD_MANIFEST'));
    }
    await assert.rejects(buildManifest(join(dir, 'no-such-file')), badCode('IO'));
    const sub = join(dir, 'a-directory');
    mkdirSync(sub, { recursive: true });
    await assert.rejects(buildManifest(sub), badCode('IO'));
  });

  test('choosePieceLength aims for 1,000..2,000 pieces within 256 KiB..4 MiB', () => {
    assert.equal(choosePieceLength(0), 256 * KiB);
    assert.equal(choosePieceLength(1), 256 * KiB);
    assert.equal(choosePieceLength(500 * MiB), 256 * KiB);                 // exactly 2,000 pieces
    assert.equal(choosePieceLength(500 * MiB + 1), 512 * KiB);             // 1,001 pieces
    assert.equal(choosePieceLength(8000 * MiB), 4 * MiB);                 // 2,000 pieces
    assert.equal(choosePieceLength(100 * 1024 * MiB), 4 * MiB);           // clamped: 25,600 pieces
    assert.equal(choosePieceLength(5 * 1024 * 1024 * MiB), 8 * MiB);      // 5 TiB: over MAX_PIECES at 4 MiB
    for (let len = 500 * MiB + 1; len <= 8000 * MiB; len = Math.floor(len * 1.37)) {
      const n = Math.ceil(len / choosePieceLength(len));
      assert.ok(n > 1000 && n <= 2000, `${len}: ${n} pieces`);
    }
  });
});

describe('parseManifest', () => {
  const good = (): Record<string, BEncodable> => ({
    length: 40 * KiB, name: 'file.txt', 'piece length': 16 * KiB, pieces: Buffer.alloc(60, 7), private: 1,
  });
  const parse = (o: Record<string, BEncodable | undefined>) => parseManifest(encode(o));

  test('accepts a good dict and computes the info-hash over the exact bytes', () => {
    const bytes = encode(good());
    const m = parseManifest(bytes);
    assert.deepEqual(m.infoHash, createHash('sha1').update(bytes).digest());
    assert.equal(m.infoHashHex, m.infoHash.toString('hex'));
    assert.equal(m.pieceCount, 3);
    assert.equal(m.name, 'file.txt');
    assert.deepEqual(m.infoBytes, bytes);
  });

  test('keeps unknown keys (they are part of the hash)', () => {
    const a = parse({ ...good(), source: 'x', 'name.utf-8': 'file.txt' });
    const b = parse(good());
    assert.notDeepEqual(a.infoHash, b.infoHash);
  });

  test('owns its bytes: the caller may reuse the buffer', () => {
    const bytes = encode(good());
    const m = parseManifest(bytes);
    bytes.fill(0);
    assert.equal(m.pieces[0], 7);
    assert.equal(m.infoBytes[0], 'd'.charCodeAt(0));
  });

  test('a zero-length file has no pieces', () => {
    const m = parse({ ...good(), length: 0, pieces: Buffer.alloc(0) });
    assert.equal(m.pieceCount, 0);
  });

  const bad: Array<[string, Record<string, BEncodable | undefined>]> = [
    ['length missing', { ...good(), length: undefined }],
    ['length negative', { ...good(), length: -1 }],
    ['length a string', { ...good(), length: '40960' }],
    ['name missing', { ...good(), name: undefined }],
    ['name an integer', { ...good(), name: 5 }],
    ['name empty', { ...good(), name: '' }],
    ['name with a slash', { ...good(), name: '../etc/passwd' }],
    ['name with a backslash', { ...good(), name: 'a\\b' }],
    ['name ..', { ...good(), name: '..' }],
    ['name with a control char', { ...good(), name: 'a\nb' }],
    ['name too long', { ...good(), name: 'x'.repeat(256) }],
    ['name not UTF-8', { ...good(), name: Buffer.from([0x61, 0xff, 0x62]) }],
    ['piece length missing', { ...good(), 'piece length': undefined }],
    ['piece length not a power of two', { ...good(), 'piece length': 24 * KiB }],
    ['piece length too small', { ...good(), 'piece length': 8 * KiB, pieces: Buffer.alloc(100) }],
    ['piece length too large', { ...good(), 'piece length': 32 * MiB }],
    ['piece length zero', { ...good(), 'piece length': 0 }],
    ['pieces missing', { ...good(), pieces: undefined }],
    ['pieces a list', { ...good(), pieces: [Buffer.alloc(20)] }],
    ['pieces one hash short', { ...good(), pieces: Buffer.alloc(40) }],
    ['pieces one hash long', { ...good(), pieces: Buffer.alloc(80) }],
    ['pieces not a multiple of 20', { ...good(), pieces: Buffer.alloc(61) }],
    ['too many pieces', { ...good(), length: (MAX_PIECES + 1) * 16 * KiB, pieces: Buffer.alloc(20) }],
    ['multi-file', { ...good(), files: [{ length: 1, path: ['a'] }] }],
    ['not private', { ...good(), private: undefined }],
    ['private 0', { ...good(), private: 0 }],
    ['private a string', { ...good(), private: '1' }],
  ];
  for (const [what, dict] of bad) {
    test(`refuses: ${what}`, () => {
      assert.throws(() => parse(dict), (e: unknown) => e instanceof ManifestError && e.code === 'BAD_MANIFEST');
    });
  }

  test('refuses non-dicts, non-canonical and oversized encodings', () => {
    const refuse = (b: Buffer) => assert.throws(() => parseManifest(b), badCode('BAD_MANIFEST'));
    refuse(Buffer.from('le'));
    refuse(Buffer.from('i1e'));
    refuse(Buffer.alloc(0));
    const bytes = encode(good()).toString('latin1');
    // Keys out of order: the dict means the same but its hash would not be canonical.
    refuse(Buffer.from(bytes.replace('6:lengthi40960e', '').replace(/e$/, '6:lengthi40960ee'), 'latin1'));
    refuse(Buffer.from(bytes.replace('i40960e', 'i040960e'), 'latin1'));
    refuse(Buffer.from(bytes + 'x', 'latin1'));
    refuse(Buffer.alloc(25 * MiB, 0x30));
  });
});

describe('helpers', () => {
  const m = parseManifest(encode({ length: 40 * KiB + 1, name: 'f', 'piece length': 16 * KiB, pieces: Buffer.concat([Buffer.alloc(20, 1), Buffer.alloc(20, 2), Buffer.alloc(20, 3)]), private: 1 }));

  test('pieceSize and pieceHash', () => {
    assert.equal(pieceSize(m, 0), 16 * KiB);
    assert.equal(pieceSize(m, 1), 16 * KiB);
    assert.equal(pieceSize(m, 2), 8 * KiB + 1);
    assert.deepEqual(pieceHash(m, 2), Buffer.alloc(20, 3));
    for (const i of [-1, 3, 1.5, NaN]) {
      assert.throws(() => pieceSize(m, i), RangeError);
      assert.throws(() => pieceHash(m, i), RangeError);
    }
    const exact = parseManifest(encode({ length: 32 * KiB, name: 'f', 'piece length': 16 * KiB, pieces: Buffer.alloc(40), private: 1 }));
    assert.equal(pieceSize(exact, 1), 16 * KiB);
  });

  test('torrentFile embeds the info bytes exactly', () => {
    const t = torrentFile(m, 'http://127.0.0.1:1/announce');
    assert.deepEqual(dictValueBytes(t, 'info'), m.infoBytes);
    const d = decode(t) as BDict;
    assert.deepEqual(d['announce'], Buffer.from('http://127.0.0.1:1/announce'));
    const bare = torrentFile(m);
    assert.deepEqual(Object.keys(decode(bare) as BDict), ['info']);
    assert.deepEqual(parseManifest(dictValueBytes(bare, 'info')!).infoHash, m.infoHash);
  });
});
