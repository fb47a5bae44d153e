/**
 * Downloads that cannot be written, with real processes: a tracker, a seeding client, and a
 * downloading client that runs in its own mount namespace (`unshare -m`, or `unshare -Urm` when not
 * root), where the destination is a 1 MiB tmpfs (a full disk) or a read-only bind mount (an
 * unwritable directory; root ignores file modes, a read-only mount it cannot), or a disk that another
 * program fills while the download runs. Each such download
 * ends with a clear error in show_downloads, the client goes on working, and no file appears under
 * the final name. The test looks inside the client's namespace with nsenter.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClientDriver, stopAllClients } from '../helpers/client.js';
import { freePort } from '../helpers/ports.js';
import { startTracker, stopAllTrackers, writeTrackerInfo } from '../helpers/tracker.js';

let dir: string;
let info: string;
let alice: ClientDriver;
const SIZE = 6 * 1024 * 1024;
const root = process.getuid?.() === 0;

/** A wrapper running the client in a private mount namespace after `setup` (shell) ran there. */
function namespaced(setup: string): string[] {
  return ['unshare', ...(root ? ['-m'] : ['-Urm']), '--propagation', 'private', 'sh', '-c', `set -e; ${setup}; exec "$@"`, 'sh'];
}

/** Runs `argv` inside the mount namespace of process `pid`. */
function inNs(pid: number, argv: string[]): string {
  return execFileSync('nsenter', ['-t', String(pid), '-m', ...(root ? [] : ['-U', '--preserve-credentials']), '--', ...argv], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'coterie-disk-'));
  info = writeTrackerInfo(dir, [await freePort()]);
  await startTracker({ infoFile: info, no: 1, dataDir: join(dir, 't1') });
  mkdirSync(join(dir, 'files'));
  writeFileSync(join(dir, 'files', 'big.bin'), randomBytes(SIZE));
  // Throttled, so that a download is still running when the test changes its destination.
  alice = await ClientDriver.start({ infoFile: info, dataDir: join(dir, 'c-alice'), args: ['--max-upload', '1M'] });
  for (const line of ['create_user alice pw', 'login alice pw', 'create_group g', `upload_file ${join(dir, 'files', 'big.bin')} g`]) {
    assert.deepEqual((await alice.send(line)).err, [], line);
  }
});

after(async () => {
  await stopAllClients();
  await stopAllTrackers();
  rmSync(dir, { recursive: true, force: true });
});

async function member(name: string, wrapper: string[]): Promise<ClientDriver> {
  const c = await ClientDriver.start({ infoFile: info, dataDir: join(dir, `c-${name}`), wrapper });
  for (const line of [`create_user ${name} pw`, `login ${name} pw`, 'join_group g']) assert.deepEqual((await c.send(line)).err, [], line);
  assert.deepEqual((await alice.send(`accept_request g ${name}`)).err, []);
  return c;
}

/** Polls show_downloads until `pred` matches a line; returns it. */
async function downloadLine(c: ClientDriver, pred: (l: string) => boolean, ms: number): Promise<string> {
  const deadline = Date.now() + ms;
  for (;;) {
    const r = await c.send('show_downloads');
    const hit = r.out.find(pred);
    if (hit) return hit;
    assert.ok(Date.now() < deadline, `no matching download line within ${ms} ms: ${r.out.join(' | ')}`);
    await new Promise((res) => setTimeout(res, 200));
  }
}

describe('downloads that cannot be written', () => {
  test('a full disk ends the download with a clear error and leaves no file', async () => {
    const dest = join(dir, 'small-disk');
    mkdirSync(dest);
    const bob = await member('bob', namespaced(`mount -t tmpfs -o size=1m coterie-test "${dest}"`));
    assert.match(inNs(bob.pid, ['df', '-k', dest]), /coterie-test/);
    const r = await bob.send(`download_file g big.bin ${dest}`);
    assert.deepEqual(r.err, []);
    const line = await downloadLine(bob, (l) => l.startsWith('[F] [g] big.bin'), 30_000);
    assert.match(line, /ENOSPC \(disk full\)/);
    assert.equal(inNs(bob.pid, ['ls', '-A', dest]).trim(), '', 'the destination is not empty');
    // The client goes on: another command works, and a retry says the same thing.
    assert.match((await bob.send('list_files g')).out[0]!, /^big\.bin/);
  });

  test('an unwritable destination is refused at once', async () => {
    const dest = join(dir, 'read-only');
    mkdirSync(dest);
    const carol = await member('carol', namespaced(`mount --bind "${dest}" "${dest}"; mount -o remount,bind,ro "${dest}"`));
    const r = await carol.send(`download_file g big.bin ${dest}`);
    assert.equal(r.err.length, 1);
    assert.match(r.err[0]!, /^error: cannot write in .*read-only/);
    assert.deepEqual((await carol.send('show_downloads')).out, ['(no downloads)']);
  });

  test('a disk that fills up mid-download ends it with a clear error and leaves no file', async () => {
    const dest = join(dir, 'fills-up');
    mkdirSync(dest);
    // Room for the whole file at first (the .part is sparse: space is taken as pieces arrive).
    const dave = await member('dave', namespaced(`mount -t tmpfs -o size=${SIZE / 1024 + 512}k coterie-test "${dest}"`));
    assert.deepEqual((await dave.send(`download_file g big.bin ${dest}`)).err, []);
    await downloadLine(dave, (l) => /^\[D\] \[g\] big\.bin  [1-9]\d?%/.test(l), 20_000);
    // Something else takes the rest of the disk.
    try { inNs(dave.pid, ['dd', 'if=/dev/zero', `of=${join(dest, 'filler')}`, 'bs=64k', 'status=none']); } catch { /* ENOSPC: the disk is full, as meant */ }
    const line = await downloadLine(dave, (l) => l.startsWith('[F] [g] big.bin'), 30_000);
    assert.match(line, /ENOSPC \(disk full\)/);
    const left = inNs(dave.pid, ['ls', '-A', dest]).trim().split('\n').filter((x) => x !== '');
    assert.deepEqual(left, ['filler'], 'only the filler is left: no big.bin, no big.bin.part');
  });
});
