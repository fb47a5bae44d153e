import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createPublicKey } from 'node:crypto';
import { verifyTicket } from '../../../src/protocol/ticket.js';
import { LEASE_MS } from '../../../src/tracker/presence.js';
import { from, infoFor, makeFixture, refuses, SHA } from './fixture.js';

async function world() {
  const f = makeFixture();
  const alice = (await f.signUp('alice', { peer: '10.0.0.1:7001' })).caller;
  const bob = (await f.signUp('bob', { peer: '10.0.0.2:7002' })).caller;
  const carol = (await f.signUp('carol', { peer: '10.0.0.3:7003' })).caller;
  const g = f.domain.groups;
  g.createGroup(alice, 'club');
  g.joinGroup(bob, 'club');
  g.acceptRequest(alice, 'club', 'bob');
  const up = (c: typeof alice, name: string, seed = 0, peer = '10.0.0.9:9', connId: number | null = null) =>
    f.domain.files.uploadFile(c, { group: 'club', info: infoFor(name, 100_000, seed).info, sha256: SHA, peer, clientId: c.clientId }, from('10.0.0.9', connId));
  return { f, files: f.domain.files, alice, bob, carol, up };
}

describe('files', () => {
  test('upload_file: added, then the same content from another member makes a seeder', async () => {
    const { files, alice, bob, up } = await world();
    const a = up(alice, 'movie.mkv');
    assert.equal(a.status, 'added');
    assert.equal(a.infoHash, infoFor('movie.mkv').infoHash);
    assert.deepEqual(up(bob, 'movie.mkv'), { infoHash: a.infoHash, status: 'seeder' });
    // Uploading again from the same client is harmless.
    assert.equal(up(bob, 'movie.mkv').status, 'seeder');
    assert.deepEqual(files.listFiles(bob, 'club').files, [{ name: 'movie.mkv', size: 100_000, infoHash: a.infoHash, seeders: 2, online: 2 }]);
  });

  test('upload_file: other content under a taken name is NAME_CONFLICT', async () => {
    const { alice, bob, up } = await world();
    up(alice, 'movie.mkv', 1);
    await refuses('NAME_CONFLICT', () => up(bob, 'movie.mkv', 2));
  });

  test('upload_file: non-members get NOT_MEMBER, broken metadata BAD_MANIFEST', async () => {
    const { files, alice, carol, up } = await world();
    await refuses('NOT_MEMBER', () => up(carol, 'x.bin'));
    for (const info of ['', 'aGVsbG8=', Buffer.from('d4:name1:xe').toString('base64')]) {
      await refuses('BAD_MANIFEST', () => files.uploadFile(alice, { group: 'club', info, sha256: SHA, peer: 'h:1', clientId: alice.clientId }, from()));
    }
  });

  test('list_files: members only; seeders are distinct users with live shares, online counts live leases', async () => {
    const { f, files, alice, bob, carol, up } = await world();
    await refuses('NOT_MEMBER', () => files.listFiles(carol, 'club'));
    assert.deepEqual(files.listFiles(alice, 'club').files, []);
    up(alice, 'a.txt');
    up(bob, 'a.txt');
    up(alice, 'b.txt', 7);
    // A second client of bob's shares a.txt too: still one seeder user, two online clients.
    const bob2 = (await f.domain.accounts.login('bob', 'pw-bob', '10.0.0.22:1', 'bbbbbbbbbbbbbbbb', from())).token;
    const bobC2 = f.domain.accounts.authenticate(bob2);
    f.domain.files.announce(bobC2, { group: 'club', infoHash: infoFor('a.txt').infoHash, peer: '10.0.0.22:1', clientId: bobC2.clientId }, from());
    let list = files.listFiles(alice, 'club').files;
    assert.deepEqual(list.map((x) => [x.name, x.seeders, x.online]), [['a.txt', 2, 3], ['b.txt', 1, 1]]);
    // Leases lapse: the shares stay (seeders) but nobody is online.
    f.clock.advance(LEASE_MS + 1);
    list = files.listFiles(alice, 'club').files;
    assert.deepEqual(list.map((x) => [x.name, x.seeders, x.online]), [['a.txt', 2, 0], ['b.txt', 1, 0]]);
  });

  test('announce: adds a seeder of a known file; NO_SUCH_FILE otherwise', async () => {
    const { files, alice, bob, up } = await world();
    const { infoHash } = up(alice, 'a.txt');
    await refuses('NO_SUCH_FILE', () => files.announce(bob, { group: 'club', infoHash: 'f'.repeat(40), peer: 'h:1', clientId: bob.clientId }, from()));
    assert.deepEqual(files.announce(bob, { group: 'club', infoHash, peer: '10.0.0.2:7002', clientId: bob.clientId }, from()), {});
    assert.equal(files.listFiles(alice, 'club').files[0]!.seeders, 2);
  });

  test('stop_share: NO_SUCH_FILE, NOT_SHARING, then the share stops', async () => {
    const { f, files, alice, bob, up } = await world();
    const { infoHash } = up(alice, 'a.txt');
    const args = (name: string, c = alice) => ({ group: 'club', name, peer: 'h:1', clientId: c.clientId });
    await refuses('NO_SUCH_FILE', () => files.stopShare(alice, args('nope.txt')));
    await refuses('NOT_SHARING', () => files.stopShare(bob, args('a.txt', bob)));
    assert.deepEqual(files.stopShare(alice, args('a.txt')), { infoHash });
    await refuses('NOT_SHARING', () => files.stopShare(alice, args('a.txt')));
    assert.equal(files.listFiles(bob, 'club').files[0]!.seeders, 0);
    assert.deepEqual(f.presence.get('alice', alice.clientId)?.shares, []);
    await refuses('NO_SEEDER', () => files.getPeers(bob, 'club', 'a.txt'));
  });

  test('get_peers: manifest, online sharers except the caller\'s own client, and a verifiable ticket', async () => {
    const { f, files, alice, bob, carol, up } = await world();
    await refuses('NOT_MEMBER', () => files.getPeers(carol, 'club', 'a.txt'));
    await refuses('NO_SUCH_FILE', () => files.getPeers(bob, 'club', 'a.txt'));
    const { info, infoHash } = infoFor('a.txt');
    up(alice, 'a.txt', 0, '10.0.0.1:7001');
    // The only sharer is the caller's own client.
    await refuses('NO_SEEDER', () => files.getPeers(alice, 'club', 'a.txt'));
    const r = files.getPeers(bob, 'club', 'a.txt');
    assert.equal(r.infoHash, infoHash);
    assert.equal(r.info, info);
    assert.equal(r.sha256, SHA);
    assert.equal(r.size, 100_000);
    assert.deepEqual(r.peers, [{ addr: '10.0.0.1:7001', user: 'alice', clientId: alice.clientId }]);
    const keys = new Map([[f.store.origin, createPublicKey({ key: Buffer.from(f.domain.deps.identity.publicKeyB64, 'base64'), format: 'der', type: 'spki' })]]);
    const t = verifyTicket(r.ticket, keys, f.clock.now());
    assert.deepEqual({ user: t.user, group: t.group, infoHash: t.infoHash, origin: t.origin }, { user: 'bob', group: 'club', infoHash, origin: f.store.origin });
    assert.ok(t.expiresAt > f.clock.now());
  });

  test('get_peers: a sharer whose lease lapsed or whose connection closed is not handed out', async () => {
    const { f, files, alice, bob, up } = await world();
    up(alice, 'a.txt', 0, '10.0.0.1:7001', 42);
    assert.equal(files.getPeers(bob, 'club', 'a.txt').peers.length, 1);
    f.presence.dropConnection(42);
    await refuses('NO_SEEDER', () => files.getPeers(bob, 'club', 'a.txt'));
    // A heartbeat brings it back; the lease then lapses after 15 s without one.
    f.domain.accounts.heartbeat(alice, '10.0.0.1:7001', alice.clientId, [], from());
    assert.equal(files.getPeers(bob, 'club', 'a.txt').peers.length, 1);
    f.clock.advance(LEASE_MS);
    await refuses('NO_SEEDER', () => files.getPeers(bob, 'club', 'a.txt'));
  });

  test('get_peers: a user logged out is not handed out, and comes back at the next login', async () => {
    const { f, files, alice, bob, up } = await world();
    up(alice, 'a.txt');
    f.domain.accounts.logout(alice);
    await refuses('NO_SEEDER', () => files.getPeers(bob, 'club', 'a.txt'));
    await f.domain.accounts.login('alice', 'pw-alice', '10.0.0.1:7001', alice.clientId, from());
    assert.deepEqual(files.getPeers(bob, 'club', 'a.txt').peers.map((p) => p.addr), ['10.0.0.1:7001']);
  });
});
