import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { HybridClock } from '../../../src/tracker/store/hlc.js';
import { MemoryStore } from '../../../src/tracker/store/memory-store.js';
import { rowKey } from '../../../src/tracker/store/merge.js';
import { from, infoFor, makeFixture, refuses, SHA, T0 } from './fixture.js';

async function world() {
  const f = makeFixture();
  const alice = (await f.signUp('alice')).caller;
  const bob = (await f.signUp('bob')).caller;
  const carol = (await f.signUp('carol')).caller;
  const g = f.domain.groups;
  g.createGroup(alice, 'club');
  return { f, g, alice, bob, carol };
}

describe('groups', () => {
  test('create_group: owner is a member; taken and invalid ids are refused', async () => {
    const { g, alice, bob } = await world();
    assert.ok(g.isMember('club', 'alice'));
    assert.deepEqual(g.listGroups(), [{ group: 'club', owner: 'alice', members: 1 }]);
    await refuses('GROUP_EXISTS', () => g.createGroup(bob, 'club'));
    await refuses('INVALID_NAME', () => g.createGroup(bob, 'bad name'));
    await refuses('INVALID_NAME', () => g.createGroup(bob, ''));
  });

  test('every group op on an unknown group is NO_SUCH_GROUP', async () => {
    const { f, g, alice } = await world();
    await refuses('NO_SUCH_GROUP', () => g.joinGroup(alice, 'nope'));
    await refuses('NO_SUCH_GROUP', () => g.leaveGroup(alice, 'nope'));
    await refuses('NO_SUCH_GROUP', () => g.listRequests(alice, 'nope'));
    await refuses('NO_SUCH_GROUP', () => g.acceptRequest(alice, 'nope', 'bob'));
    await refuses('NO_SUCH_GROUP', () => g.rejectRequest(alice, 'nope', 'bob'));
    await refuses('NO_SUCH_GROUP', () => f.domain.files.listFiles(alice, 'nope'));
    await refuses('NO_SUCH_GROUP', () => f.domain.files.getPeers(alice, 'nope', 'x'));
  });

  test('join: request, then REQUEST_PENDING; a member gets ALREADY_MEMBER', async () => {
    const { g, alice, bob } = await world();
    await refuses('ALREADY_MEMBER', () => g.joinGroup(alice, 'club'));
    g.joinGroup(bob, 'club');
    await refuses('REQUEST_PENDING', () => g.joinGroup(bob, 'club'));
    assert.deepEqual(g.listRequests(alice, 'club'), ['bob']);
  });

  test('only the owner lists, accepts and rejects requests', async () => {
    const { g, bob, carol } = await world();
    g.joinGroup(bob, 'club');
    await refuses('NOT_OWNER', () => g.listRequests(bob, 'club'));
    await refuses('NOT_OWNER', () => g.acceptRequest(carol, 'club', 'bob'));
    await refuses('NOT_OWNER', () => g.rejectRequest(carol, 'club', 'bob'));
  });

  test('accept: makes a member and closes the request; NO_REQUEST without one', async () => {
    const { g, alice, bob, carol } = await world();
    await refuses('NO_REQUEST', () => g.acceptRequest(alice, 'club', 'carol'));
    g.joinGroup(bob, 'club');
    g.acceptRequest(alice, 'club', 'bob');
    assert.ok(g.isMember('club', 'bob'));
    assert.deepEqual(g.listRequests(alice, 'club'), []);
    await refuses('NO_REQUEST', () => g.acceptRequest(alice, 'club', 'bob'));
    await refuses('ALREADY_MEMBER', () => g.joinGroup(bob, 'club'));
    assert.equal(g.listGroups()[0]!.members, 2);
    assert.ok(!g.isMember('club', carol.user));
  });

  test('reject: closes the request, the user may ask again', async () => {
    const { g, alice, bob } = await world();
    g.joinGroup(bob, 'club');
    g.rejectRequest(alice, 'club', 'bob');
    assert.ok(!g.isMember('club', 'bob'));
    assert.deepEqual(g.listRequests(alice, 'club'), []);
    await refuses('NO_REQUEST', () => g.rejectRequest(alice, 'club', 'bob'));
    g.joinGroup(bob, 'club');
    assert.deepEqual(g.listRequests(alice, 'club'), ['bob']);
  });

  test('leave: a member leaves; a non-member gets NOT_MEMBER; they may join again', async () => {
    const { g, alice, bob, carol } = await world();
    await refuses('NOT_MEMBER', () => g.leaveGroup(carol, 'club'));
    g.joinGroup(bob, 'club');
    g.acceptRequest(alice, 'club', 'bob');
    assert.deepEqual(g.leaveGroup(bob, 'club'), {});
    assert.ok(!g.isMember('club', 'bob'));
    await refuses('NOT_MEMBER', () => g.leaveGroup(bob, 'club'));
    g.joinGroup(bob, 'club');
    g.acceptRequest(alice, 'club', 'bob');
    assert.ok(g.isMember('club', 'bob'));
  });

  test('the owner alone cannot leave (OWNER_LAST_MEMBER)', async () => {
    const { g, alice } = await world();
    await refuses('OWNER_LAST_MEMBER', () => g.leaveGroup(alice, 'club'));
    assert.equal(g.get('club').owner, 'alice');
  });

  test('the owner leaving hands the group to the member added earliest', async () => {
    const { f, g, alice, bob, carol } = await world();
    g.joinGroup(bob, 'club');
    g.joinGroup(carol, 'club');
    g.acceptRequest(alice, 'club', 'carol');
    f.clock.advance(10);
    g.acceptRequest(alice, 'club', 'bob');
    assert.deepEqual(g.leaveGroup(alice, 'club'), { newOwner: 'carol' });
    assert.equal(g.get('club').owner, 'carol');
    assert.ok(!g.isMember('club', 'alice'));
    assert.ok(g.isMember('club', 'carol') && g.isMember('club', 'bob'));
    await refuses('NOT_OWNER', () => g.listRequests(alice, 'club'));
    assert.deepEqual(g.listRequests(carol, 'club'), []);
    assert.deepEqual(g.listGroups(), [{ group: 'club', owner: 'carol', members: 2 }]);
    // The new owner can hand over in turn.
    assert.deepEqual(g.leaveGroup(carol, 'club'), { newOwner: 'bob' });
    await refuses('OWNER_LAST_MEMBER', () => g.leaveGroup(bob, 'club'));
  });

  test("leaving stops the user's shares in that group", async () => {
    const { f, g, alice, bob } = await world();
    g.joinGroup(bob, 'club');
    g.acceptRequest(alice, 'club', 'bob');
    const { info, infoHash } = infoFor('song.ogg');
    f.domain.files.uploadFile(bob, { group: 'club', info, sha256: SHA, peer: '10.0.0.2:1', clientId: bob.clientId }, from());
    assert.equal(f.domain.files.listFiles(alice, 'club').files[0]!.seeders, 1);
    g.leaveGroup(bob, 'club');
    assert.equal(f.store.get('share', rowKey('club', infoHash, 'bob', bob.clientId))!.live, false);
    const files = f.domain.files.listFiles(alice, 'club').files;
    assert.equal(files[0]!.seeders, 0);
    assert.equal(files[0]!.online, 0);
    assert.deepEqual(f.presence.get('bob', bob.clientId)?.shares, []);
    await refuses('NO_SEEDER', () => f.domain.files.getPeers(alice, 'club', 'song.ogg'));
  });

  test('list_groups lists every group to anyone, in id order', async () => {
    const { g, bob, carol } = await world();
    g.createGroup(bob, 'b-team');
    g.createGroup(carol, 'z');
    assert.deepEqual(g.listGroups().map((x) => [x.group, x.owner]), [['b-team', 'bob'], ['club', 'alice'], ['z', 'carol']]);
  });

  test('two trackers create the same group id: the earlier claim wins and the loser\'s members do not leak in', async () => {
    const { f, g, alice, bob } = await world(); // alice's "club" on this tracker at T0
    g.joinGroup(bob, 'club');
    g.acceptRequest(alice, 'club', 'bob');
    // Another tracker (clock 5 s behind) created "club" for mallory before hearing of ours.
    const other = new MemoryStore({ clock: new HybridClock(() => T0 - 5_000) });
    const created = { hlc: other.clock.now(), origin: other.origin };
    other.commitLocal([
      { kind: 'user', key: 'mallory', value: { salt: '00', hash: 'scrypt:1024:8:1:00', created } },
      { kind: 'group', key: 'club', value: { created, owner: 'mallory', ownerStamp: created } },
      { kind: 'member', key: rowKey('club', 'mallory'), value: { adds: [{ at: created, claim: created }], removes: [] } },
    ]);
    f.store.applyRemote(other.changesSince({}, 100));
    assert.equal(g.get('club').owner, 'mallory');
    assert.ok(!g.isMember('club', 'alice'));
    assert.ok(!g.isMember('club', 'bob'));
    await refuses('NOT_OWNER', () => g.listRequests(alice, 'club'));
    await refuses('NOT_MEMBER', () => f.domain.files.listFiles(bob, 'club'));
    assert.deepEqual(g.listGroups(), [{ group: 'club', owner: 'mallory', members: 1 }]);
  });
});
