/**
 * The tracker's state survives kill -9: every acknowledged write is durable (SQLite WAL), and a
 * restarted tracker on the same data dir has the same origin, rows and digest.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePorts } from '../helpers/ports.js';
import { RpcTestClient, startTracker, stopAllTrackers, writeTrackerInfo } from '../helpers/tracker.js';
import { infoFor, SHA } from '../unit/tracker/fixture.js';

const dir = mkdtempSync(join(tmpdir(), 'coterie-persist-'));
after(async () => {
  await stopAllTrackers();
  rmSync(dir, { recursive: true, force: true });
});

describe('tracker persistence', () => {
  test('users, sessions, groups, requests, members and files survive kill -9 and restart', async () => {
    const [port] = await freePorts(1);
    const infoFile = writeTrackerInfo(dir, [port!]);
    const dataDir = join(dir, 'data-1');
    const t1 = await startTracker({ infoFile, no: 1, dataDir });
    const c = await RpcTestClient.connect(t1.port);
    const A = 'aaaaaaaaaaaaaaaa', B = 'bbbbbbbbbbbbbbbb', C = 'cccccccccccccccc';
    for (const u of ['owner', 'member', 'asker', 'rejected']) await c.ok('create_user', { user: u, password: `pw-${u}` });
    const login = async (u: string, clientId: string) =>
      (await c.ok<{ token: string }>('login', { user: u, password: `pw-${u}`, peer: '127.0.0.1:7000', clientId })).token;
    const to = await login('owner', A), tm = await login('member', B), ta = await login('asker', C), tr = await login('rejected', C);
    await c.ok('create_group', { group: 'g1' }, to);
    await c.ok('create_group', { group: 'g2' }, tm);
    await c.ok('join_group', { group: 'g1' }, tm);
    await c.ok('join_group', { group: 'g1' }, ta);
    await c.ok('join_group', { group: 'g1' }, tr);
    await c.ok('accept_request', { group: 'g1', user: 'member' }, to);
    await c.ok('reject_request', { group: 'g1', user: 'rejected' }, to);
    const f1 = infoFor('one.bin', 200_000, 1), f2 = infoFor('two.bin', 50_000, 2);
    await c.ok('upload_file', { group: 'g1', info: f1.info, sha256: SHA, peer: '127.0.0.1:7000', clientId: A }, to);
    await c.ok('upload_file', { group: 'g1', info: f1.info, sha256: SHA, peer: '127.0.0.1:7001', clientId: B }, tm);
    await c.ok('upload_file', { group: 'g1', info: f2.info, sha256: SHA, peer: '127.0.0.1:7001', clientId: B }, tm);
    await c.ok('stop_share', { group: 'g1', name: 'two.bin', peer: '127.0.0.1:7001', clientId: B }, tm);
    const before = await c.ok<{ digest: string; origin: string; versionVector: Record<string, number> }>('status', {});
    // The last write is acknowledged and the process killed at once: it must still be there.
    await c.ok('create_user', { user: 'last-second', password: 'pw' });
    await t1.kill9();
    c.close();

    const t2 = await startTracker({ infoFile, no: 1, dataDir });
    const d = await RpcTestClient.connect(t2.port);
    const after = await d.ok<{ digest: string; origin: string; versionVector: Record<string, number> }>('status', {});
    assert.equal(after.origin, before.origin, 'same data dir, same origin');
    assert.equal(after.versionVector[after.origin], before.versionVector[before.origin]! + 1, 'the last acknowledged write survived');
    // Sessions survive the restart: the old tokens still work.
    assert.deepEqual(await d.ok('list_groups', {}, to), {
      groups: [{ group: 'g1', owner: 'owner', members: 2 }, { group: 'g2', owner: 'member', members: 1 }],
    });
    assert.deepEqual(await d.ok('list_requests', { group: 'g1' }, to), { users: ['asker'] });
    const err = (r: { ok: boolean; error?: { code: string } }) => (r.ok ? 'ok' : r.error!.code);
    assert.equal(err(await d.call('join_group', { group: 'g1' }, ta)), 'REQUEST_PENDING');
    assert.equal(err(await d.call('join_group', { group: 'g1' }, tm)), 'ALREADY_MEMBER');
    assert.equal(err(await d.call('list_files', { group: 'g1' }, ta)), 'NOT_MEMBER');
    const files = (await d.ok<{ files: { name: string; infoHash: string; seeders: number; online: number }[] }>('list_files', { group: 'g1' }, tm)).files;
    assert.deepEqual(files.map((f) => [f.name, f.infoHash, f.seeders, f.online]), [['one.bin', f1.infoHash, 2, 0], ['two.bin', f2.infoHash, 0, 0]]);
    // Passwords survive; presence does not (nobody is online after a restart).
    assert.equal(err(await d.call('login', { user: 'last-second', password: 'pw', peer: '127.0.0.1:1', clientId: A })), 'ok');
    assert.equal(err(await d.call('login', { user: 'owner', password: 'wrong', peer: '127.0.0.1:1', clientId: A })), 'WRONG_PASSWORD');
    assert.equal(err(await d.call('get_peers', { group: 'g1', name: 'one.bin' }, tm)), 'NO_SEEDER');
    assert.equal(err(await d.call('create_user', { user: 'owner', password: 'x' })), 'USER_EXISTS');
    assert.equal(err(await d.call('create_group', { group: 'g1' }, ta)), 'GROUP_EXISTS');
    // New writes continue the same log.
    await d.ok('accept_request', { group: 'g1', user: 'asker' }, to);
    const later = await d.ok<{ versionVector: Record<string, number> }>('status', {});
    assert.ok(later.versionVector[after.origin]! > after.versionVector[after.origin]!);
    d.close();
    assert.equal(await t2.stop(), 0, 'SIGTERM exits cleanly');
  });
});
