import { test, describe, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { Socket } from 'node:net';
import { TrackerLink, realTimers, type Timers, type TrackerLinkOptions } from '../../../src/client/tracker-link.js';
import { CoterieError } from '../../../src/common/errors.js';
import { startFakeCluster, type FakeCluster } from './fake-tracker.js';

const CLIENT_ID = 'ab'.repeat(8);
const PEER = '127.0.0.1:7000';

let cluster: FakeCluster | undefined;
let link: TrackerLink | undefined;
afterEach(async () => {
  link?.close();
  link = undefined;
  await cluster?.close();
  cluster = undefined;
});

function makeLink(c: FakeCluster, extra: Partial<TrackerLinkOptions> = {}): TrackerLink {
  link = new TrackerLink({
    trackers: c.endpoints, peer: PEER, clientId: CLIENT_ID, shares: () => [],
    connectTimeoutMs: 500, callTimeoutMs: 400, heartbeatIntervalMs: 60_000, ...extra,
  });
  return link;
}

function codeOf(e: unknown): string | undefined {
  return e instanceof CoterieError ? e.code : undefined;
}

/** Timers whose intervals only fire when the test says so; timeouts are real. */
function manualIntervals(): Timers & { fire(): void; count(): number } {
  const intervals = new Map<number, () => void>();
  let next = 1;
  return {
    setTimeout: realTimers.setTimeout, clearTimeout: realTimers.clearTimeout,
    setInterval: (fn) => { intervals.set(next, fn); return next++; },
    clearInterval: (h) => { intervals.delete(h as number); },
    fire: () => { for (const fn of intervals.values()) fn(); },
    count: () => intervals.size,
  };
}

async function until(cond: () => boolean, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('TrackerLink', () => {
  test('calls the first tracker and validates the result', async () => {
    cluster = await startFakeCluster(2);
    const l = makeLink(cluster);
    await l.call('create_user', { user: 'alice', password: 'pw' });
    assert.equal(cluster.state.users.get('alice'), 'pw');
    assert.deepEqual(cluster.state.seen.map((s) => s.tracker), [0]);
  });

  test('tracker errors come back with their code', async () => {
    cluster = await startFakeCluster(1);
    const l = makeLink(cluster);
    await l.call('create_user', { user: 'alice', password: 'pw' });
    await assert.rejects(l.call('login', { user: 'alice', password: 'nope', peer: PEER, clientId: CLIENT_ID }),
      (e) => codeOf(e) === 'WRONG_PASSWORD');
  });

  test('moves on when a tracker refuses connections, and stays on the one that works', async () => {
    cluster = await startFakeCluster(3);
    await cluster.kill(0);
    const l = makeLink(cluster);
    await l.call('create_user', { user: 'alice', password: 'pw' });
    await l.call('create_user', { user: 'bob', password: 'pw' });
    assert.deepEqual(cluster.state.seen.map((s) => s.tracker), [1, 1]);
    assert.equal(l.currentTracker.port, cluster.trackers[1]!.port);
  });

  test('moves on when a connection attempt hangs past the connect timeout', async () => {
    cluster = await startFakeCluster(2);
    let attempts = 0;
    const l = makeLink(cluster, {
      connectTimeoutMs: 150,
      // The first connection attempt is a socket that never connects.
      connect: (e) => (attempts++ === 0 ? new Socket() : new Socket().connect(e.port, e.host)),
    });
    const t0 = Date.now();
    await l.call('status', {});
    assert.ok(Date.now() - t0 >= 140);
    assert.deepEqual(cluster.state.seen.map((s) => s.tracker), [1]);
  });

  test('a read with no answer times out and is repeated on the next tracker', async () => {
    cluster = await startFakeCluster(2);
    cluster.state.users.set('alice', 'pw');
    const l = makeLink(cluster);
    const { token } = await l.call('login', { user: 'alice', password: 'pw', peer: PEER, clientId: CLIENT_ID });
    l.startSession('alice', token, 'pw');
    await l.heartbeatNow();
    cluster.trackers[0]!.mode = 'silent';
    cluster.trackers[1]!.mode = 'ok';
    const r = await l.call('list_groups', {});
    assert.deepEqual(r, { groups: [] });
    const lists = cluster.state.seen.filter((s) => s.op === 'list_groups');
    assert.deepEqual(lists.map((s) => s.tracker), [0, 1]);
    // The session token went along to the second tracker.
    assert.ok(lists.every((s) => s.token === token));
  });

  test('garbage, malformed results and UNAVAILABLE all count as a failed tracker', async () => {
    for (const mode of ['garbage', 'malformed', 'unavailable'] as const) {
      cluster = await startFakeCluster(2);
      const l = makeLink(cluster);
      cluster.trackers[0]!.mode = mode;
      await l.call('create_user', { user: 'alice', password: 'pw' });
      assert.equal(cluster.state.users.get('alice'), 'pw', mode);
      assert.equal(l.currentTracker.port, cluster.trackers[1]!.port, mode);
      l.close();
      await cluster.close();
    }
    cluster = undefined;
  });

  test('NO_TRACKER when every tracker fails', async () => {
    cluster = await startFakeCluster(2);
    await cluster.kill(0);
    await cluster.kill(1);
    const l = makeLink(cluster);
    await assert.rejects(l.call('status', {}), (e) => codeOf(e) === 'NO_TRACKER');
  });

  test('create_group lost after it was applied is reconciled as ours', async () => {
    cluster = await startFakeCluster(2);
    cluster.state.users.set('alice', 'pw');
    const l = makeLink(cluster);
    const { token } = await l.call('login', { user: 'alice', password: 'pw', peer: PEER, clientId: CLIENT_ID });
    l.startSession('alice', token, 'pw');
    await l.heartbeatNow();
    cluster.trackers[0]!.mode = 'apply-then-close';
    await l.call('create_group', { group: 'g1' });
    assert.equal(cluster.state.groups.get('g1')?.owner, 'alice');
    // The second tracker saw the repetition and then the ownership check.
    const ops = cluster.state.seen.filter((s) => s.op !== 'heartbeat').map((s) => `${s.tracker}:${s.op}`);
    assert.deepEqual(ops, ['0:login', '0:create_group', '1:create_group', '1:list_groups']);
  });

  test('create_group lost before it was applied, and the id taken by someone else, stays an error', async () => {
    cluster = await startFakeCluster(2);
    cluster.state.users.set('alice', 'pw');
    cluster.state.groups.set('g1', { owner: 'bob', members: new Set(['bob']), requests: new Set() });
    const l = makeLink(cluster);
    const { token } = await l.call('login', { user: 'alice', password: 'pw', peer: PEER, clientId: CLIENT_ID });
    l.startSession('alice', token, 'pw');
    await l.heartbeatNow();
    cluster.trackers[0]!.mode = 'close';
    await assert.rejects(l.call('create_group', { group: 'g1' }), (e) => codeOf(e) === 'GROUP_EXISTS');
  });

  test('create_user lost after it was applied is ours when our password opens it', async () => {
    cluster = await startFakeCluster(2);
    const l = makeLink(cluster);
    cluster.trackers[0]!.mode = 'apply-then-close';
    await l.call('create_user', { user: 'alice', password: 'pw' });
    // The check's session was closed again.
    assert.equal(cluster.state.sessions.size, 0);
  });

  test('create_user refused after a lost answer is an error when the password does not match', async () => {
    cluster = await startFakeCluster(2);
    cluster.state.users.set('alice', 'other');
    const l = makeLink(cluster);
    cluster.trackers[0]!.mode = 'close';
    await assert.rejects(l.call('create_user', { user: 'alice', password: 'pw' }), (e) => codeOf(e) === 'USER_EXISTS');
  });

  test('join_group lost after it was applied is success', async () => {
    cluster = await startFakeCluster(2);
    cluster.state.users.set('bob', 'pw');
    cluster.state.groups.set('g1', { owner: 'alice', members: new Set(['alice']), requests: new Set() });
    const l = makeLink(cluster);
    const { token } = await l.call('login', { user: 'bob', password: 'pw', peer: PEER, clientId: CLIENT_ID });
    l.startSession('bob', token, 'pw');
    await l.heartbeatNow();
    cluster.trackers[0]!.mode = 'apply-then-close';
    await l.call('join_group', { group: 'g1' });
    assert.ok(cluster.state.groups.get('g1')!.requests.has('bob'));
  });

  test('a refused session is renewed with the kept password and the call repeated', async () => {
    cluster = await startFakeCluster(1);
    cluster.state.users.set('alice', 'pw');
    let lost = 0;
    const l = makeLink(cluster, { onSessionLost: () => { lost++; } });
    const { token } = await l.call('login', { user: 'alice', password: 'pw', peer: PEER, clientId: CLIENT_ID });
    l.startSession('alice', token, 'pw');
    cluster.state.sessions.clear(); // e.g. a tracker that has not received the session yet
    await l.call('create_group', { group: 'g1' });
    assert.equal(cluster.state.groups.get('g1')?.owner, 'alice');
    assert.equal(lost, 0);
    const creates = cluster.state.seen.filter((s) => s.op === 'create_group');
    assert.equal(creates.length, 2);
    assert.notEqual(creates[1]!.token, token);
  });

  test('a session that cannot be renewed is reported lost', async () => {
    cluster = await startFakeCluster(1);
    cluster.state.users.set('alice', 'pw');
    const lost: string[] = [];
    const l = makeLink(cluster, { onSessionLost: (e) => { lost.push(e.code); } });
    const { token } = await l.call('login', { user: 'alice', password: 'pw', peer: PEER, clientId: CLIENT_ID });
    l.startSession('alice', token, 'pw');
    cluster.state.sessions.clear();
    cluster.state.users.set('alice', 'changed');
    await assert.rejects(l.call('list_groups', {}), (e) => codeOf(e) === 'UNAUTHENTICATED');
    assert.deepEqual(lost, ['UNAUTHENTICATED']);
    assert.equal(l.user, undefined);
    await assert.rejects(l.call('list_groups', {}), (e) => codeOf(e) === 'NOT_LOGGED_IN');
  });

  test('a renewal refused for another reason than the password keeps the session', async () => {
    cluster = await startFakeCluster(1);
    cluster.state.users.set('alice', 'pw');
    let lost = 0;
    const l = makeLink(cluster, { onSessionLost: () => { lost++; } });
    const { token } = await l.call('login', { user: 'alice', password: 'pw', peer: PEER, clientId: CLIENT_ID });
    l.startSession('alice', token, 'pw');
    // A tracker that has not received the account by replication yet.
    cluster.state.sessions.clear();
    cluster.state.users.delete('alice');
    await assert.rejects(l.call('list_groups', {}), (e) => codeOf(e) === 'UNAVAILABLE');
    assert.equal(lost, 0);
    assert.equal(l.user, 'alice');
    // Once it has caught up, the next call renews the session and goes through.
    cluster.state.users.set('alice', 'pw');
    assert.deepEqual(await l.call('list_groups', {}), { groups: [] });
  });

  test('a heartbeat asked for while one is in flight follows it, with the share list of then', async () => {
    cluster = await startFakeCluster(1);
    cluster.state.users.set('alice', 'pw');
    let shares: Array<{ group: string; infoHash: string }> = [];
    const l = makeLink(cluster, { timers: manualIntervals(), shares: () => shares });
    const { token } = await l.call('login', { user: 'alice', password: 'pw', peer: PEER, clientId: CLIENT_ID });
    l.startSession('alice', token, 'pw'); // first heartbeat in flight, no shares
    shares = [{ group: 'g1', infoHash: 'b'.repeat(40) }];
    const a = l.heartbeatNow();
    const b = l.heartbeatNow();
    await Promise.all([a, b]);
    const beats = cluster.state.seen.filter((s) => s.op === 'heartbeat');
    assert.equal(beats.length, 2);
    assert.deepEqual(beats.map((s) => (s.args['shares'] as unknown[]).length), [0, 1]);
  });

  test('heartbeats: one at login, one per interval, one right after failing over', async () => {
    cluster = await startFakeCluster(2);
    cluster.state.users.set('alice', 'pw');
    const timers = manualIntervals();
    const shares = [{ group: 'g1', infoHash: 'a'.repeat(40) }];
    const l = makeLink(cluster, { timers, shares: () => shares });
    const { token } = await l.call('login', { user: 'alice', password: 'pw', peer: PEER, clientId: CLIENT_ID });
    const beats = (): FakeCluster['state']['seen'] => cluster!.state.seen.filter((s) => s.op === 'heartbeat');
    l.startSession('alice', token, 'pw');
    await until(() => beats().length === 1);
    assert.deepEqual(beats()[0]!.args, { peer: PEER, clientId: CLIENT_ID, shares });
    timers.fire();
    await until(() => beats().length === 2);
    // The tracker holding the connection dies: the link reconnects to the next one by itself and
    // renews presence there at once, without waiting for the interval.
    await cluster.kill(0);
    await until(() => beats().length === 3);
    assert.equal(beats()[2]!.tracker, 1);
    assert.equal(beats()[2]!.token, token);
    l.endSession();
    assert.equal(timers.count(), 0);
  });
});
