/**
 * A client moves to the next tracker by itself when the one it talks to dies, keeping its session
 * (sessions are replicated) and renewing its presence there at once.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClientDriver, stopAllClients } from '../helpers/client.js';
import { freePorts } from '../helpers/ports.js';
import { startTracker, stopAllTrackers, writeTrackerInfo, type TrackerProcess } from '../helpers/tracker.js';

let dir: string;
let trackers: TrackerProcess[];
let info: string;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'coterie-client-failover-'));
  const ports = await freePorts(2);
  info = writeTrackerInfo(dir, ports);
  trackers = await Promise.all([1, 2].map((no) => startTracker({ infoFile: info, no, dataDir: join(dir, `t${no}`) })));
});

after(async () => {
  await stopAllClients();
  await stopAllTrackers();
  rmSync(dir, { recursive: true, force: true });
});

async function until<T>(what: string, f: () => Promise<T>, ok: (v: T) => boolean, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  let v = await f();
  while (!ok(v)) {
    if (Date.now() > end) assert.fail(`${what}: last value ${JSON.stringify(v)}`);
    await new Promise((r) => setTimeout(r, 200));
    v = await f();
  }
  return v;
}

describe('client failover', () => {
  test('the session and presence survive the death of the tracker in use', async () => {
    const alice = await ClientDriver.start({ infoFile: info, dataDir: join(dir, 'alice') });
    const bob = await ClientDriver.start({ infoFile: info, dataDir: join(dir, 'bob') });
    assert.deepEqual((await alice.send('create_user alice pw')).out, ['created user alice']);
    assert.deepEqual((await bob.send('create_user bob pw')).out, ['created user bob']);
    assert.deepEqual((await alice.send('login alice pw')).out, ['logged in as alice']);
    assert.deepEqual((await bob.send('login bob pw')).out, ['logged in as bob']);
    assert.deepEqual((await alice.send('create_group g1')).out, ['created group g1']);
    // bob's join must reach alice's view through replication if they are on different trackers.
    assert.deepEqual((await bob.send('join_group g1')).out, ['join request sent to the owner of g1']);
    await until('the request reaches the owner', () => alice.send('list_requests g1'), (r) => r.out[0] === 'bob');
    assert.deepEqual((await alice.send('accept_request g1 bob')).out, ['accepted bob into g1']);
    writeFileSync(join(dir, 'f.txt'), 'failover');
    assert.deepEqual((await alice.send(`upload_file ${join(dir, 'f.txt')} g1`)).out, ['shared f.txt in g1 (8 B, 1 piece)']);
    await until('bob sees the file online', () => bob.send('list_files g1'),
      (r) => r.out[0] === 'f.txt  8 B  1 seeder, 1 online');

    // Both clients talk to the first tracker of the list; it dies.
    await trackers[0]!.kill9();

    // No new login: the next commands go to the second tracker with the same session.
    const groups = await alice.send('list_groups');
    assert.deepEqual(groups, { out: ['g1  owner alice, 2 members'], err: [] });
    assert.deepEqual((await alice.send('create_group g2')).out, ['created group g2']);
    // alice's presence moved with her (heartbeat right after reconnecting): her file is online.
    await until('the file is still online after failover', () => bob.send('list_files g1'),
      (r) => r.out[0] === 'f.txt  8 B  1 seeder, 1 online' && r.err.length === 0);
    assert.equal((await alice.close()).code, 0);
    await until('logout reached the second tracker', () => bob.send('list_files g1'),
      (r) => r.out[0] === 'f.txt  8 B  1 seeder, 0 online');
    assert.equal((await bob.close()).code, 0);
  });
});
