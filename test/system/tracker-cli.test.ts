/** The `tracker` command line: argument errors, the first stderr line, default data dir, --status, signals. */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePorts } from '../helpers/ports.js';
import { RpcTestClient, startTracker, stopAllTrackers, TRACKER_MAIN, writeTrackerInfo } from '../helpers/tracker.js';

const dir = mkdtempSync(join(tmpdir(), 'coterie-cli-'));
after(async () => {
  await stopAllTrackers();
  rmSync(dir, { recursive: true, force: true });
});

function run(args: string[], cwd = dir) {
  const r = spawnSync(process.execPath, [TRACKER_MAIN, ...args], { cwd, encoding: 'utf8', timeout: 15_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('tracker command line', () => {
  test('bad command lines: one error line on stderr, exit 2', () => {
    const info = writeTrackerInfo(dir, [40001, 40002]);
    const cases = [[], [info], [info, '0'], [info, '3'], [info, 'x'], [info, '1', 'extra'], [info, '1', '--bogus'],
      [info, '1', '--data-dir'], [join(dir, 'missing.txt'), '1']];
    writeFileSync(join(dir, 'bad.txt'), 'not an address\n');
    cases.push([join(dir, 'bad.txt'), '1']);
    for (const args of cases) {
      const r = run(args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      const lines = r.stderr.trim().split('\n');
      assert.equal(lines.length, 1, r.stderr);
      assert.match(lines[0]!, /^error: /);
    }
  });

  test('first line, a relative data dir under the cwd, --status, one tracker per data dir, SIGTERM', async () => {
    const [port] = await freePorts(1);
    const work = join(dir, 'cwd');
    mkdirSync(work);
    writeFileSync(join(work, 'trackers.txt'), `# our trackers\n\n127.0.0.1 ${port}\n`);
    const t = await startTracker({ infoFile: 'trackers.txt', no: 1, dataDir: '.coterie/tracker-1', cwd: work });
    const first = t.stderrText().split('\n')[0]!;
    assert.equal(first, `tracker 1 listening on 127.0.0.1:${port} (data ${join(work, '.coterie', 'tracker-1')})`);
    assert.ok(existsSync(join(work, '.coterie', 'tracker-1', 'tracker.db')));
    // The rest of stderr is pino JSON.
    for (const line of t.stderrText().split('\n').slice(1).filter(Boolean)) assert.doesNotThrow(() => JSON.parse(line), line);

    const c = await RpcTestClient.connect(t.port);
    await c.ok('create_user', { user: 'someone', password: 'pw' });
    const st = run(['trackers.txt', '1', '--status'], work);
    assert.equal(st.code, 0, st.stderr);
    const digest = (await c.ok<{ digest: string }>('status', {})).digest;
    assert.match(st.stdout, new RegExp(`digest:\\s+${digest}`));
    assert.match(st.stdout, /rows:.*user 1/);
    c.close();

    // A second tracker on the same data dir is refused.
    const [port2] = await freePorts(1);
    writeFileSync(join(work, 'two.txt'), `127.0.0.1:${port2}\n`);
    const dup = run(['two.txt', '1'], work);
    assert.equal(dup.code, 1);
    assert.match(dup.stderr, /^error: .*in use/m);

    assert.equal(await t.stop(), 0);
    // --status of a tracker that is down: an error line, exit 1.
    const down = run(['trackers.txt', '1', '--status'], work);
    assert.equal(down.code, 1);
    assert.match(down.stderr, /^error: /);
  });

  test('the default data dir is .coterie/tracker-<no> when --data-dir is not given', async () => {
    const [p1, p2] = await freePorts(2);
    const work = join(dir, 'cwd2');
    mkdirSync(work);
    const info = writeTrackerInfo(work, [p1!, p2!]);
    const { spawn } = await import('node:child_process');
    const child = spawn(process.execPath, [TRACKER_MAIN, info, '2'], { cwd: work, stdio: ['ignore', 'ignore', 'pipe'] });
    try {
      let err = '';
      child.stderr.setEncoding('utf8');
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no listening line: ${err}`)), 10_000);
        child.stderr.on('data', (s: string) => { err += s; if (err.includes('\n')) { clearTimeout(timer); resolve(); } });
      });
      assert.equal(err.split('\n')[0], `tracker 2 listening on 127.0.0.1:${p2} (data ${join(work, '.coterie', 'tracker-2')})`);
    } finally {
      child.kill('SIGINT');
      const code = await new Promise((r) => child.once('exit', (c) => r(c)));
      assert.equal(code, 0, 'SIGINT exits cleanly');
    }
  });
});
