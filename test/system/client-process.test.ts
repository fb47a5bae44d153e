/**
 * The client as a process: its command line, exit codes, piped-input behaviour (no prompt, no
 * colours, logout at the end of input, --stay), its default data dir, and re-sharing at login
 * after a restart (with the size+mtime check).
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClientDriver, runClientArgs, runClientScript, stopAllClients } from '../helpers/client.js';
import { freePort } from '../helpers/ports.js';
import { startTracker, stopAllTrackers, writeTrackerInfo } from '../helpers/tracker.js';

let dir: string;
let info: string;
let watcher: ClientDriver;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'coterie-client-proc-'));
  info = writeTrackerInfo(dir, [await freePort()]);
  await startTracker({ infoFile: info, no: 1, dataDir: join(dir, 't1') });
  // alice shares in g1; watcher (bob, a member) looks at list_files from outside.
  const setup = await runClientScript({ infoFile: info, dataDir: join(dir, 'setup') }, [
    'create_user alice pw', 'create_user bob pw', 'login alice pw', 'create_group g1', 'logout',
    'login bob pw', 'join_group g1', 'logout', 'login alice pw', 'accept_request g1 bob',
  ]);
  assert.deepEqual(setup.err, []);
  watcher = await ClientDriver.start({ infoFile: info, dataDir: join(dir, 'watcher') });
  assert.deepEqual((await watcher.send('login bob pw')).out, ['logged in as bob']);
});

after(async () => {
  await stopAllClients();
  await stopAllTrackers();
  rmSync(dir, { recursive: true, force: true });
});

async function filesSeenByBob(): Promise<string[]> {
  const r = await watcher.send('list_files g1');
  assert.deepEqual(r.err, []);
  return r.out;
}

/** Polls list_files (presence changes are soft state) until `want` or the deadline. */
async function waitFiles(want: string[], ms = 8000): Promise<void> {
  const end = Date.now() + ms;
  let got: string[] = [];
  while (Date.now() < end) {
    got = await filesSeenByBob();
    if (JSON.stringify(got) === JSON.stringify(want)) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  assert.deepEqual(got, want);
}

describe('the client process', () => {
  test('bad arguments: an error line, the usage, exit 2', async () => {
    for (const argv of [[], ['127.0.0.1:7000'], ['nohost', info], ['127.0.0.1:7000', info, '--bogus'],
      ['127.0.0.1:7000', info, '--max-upload', 'fast'], ['127.0.0.1:7000', join(dir, 'missing.txt')]]) {
      const r = await runClientArgs(argv);
      assert.equal(r.code, 2, argv.join(' '));
      assert.match(r.err[0] ?? '', /^error: /, argv.join(' '));
      assert.match(r.stderr, /usage: client <IP>:<PORT> <tracker_info_file>/);
      assert.equal(r.stdout, '');
    }
  });

  test('a peer port already in use: an error line, exit 1', async () => {
    const busy: Server = createServer();
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
    const port = (busy.address() as { port: number }).port;
    try {
      const r = await runClientArgs([`127.0.0.1:${port}`, info, '--data-dir', join(dir, 'busy')]);
      assert.equal(r.code, 1);
      assert.match(r.err[0] ?? '', /^error: cannot serve peers on 127\.0\.0\.1:\d+: the port is in use/);
    } finally {
      busy.close();
    }
  });

  test('piped: no prompt, no colours; the end of input logs out and exits 0', async () => {
    writeFileSync(join(dir, 'a.txt'), 'alpha');
    const r = await runClientScript({ infoFile: info, dataDir: join(dir, 'alice1'), env: { NO_COLOR: '' } }, [
      'login alice pw', `upload_file ${join(dir, 'a.txt')} g1`, 'bogus',
    ]);
    assert.equal(r.code, 0);
    assert.deepEqual(r.out, ['logged in as alice', 'shared a.txt in g1 (5 B, 1 piece)']);
    assert.equal(r.err.length, 1);
    assert.doesNotMatch(r.stdout + r.stderr, /\x1b|coterie>/);
    // Logged out at the end: alice's client is no longer online.
    assert.deepEqual(await filesSeenByBob(), ['a.txt  5 B  1 seeder, 0 online']);
  });

  test('login after a restart re-shares the files of that user', async () => {
    const alice = await ClientDriver.start({ infoFile: info, dataDir: join(dir, 'alice1') });
    assert.deepEqual((await alice.send('login alice pw')).out, ['logged in as alice']);
    await waitFiles(['a.txt  5 B  1 seeder, 1 online']);
    assert.deepEqual((await alice.close()).code, 0);
    await waitFiles(['a.txt  5 B  1 seeder, 0 online']);
  });

  test('a file changed since it was shared is dropped at login, with a warning', async () => {
    utimesSync(join(dir, 'a.txt'), new Date(), new Date(Date.now() - 60_000));
    const r = await runClientScript({ infoFile: info, dataDir: join(dir, 'alice1') }, ['login alice pw', 'list_files g1']);
    assert.deepEqual(r.out, ['logged in as alice', 'a.txt  5 B  0 seeders, 0 online']);
    assert.equal(r.err.length, 1);
    assert.match(r.err[0]!, /^warning: .*a\.txt changed or is gone since it was shared: stopped sharing a\.txt in g1$/);
  });

  test('--stay keeps serving after the end of input until SIGTERM', async () => {
    writeFileSync(join(dir, 'b.txt'), 'bravo!');
    const alice = await ClientDriver.start({ infoFile: info, dataDir: join(dir, 'alice2'), args: ['--stay'] });
    assert.deepEqual((await alice.send('login alice pw')).out, ['logged in as alice']);
    assert.deepEqual((await alice.send(`upload_file ${join(dir, 'b.txt')} g1`)).out, ['shared b.txt in g1 (6 B, 1 piece)']);
    const closing = alice.close(20_000);
    await new Promise((r) => setTimeout(r, 700));
    assert.deepEqual(await filesSeenByBob(), ['a.txt  5 B  0 seeders, 0 online', 'b.txt  6 B  1 seeder, 1 online']);
    await alice.kill('SIGTERM');
    assert.equal((await closing).code, 0);
    await waitFiles(['a.txt  5 B  0 seeders, 0 online', 'b.txt  6 B  1 seeder, 0 online']);
  });

  test('the default data dir is .coterie/client-<IP>-<PORT>/ under the current directory', async () => {
    const cwd = mkdtempSync(join(dir, 'cwd-'));
    const port = await freePort();
    const r = await runClientScript({ infoFile: info, addr: `127.0.0.1:${port}`, cwd }, ['help']);
    assert.equal(r.code, 0);
    const d = join(cwd, '.coterie', `client-127.0.0.1-${port}`);
    assert.ok(existsSync(join(d, 'client.db')), 'state database');
    assert.ok(existsSync(join(d, 'client.log')), 'log file');
  });
});
