/**
 * Trackers partitioned through proxies keep accepting every command on both sides, and converge
 * when healed, with conflicts resolved the same way everywhere: the same user id created on both
 * sides (first claim wins, the loser's session gets CLAIM_LOST), the same group id, and a client's
 * presence seen on the far side of the partition once healed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { manifestFromHashes } from '../../src/swarm/manifest.js';
import { clusterFixture, type TrackerCluster } from '../helpers/cluster.js';
import { RpcTestClient } from '../helpers/tracker.js';

const fx = clusterFixture('coterie-repl-part-');
let c: TrackerCluster | null = null;

async function client(i: number): Promise<RpcTestClient> {
  return fx.track(await RpcTestClient.connect(c!.ports[i]!));
}

async function login(x: RpcTestClient, user: string, clientId: string, password = 'pw'): Promise<string> {
  return (await x.ok<{ token: string }>('login', { user, password, peer: `127.0.0.1:${7000 + clientId.charCodeAt(0)}`, clientId })).token;
}

test('partitioned trackers accept writes on both sides and converge when healed', async () => {
  c = await fx.start({ n: 3, proxied: true });
  const [x0, x2] = [await client(0), await client(2)];
  await x0.ok('create_user', { user: 'owner', password: 'pw' });
  await c.waitConverged(10_000);
  c.isolate(2);
  // Both sides claim "dup" (user) and "team" (group), and write more.
  await x0.ok('create_user', { user: 'dup', password: 'left' });
  await new Promise((r) => setTimeout(r, 20)); // the left claim is older
  await x2.ok('create_user', { user: 'dup', password: 'right' });
  const tokLeft = await login(x0, 'dup', 'a'.repeat(16), 'left');
  const tokRight = await login(x2, 'dup', 'b'.repeat(16), 'right');
  const tok0 = await login(x0, 'owner', 'c'.repeat(16));
  const tok2 = await login(x2, 'owner', 'd'.repeat(16));
  await x0.ok('create_group', { group: 'team' }, tokLeft);
  await x2.ok('create_group', { group: 'team' }, tokRight);
  for (let i = 0; i < 50; i++) {
    await x0.ok('create_group', { group: `left${i}` }, tok0);
    await x2.ok('create_group', { group: `right${i}` }, tok2);
  }
  // Trackers 1 and 2 agree; 3 differs while cut off.
  await c.waitConverged(10_000, [0, 1]);
  assert.notEqual((await c.status(2))!.digest, (await c.status(0))!.digest);
  const x1 = await client(1);
  const tok1 = await login(x1, 'owner', 'e'.repeat(16));
  const onLeft = (await x1.ok<{ groups: { group: string }[] }>('list_groups', {}, tok1)).groups.map((g) => g.group);
  assert.ok(onLeft.includes('left49') && !onLeft.includes('right0'));

  const t0 = Date.now();
  c.healAll();
  const ms = await c.waitConverged(20_000);
  console.log(`partition healed: converged ${ms} ms after (${Date.now() - t0} ms wall)`);
  for (const i of [0, 1, 2]) {
    const x = await client(i);
    const tok = await login(x, 'owner', String.fromCharCode(0x61 + i).repeat(16));
    const groups = (await x.ok<{ groups: { group: string; owner: string }[] }>('list_groups', {}, tok)).groups;
    assert.ok(groups.some((g) => g.group === 'left49') && groups.some((g) => g.group === 'right49'));
    // The first claim of "dup" (on the left) won everywhere: its password, its group.
    assert.equal(groups.find((g) => g.group === 'team')!.owner, 'dup');
    const right = await x.call('login', { user: 'dup', password: 'right', peer: '127.0.0.1:7999', clientId: 'f'.repeat(16) });
    assert.equal(right.ok, false);
    if (!right.ok) assert.equal(right.error.code, 'WRONG_PASSWORD');
    await x.ok('list_groups', {}, tokLeft);
    const lost = await x.call('list_groups', {}, tokRight);
    assert.equal(lost.ok, false);
    if (!lost.ok) assert.equal(lost.error.code, 'CLAIM_LOST');
  }
});

test('presence: a client online on one tracker is a peer on the others, and leaves when it goes', async () => {
  assert.ok(c);
  const [x0, x1] = [await client(0), await client(1)];
  const tokOwner = await login(x0, 'owner', '1'.repeat(16));
  await x0.ok('create_group', { group: 'share' }, tokOwner);
  // A second user joins through tracker 2 and is accepted through tracker 1.
  await x1.ok('create_user', { user: 'bob', password: 'pw' });
  await c.waitConverged(10_000);
  const tokBob = await login(x1, 'bob', '2'.repeat(16));
  await x1.ok('join_group', { group: 'share' }, tokBob);
  await c.waitConverged(10_000);
  await x0.ok('accept_request', { group: 'share', user: 'bob' }, tokOwner);
  // The owner shares a file through tracker 1, from client 1111...
  const info = manifestFromHashes('a.txt', 5, 16384, Buffer.alloc(20, 7)).infoBytes.toString('base64');
  const up = await x0.call('upload_file', { group: 'share', info, sha256: 'e'.repeat(64), peer: '127.0.0.1:7049', clientId: '1'.repeat(16) }, tokOwner);
  assert.ok(up.ok, JSON.stringify(up));
  // ...and bob, on tracker 2, gets it as a peer.
  let peers: { addr: string }[] = [];
  const t0 = Date.now();
  while (Date.now() - t0 < 5000) {
    const r = await x1.call('get_peers', { group: 'share', name: 'a.txt' }, tokBob);
    if (r.ok) { peers = (r.result as { peers: { addr: string }[] }).peers; break; }
    await new Promise((res) => setTimeout(res, 20));
  }
  assert.deepEqual(peers.map((p) => p.addr), ['127.0.0.1:7049']);
  console.log(`presence: owner's client visible as a peer on tracker 2 after ${Date.now() - t0} ms`);
  // The owner's connection closes: its lease is dropped on tracker 1 and the removal gossiped.
  x0.close();
  const t1 = Date.now();
  for (;;) {
    const r = await x1.call('get_peers', { group: 'share', name: 'a.txt' }, tokBob);
    if (!r.ok && r.error.code === 'NO_SEEDER') break;
    assert.ok(Date.now() - t1 < 5000, 'the closed client is still handed out');
    await new Promise((res) => setTimeout(res, 20));
  }
  console.log(`presence: closed client gone on tracker 2 after ${Date.now() - t1} ms`);
});

test('presence: a client held by a tracker that dies is dropped elsewhere when its lease runs out', { timeout: 40_000 }, async () => {
  assert.ok(c);
  c.healAll();
  const [x0, x1] = [await client(0), await client(1)];
  const tokOwner = await login(x0, 'owner', '3'.repeat(16));
  const tokBob = await login(x1, 'bob', '4'.repeat(16));
  // The owner's second client announces the file through tracker 1.
  await x0.ok('announce', { group: 'share', infoHash: await infoHashOf(x0, tokOwner), peer: '127.0.0.1:7051', clientId: '3'.repeat(16) }, tokOwner);
  const peersOf = async () => {
    const r = await x1.call('get_peers', { group: 'share', name: 'a.txt' }, tokBob);
    return r.ok ? (r.result as { peers: { addr: string }[] }).peers.map((p) => p.addr) : [];
  };
  const t0 = Date.now();
  while (!(await peersOf()).includes('127.0.0.1:7051')) {
    assert.ok(Date.now() - t0 < 5000, 'the announced client never showed up on tracker 2');
    await new Promise((res) => setTimeout(res, 20));
  }
  // Its tracker dies without a word: no removal is gossiped; the copy lapses with the lease.
  await c.kill9(0);
  const t1 = Date.now();
  while ((await peersOf()).includes('127.0.0.1:7051')) {
    assert.ok(Date.now() - t1 < 25_000, 'a client of a dead tracker is handed out long after its lease');
    await new Promise((res) => setTimeout(res, 200));
  }
  const gone = Date.now() - t1;
  console.log(`presence: client of a killed tracker dropped on tracker 2 after ${gone} ms (lease 15 s)`);
  assert.ok(gone > 5_000, 'dropped before the lease could have run out: was it really gossiped as live?');
});

async function infoHashOf(x: RpcTestClient, tok: string): Promise<string> {
  const files = (await x.ok<{ files: { name: string; infoHash: string }[] }>('list_files', { group: 'share' }, tok)).files;
  return files.find((f) => f.name === 'a.txt')!.infoHash;
}
