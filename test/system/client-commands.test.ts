/**
 * Every client command and every refusal, through real client processes (piped stdin) and a real
 * tracker. Transfers are left to the swarm's system tests: here a file is registered and listed,
 * and download_file is exercised up to its refusals.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClientDriver, stopAllClients } from '../helpers/client.js';
import { freePort } from '../helpers/ports.js';
import { startTracker, stopAllTrackers, writeTrackerInfo } from '../helpers/tracker.js';

const NOT_LOGGED_IN = 'error: not logged in (use: login <user_id> <passwd>)';

let dir: string;
let info: string;
let alice: ClientDriver;
let bob: ClientDriver;
let carol: ClientDriver;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'coterie-client-cmds-'));
  const port = await freePort();
  info = writeTrackerInfo(dir, [port]);
  await startTracker({ infoFile: info, no: 1, dataDir: join(dir, 't1') });
  [alice, bob, carol] = await Promise.all(['alice', 'bob', 'carol'].map((u) =>
    ClientDriver.start({ infoFile: info, dataDir: join(dir, `c-${u}`) })));
});

after(async () => {
  await stopAllClients();
  await stopAllTrackers();
  rmSync(dir, { recursive: true, force: true });
});

/** Sends a command that must succeed and returns its stdout lines. */
async function ok(c: ClientDriver, line: string): Promise<string[]> {
  const r = await c.send(line);
  assert.deepEqual(r.err, [], `${line}: unexpected stderr`);
  assert.ok(r.out.length >= 1, `${line}: printed nothing`);
  return r.out;
}

/** Sends a command that must be refused and returns its one error line. */
async function refused(c: ClientDriver, line: string): Promise<string> {
  const r = await c.send(line);
  assert.deepEqual(r.out, [], `${line}: unexpected stdout`);
  assert.equal(r.err.length, 1, `${line}: expected one error line, got ${JSON.stringify(r.err)}`);
  assert.match(r.err[0]!, /^error: /);
  return r.err[0]!;
}

describe('client commands against a real tracker', () => {
  test('accounts: create_user, duplicates, wrong password, unknown user, login twice, logout', async () => {
    assert.deepEqual(await ok(alice, 'create_user alice pw-a'), ['created user alice']);
    assert.match(await refused(bob, 'create_user alice other'), /^error: user alice already exists/);
    assert.deepEqual(await ok(bob, 'create_user bob pw-b'), ['created user bob']);
    assert.deepEqual(await ok(carol, 'create_user carol pw-c'), ['created user carol']);
    assert.match(await refused(alice, 'login alice wrong'), /^error: wrong password for alice/);
    assert.match(await refused(alice, 'login nobody pw'), /^error: no user nobody .*create_user nobody/);
    assert.deepEqual(await ok(alice, 'login alice pw-a'), ['logged in as alice']);
    assert.match(await refused(alice, 'login alice pw-a'), /^error: already logged in as alice/);
    assert.deepEqual(await ok(alice, 'logout'), ['logged out']);
    assert.equal(await refused(alice, 'logout'), NOT_LOGGED_IN);
    assert.deepEqual(await ok(alice, 'login alice pw-a'), ['logged in as alice']);
    assert.deepEqual(await ok(bob, 'login bob pw-b'), ['logged in as bob']);
    assert.deepEqual(await ok(carol, 'login carol pw-c'), ['logged in as carol']);
  });

  test('commands that need a session say so when logged out', async () => {
    const anon = await ClientDriver.start({ infoFile: info, dataDir: join(dir, 'c-anon') });
    for (const line of ['create_group x', 'join_group x', 'leave_group x', 'list_requests x', 'accept_request x y',
      'reject_request x y', 'list_groups', 'list_files x', 'upload_file f x', 'download_file x f .', 'show_downloads',
      'stop_share x f']) {
      assert.equal(await refused(anon, line), NOT_LOGGED_IN, line);
    }
    assert.deepEqual((await anon.close()).code, 0);
  });

  test('groups: create, duplicate, join, pending, owner-only, accept, reject, list', async () => {
    assert.deepEqual(await ok(alice, 'create_group g1'), ['created group g1']);
    assert.match(await refused(bob, 'create_group g1'), /^error: group g1 already exists/);
    assert.deepEqual(await ok(alice, 'list_requests g1'), ['(no pending requests)']);
    assert.deepEqual(await ok(bob, 'join_group g1'), ['join request sent to the owner of g1']);
    assert.match(await refused(bob, 'join_group g1'), /^error: you already asked to join g1/);
    assert.match(await refused(alice, 'join_group g1'), /^error: you are already a member of g1/);
    assert.match(await refused(bob, 'list_files g1'), /^error: you are not a member of g1 .*join_group g1/);
    assert.deepEqual(await ok(carol, 'join_group g1'), ['join request sent to the owner of g1']);
    assert.deepEqual(await ok(alice, 'list_requests g1'), ['bob', 'carol']);
    assert.match(await refused(carol, 'list_requests g1'), /^error: only the owner of g1/);
    assert.match(await refused(carol, 'accept_request g1 bob'), /^error: only the owner of g1/);
    assert.match(await refused(carol, 'reject_request g1 bob'), /^error: only the owner of g1/);
    assert.deepEqual(await ok(alice, 'accept_request g1 bob'), ['accepted bob into g1']);
    assert.deepEqual(await ok(alice, "reject_request g1 carol"), ["rejected carol's request to join g1"]);
    assert.match(await refused(alice, 'accept_request g1 carol'), /^error: carol has no pending request to join g1/);
    assert.match(await refused(alice, 'reject_request g1 dave'), /^error: dave has no pending request to join g1/);
    assert.deepEqual(await ok(bob, 'list_files g1'), ['(no files in g1)']);
    assert.match(await refused(carol, 'list_files g1'), /^error: you are not a member of g1/);
    // A rejected user may ask again.
    assert.deepEqual(await ok(carol, 'join_group g1'), ['join request sent to the owner of g1']);
    assert.deepEqual(await ok(alice, 'list_requests g1'), ['carol']);
    assert.deepEqual(await ok(carol, 'create_group g2'), ['created group g2']);
    assert.deepEqual(await ok(bob, 'list_groups'), ['g1  owner alice, 2 members', 'g2  owner carol, 1 member']);
  });

  test('unknown groups', async () => {
    for (const line of ['join_group nope', 'list_files nope', 'list_requests nope', 'leave_group nope', 'accept_request nope bob']) {
      assert.match(await refused(bob, line), /^error: no group nope/, line);
    }
  });

  test('files: upload_file registers, list_files shows it, a second sharer, stop_share', async () => {
    const files = join(dir, 'files');
    mkdirSync(files, { recursive: true });
    writeFileSync(join(files, 'report.txt'), 'x'.repeat(300_000));
    writeFileSync(join(files, 'my notes.txt'), 'hello');
    mkdirSync(join(dir, 'bob-copy'), { recursive: true });
    writeFileSync(join(dir, 'bob-copy', 'report.txt'), 'x'.repeat(300_000));

    assert.deepEqual(await ok(alice, `upload_file ${join(files, 'report.txt')} g1`), ['shared report.txt in g1 (300.0 KB, 2 pieces)']);
    assert.deepEqual(await ok(alice, `upload_file "${join(files, 'my notes.txt')}" g1`), ['shared my notes.txt in g1 (5 B, 1 piece)']);
    assert.deepEqual(await ok(bob, 'list_files g1'), ['my notes.txt  5 B  1 seeder, 1 online', 'report.txt  300.0 KB  1 seeder, 1 online']);
    assert.deepEqual(await ok(bob, `upload_file ${join(dir, 'bob-copy', 'report.txt')} g1`),
      ['shared report.txt in g1 (already shared by others: you are now a seeder too)']);
    assert.deepEqual(await ok(alice, 'list_files g1'), ['my notes.txt  5 B  1 seeder, 1 online', 'report.txt  300.0 KB  2 seeders, 2 online']);
    assert.deepEqual(await ok(bob, 'stop_share g1 report.txt'), ['stopped sharing report.txt in g1']);
    assert.match(await refused(bob, 'stop_share g1 report.txt'), /^error: you are not sharing "report.txt" in g1/);
    assert.match(await refused(bob, "stop_share g1 'no such.txt'"), /^error: no file "no such.txt" in g1/);
    assert.deepEqual(await ok(alice, 'list_files g1'), ['my notes.txt  5 B  1 seeder, 1 online', 'report.txt  300.0 KB  1 seeder, 1 online']);
  });

  test('upload_file refusals: missing file, not a member, unknown group, same name with other content', async () => {
    const files = join(dir, 'files');
    assert.match(await refused(alice, `upload_file ${join(files, 'missing.txt')} g1`), /^error: no such file: /);
    assert.match(await refused(alice, `upload_file ${files} g1`), /is not a regular file/);
    assert.match(await refused(carol, `upload_file ${join(files, 'report.txt')} g1`), /^error: you are not a member of g1/);
    assert.match(await refused(alice, `upload_file ${join(files, 'report.txt')} nope`), /^error: no group nope/);
    mkdirSync(join(dir, 'other'), { recursive: true });
    writeFileSync(join(dir, 'other', 'report.txt'), 'different content');
    assert.match(await refused(bob, `upload_file ${join(dir, 'other', 'report.txt')} g1`),
      /^error: g1 already has a different file named "report.txt"/);
  });

  test('download_file refusals: not a member, no such file, destination exists or has no directory', async () => {
    const dest = join(dir, 'downloads');
    mkdirSync(dest, { recursive: true });
    writeFileSync(join(dest, 'report.txt'), 'already here');
    assert.match(await refused(carol, `download_file g1 report.txt ${dest}`), /^error: you are not a member of g1/);
    assert.match(await refused(bob, `download_file g1 nothing.txt ${dest}`), /^error: no file "nothing.txt" in g1/);
    assert.match(await refused(bob, `download_file nope report.txt ${dest}`), /^error: no group nope/);
    assert.match(await refused(bob, `download_file g1 report.txt ${dest}`), /already exists/);
    assert.match(await refused(bob, `download_file g1 report.txt ${join(dest, 'report.txt')}`), /already exists/);
    assert.match(await refused(bob, `download_file g1 report.txt ${join(dest, 'no-dir', 'r.txt')}`), /^error: no directory /);
    assert.deepEqual(await ok(bob, 'show_downloads'), ['(no downloads)']);
  });

  test('download_file with no online seeder is refused at once', async () => {
    assert.deepEqual(await ok(alice, 'logout'), ['logged out']);
    assert.deepEqual(await ok(bob, 'list_files g1'), ['my notes.txt  5 B  1 seeder, 0 online', 'report.txt  300.0 KB  1 seeder, 0 online']);
    assert.match(await refused(bob, `download_file g1 report.txt ${join(dir, 'downloads', 'r2.txt')}`),
      /^error: no online seeder has "report.txt" in g1/);
    // Logging in again re-shares what this client shared for alice.
    assert.deepEqual(await ok(alice, 'login alice pw-a'), ['logged in as alice']);
    assert.deepEqual(await ok(bob, 'list_files g1'), ['my notes.txt  5 B  1 seeder, 1 online', 'report.txt  300.0 KB  1 seeder, 1 online']);
  });

  test('shell: unknown command, missing and extra arguments, comments, help', async () => {
    assert.match(await refused(bob, 'frobnicate'), /^error: unknown command "frobnicate" .*help/);
    assert.match(await refused(bob, 'list_grops'), /did you mean list_groups\?/);
    assert.equal(await refused(bob, 'login bob'), 'error: missing arguments (usage: login <user_id> <passwd>)');
    assert.equal(await refused(bob, 'download_file g1'),
      'error: missing arguments (usage: download_file <group_id> <file_name> <destination_path>)');
    assert.match(await refused(bob, 'list_files g1 g2'), /^error: too many arguments \(usage: list_files <group_id>;/);
    assert.match(await refused(bob, "list_files 'g1"), /^error: unclosed single quote/);
    const blank = await bob.send('   # a comment');
    assert.deepEqual(blank, { out: [], err: [] });
    const help = await ok(bob, 'help');
    for (const name of ['create_user', 'login', 'logout', 'create_group', 'join_group', 'leave_group', 'list_requests',
      'accept_request', 'reject_request', 'list_groups', 'list_files', 'upload_file', 'download_file', 'show_downloads',
      'stop_share', 'help', 'quit']) {
      assert.ok(help.some((l) => l.trimStart().startsWith(name + ' ') || l.trim() === name), `help lists ${name}`);
    }
  });

  test('leave_group: stops sharing there, hands ownership over, the last member cannot leave', async () => {
    assert.match(await refused(carol, 'leave_group g1'), /^error: you are not a member of g1/);
    assert.match(await refused(carol, 'leave_group g2'), /only member/);
    assert.deepEqual(await ok(alice, 'leave_group g1'), ['left group g1; bob is now the owner']);
    assert.deepEqual(await ok(bob, 'list_groups'), ['g1  owner bob, 1 member', 'g2  owner carol, 1 member']);
    // alice's shares in g1 stopped with her membership.
    assert.deepEqual(await ok(bob, 'list_files g1'), ['my notes.txt  5 B  0 seeders, 0 online', 'report.txt  300.0 KB  0 seeders, 0 online']);
    assert.deepEqual(await ok(bob, 'list_requests g1'), ['carol']);
  });

  test('quit logs out, says bye and exits 0 without running later lines', async () => {
    carol.write('quit');
    carol.write('create_group after-quit');
    const { code } = await carol.exited;
    assert.equal(code, 0);
    assert.match(carol.allOut, /^bye$/m);
    assert.doesNotMatch(carol.allErr + carol.allOut, /after-quit/);
    assert.deepEqual(await ok(bob, 'list_groups'), ['g1  owner bob, 1 member', 'g2  owner carol, 1 member']);
  });
});
