import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { HistoryFile, LocalState, type ShareRecord } from '../../../src/client/local-state.js';

let dir: string;
before(() => { dir = mkdtempSync(join(tmpdir(), 'coterie-state-')); });
after(() => { rmSync(dir, { recursive: true, force: true }); });

function share(over: Partial<ShareRecord> = {}): ShareRecord {
  return {
    user: 'alice', group: 'g1', infoHash: 'a'.repeat(40), name: 'a.txt', path: '/data/a.txt',
    size: 10, mtimeMs: 1234.5, infoBytes: Buffer.from('d4:name5:a.txte'), sha256: 'b'.repeat(64), ...over,
  };
}

describe('LocalState', () => {
  test('creates a clientId once and keeps it across reopening; the database is in WAL mode', () => {
    const d = join(dir, 'id');
    const s1 = LocalState.open(d);
    assert.match(s1.clientId, /^[0-9a-f]{32}$/);
    s1.close();
    const s2 = LocalState.open(d);
    assert.equal(s2.clientId, LocalState.open(d).clientId);
    s2.close();
    const raw = new Database(join(d, 'client.db'));
    assert.equal(raw.pragma('journal_mode', { simple: true }), 'wal');
    raw.close();
    assert.notEqual(LocalState.open(join(dir, 'other')).clientId, s1.clientId);
  });

  test('shares: put, replace, look up by name and path, remove, per user and group', () => {
    const s = LocalState.open(join(dir, 'shares'));
    s.putShare(share());
    s.putShare(share({ group: 'g2' }));
    s.putShare(share({ user: 'bob' }));
    s.putShare(share({ infoHash: 'c'.repeat(40), name: 'b.txt', path: '/data/b.txt' }));
    assert.deepEqual(s.shares('alice').map((x) => `${x.group}/${x.name}`), ['g1/a.txt', 'g1/b.txt', 'g2/a.txt']);
    assert.deepEqual(s.shares('alice', 'g2').map((x) => x.name), ['a.txt']);
    const got = s.shareByName('alice', 'g1', 'a.txt')!;
    assert.deepEqual(got, share());
    assert.ok(Buffer.isBuffer(got.infoBytes));
    s.putShare(share({ size: 11 }));
    assert.equal(s.shareByName('alice', 'g1', 'a.txt')!.size, 11);
    assert.equal(s.shareByPath('/data/b.txt')!.name, 'b.txt');
    assert.equal(s.shareByPath('/nowhere'), undefined);
    s.removeShare('alice', 'g1', 'a'.repeat(40));
    assert.equal(s.shareByName('alice', 'g1', 'a.txt'), undefined);
    assert.equal(s.shares('bob').length, 1);
    s.close();
  });

  test('downloads: recorded, resume store round trip, complete and failed survive reopening', () => {
    const d = join(dir, 'dl');
    let t = 1000;
    const s = LocalState.open(d, () => t++);
    const base = { user: 'alice', group: 'g1', name: 'f', infoBytes: Buffer.from([1, 2, 3]), sha256: 'e'.repeat(64) };
    s.addDownload({ ...base, id: 'd1', destPath: '/x/f' });
    s.addDownload({ ...base, id: 'd2', destPath: '/y/f' });
    s.addDownload({ ...base, id: 'd3', destPath: '/z/f', user: 'bob' });
    assert.equal(s.load('d1'), undefined);
    const bits = new Uint8Array([0b10100000, 0xff]);
    s.save('d1', bits, 4096, 777.25);
    s.save('d1', bits.subarray(1), 4096, 778); // a view into a larger buffer
    assert.deepEqual(s.load('d1'), { bitfield: new Uint8Array([0xff]), partSize: 4096, partMtimeMs: 778 });
    assert.equal(s.downloadingTo('/x/f')?.id, 'd1');
    s.complete('d1');
    s.failDownload('d2', 'the file is gone from g1');
    s.close();

    const r = LocalState.open(d);
    assert.deepEqual(r.downloads('alice').map((x) => [x.id, x.state, x.error]),
      [['d1', 'complete', undefined], ['d2', 'failed', 'the file is gone from g1']]);
    assert.equal(r.load('d1'), undefined);
    assert.equal(r.downloadingTo('/x/f'), undefined);
    assert.deepEqual(r.download('d3')?.infoBytes, Buffer.from([1, 2, 3]));
    assert.equal(r.download('d3')?.state, 'downloading');
    r.close();
  });

  test('refuses a database written by a newer version', () => {
    const d = join(dir, 'newer');
    LocalState.open(d).close();
    const raw = new Database(join(d, 'client.db'));
    raw.pragma('user_version = 99');
    raw.close();
    assert.throws(() => LocalState.open(d), (e: unknown) => (e as { code?: string }).code === 'IO');
  });

  test('an unusable data dir is an IO error', () => {
    const f = join(dir, 'a-file');
    writeFileSync(f, 'x');
    assert.throws(() => LocalState.open(join(f, 'sub')), (e: unknown) => (e as { code?: string }).code === 'IO');
  });
});

describe('HistoryFile', () => {
  test('keeps commands, most recent first, never lines with passwords, capped', () => {
    const p = join(dir, 'history');
    const h = new HistoryFile(p, 3);
    assert.deepEqual(h.load(), []);
    for (const l of ['list_groups', 'login alice secret', 'create_user bob pw', '  ', 'join_group g1', 'list_files g1', 'logout']) h.append(l);
    assert.ok(!readFileSync(p, 'utf8').includes('secret'));
    assert.deepEqual(h.load(), ['logout', 'list_files g1', 'join_group g1']);
    assert.equal(readFileSync(p, 'utf8'), 'join_group g1\nlist_files g1\nlogout\n');
  });
});
