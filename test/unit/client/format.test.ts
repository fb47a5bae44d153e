import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import {
  downloadLine, fileLine, groupLine, humanDuration, humanRate, humanSize, percent, plural, printable, recordedDownloadLine,
} from '../../../src/client/format.js';
import { explain } from '../../../src/client/messages.js';
import { parseRate, parseClientArgs } from '../../../src/client/args.js';
import { CoterieError } from '../../../src/common/errors.js';
import type { DownloadStatus } from '../../../src/swarm/api.js';

describe('sizes, rates, durations', () => {
  test('humanSize', () => {
    assert.equal(humanSize(0), '0 B');
    assert.equal(humanSize(999), '999 B');
    assert.equal(humanSize(1000), '1.0 KB');
    assert.equal(humanSize(12_345_678), '12.3 MB');
    assert.equal(humanSize(999_960), '1.0 MB');
    assert.equal(humanSize(1.5e9), '1.5 GB');
    assert.equal(humanSize(-1), '?');
  });
  test('humanRate and humanDuration', () => {
    assert.equal(humanRate(12_300_000), '12.3 MB/s');
    assert.equal(humanDuration(2.2), '3s');
    assert.equal(humanDuration(65), '1m05s');
    assert.equal(humanDuration(3723), '1h02m');
    assert.equal(humanDuration(90_000), '1d01h');
    assert.equal(humanDuration(null), '?');
  });
  test('plural and percent', () => {
    assert.equal(plural(1, 'peer'), '1 peer');
    assert.equal(plural(0, 'peer'), '0 peers');
    assert.equal(percent(0, 0), 100);
    assert.equal(percent(999, 1000), 99);
    assert.equal(percent(1000, 1000), 100);
    assert.equal(percent(420, 1000), 42);
  });
  test('printable replaces control characters', () => {
    assert.equal(printable('a\x1b[31mb\nc'), 'a?[31mb?c');
  });
});

describe('listing lines', () => {
  test('groups and files', () => {
    assert.equal(groupLine({ group: 'g1', owner: 'alice', members: 3 }), 'g1  owner alice, 3 members');
    assert.equal(groupLine({ group: 'g1', owner: 'alice', members: 1 }), 'g1  owner alice, 1 member');
    assert.equal(fileLine({ name: 'a b.txt', size: 1_200_000, seeders: 1, online: 0 }), 'a b.txt  1.2 MB  1 seeder, 0 online');
  });
  test('downloads in every state', () => {
    const s: DownloadStatus = {
      id: 'x', group: 'g1', name: 'name', destPath: '/d/name', state: 'downloading',
      bytesDone: 420, length: 1000, rate: 12_300_000, etaSeconds: 3, peers: 3,
    };
    assert.equal(downloadLine(s), '[D] [g1] name  42%  12.3 MB/s  ETA 3s  3 peers');
    assert.equal(downloadLine({ ...s, etaSeconds: null, peers: 1 }), '[D] [g1] name  42%  12.3 MB/s  ETA ?  1 peer');
    assert.equal(downloadLine({ ...s, state: 'paused' }), '[D] [g1] name  42%  paused');
    assert.equal(downloadLine({ ...s, state: 'complete' }), '[C] [g1] name');
    assert.equal(downloadLine({ ...s, state: 'failed', error: 'hash mismatch' }), '[F] [g1] name  hash mismatch');
    const rec = { id: 'x', user: 'u', group: 'g1', name: 'n', destPath: '/p', infoBytes: Buffer.alloc(0), sha256: '', createdMs: 0 };
    assert.equal(recordedDownloadLine({ ...rec, state: 'complete' }), '[C] [g1] n');
    assert.equal(recordedDownloadLine({ ...rec, state: 'failed', error: 'gone' }), '[F] [g1] n  gone');
    assert.equal(recordedDownloadLine({ ...rec, state: 'downloading' }), '[D] [g1] n  paused');
  });
});

describe('error lines', () => {
  const e = (code: ConstructorParameters<typeof CoterieError>[0]) => new CoterieError(code, 'tracker says no');
  test('name what was refused and what to do', () => {
    assert.equal(explain(e('NOT_LOGGED_IN'), { command: 'list_groups' }), 'not logged in (use: login <user_id> <passwd>)');
    assert.match(explain(e('WRONG_PASSWORD'), { command: 'login', user: 'alice' }), /^wrong password for alice/);
    assert.match(explain(e('NO_SUCH_USER'), { command: 'login', user: 'zed' }), /create_user zed/);
    assert.match(explain(e('NOT_MEMBER'), { command: 'list_files', group: 'g1' }), /not a member of g1.*join_group g1/);
    assert.match(explain(e('NO_SUCH_GROUP'), { command: 'join_group', group: 'g9' }), /no group g9/);
    assert.match(explain(e('NO_SEEDER'), { command: 'download_file', group: 'g1', name: 'f' }), /no online seeder/);
    assert.match(explain(e('NOT_OWNER'), { command: 'accept_request', group: 'g1', user: 'bob' }), /only the owner of g1/);
    assert.equal(explain(e('OWNER_LAST_MEMBER'), { command: 'leave_group', group: 'g1' }), 'tracker says no');
    assert.match(explain(new Error('boom'), { command: 'x' }), /^internal error in the client: boom/);
  });
});

describe('command line of the client', () => {
  test('rates', () => {
    assert.equal(parseRate('10M'), 10 * 1024 * 1024);
    assert.equal(parseRate('512K'), 512 * 1024);
    assert.equal(parseRate('1.5mib/s'), 1.5 * 1024 * 1024);
    assert.equal(parseRate('1000'), 1000);
    for (const bad of ['', '0', 'fast', '10X', '-1K']) {
      assert.throws(() => parseRate(bad), (err: unknown) => (err as CoterieError).code === 'USAGE', bad);
    }
  });
  test('arguments and options', () => {
    const a = parseClientArgs(['127.0.0.1:7000', 'info.txt', '--data-dir', 'd', '--stay', '--max-upload=1M']);
    assert.deepEqual([a.peerText, a.trackerInfoFile, a.dataDir, a.stay, a.maxUploadRate, a.maxDownloadRate],
      ['127.0.0.1:7000', 'info.txt', 'd', true, 1024 * 1024, undefined]);
    for (const bad of [[], ['127.0.0.1:7000'], ['localhost:7000', 'i'], ['127.0.0.1:0', 'i'], ['127.0.0.1:7000', 'i', 'x'],
      ['127.0.0.1:7000', 'i', '--bogus'], ['127.0.0.1:7000', 'i', '--data-dir']]) {
      assert.throws(() => parseClientArgs(bad), (err: unknown) => (err as CoterieError).code === 'USAGE', bad.join(' '));
    }
  });
});
