/**
 * Client failover: a client logged in on one tracker whose tracker is killed (SIGKILL) goes on
 * with the next tracker of tracker_info without logging in again (sessions are replicated rows),
 * and its presence follows it, so other clients still get it as a peer.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { silentLogger } from '../../src/common/log.js';
import { TrackerLink } from '../../src/client/tracker-link.js';
import { manifestFromHashes } from '../../src/swarm/manifest.js';
import { clusterFixture, type TrackerCluster } from '../helpers/cluster.js';
import { RpcTestClient } from '../helpers/tracker.js';

const fx = clusterFixture('coterie-failover-');
let c: TrackerCluster | null = null;

/** A TrackerLink whose sockets record every op it sends. */
function recordingLink(ports: number[], peer: string, clientId: string, sent: string[]): TrackerLink {
  const link = new TrackerLink({
    trackers: ports.map((port) => ({ host: '127.0.0.1', port })),
    peer, clientId, shares: () => [], logger: silentLogger(), heartbeatIntervalMs: 500,
    connect: (e) => {
      const s: Socket = connect({ host: e.host, port: e.port });
      const write = s.write.bind(s) as (chunk: unknown, ...rest: unknown[]) => boolean;
      (s as unknown as { write: typeof write }).write = (chunk: unknown, ...rest: unknown[]) => {
        for (const line of String(chunk).split('\n')) {
          if (line.trim()) sent.push((JSON.parse(line) as { op: string }).op + `@${e.port}`);
        }
        return write(chunk, ...rest);
      };
      return s;
    },
  });
  return fx.track(link);
}

test('a logged-in client whose tracker is killed continues on the next one without logging in again', async () => {
  c = await fx.start({ n: 3 });
  const sent: string[] = [];
  const link = recordingLink(c.ports, '127.0.0.1:7100', 'a'.repeat(16), sent);
  await link.call('create_user', { user: 'alice', password: 'pw' });
  const r = await link.call('login', { user: 'alice', password: 'pw', peer: '127.0.0.1:7100', clientId: 'a'.repeat(16) });
  link.startSession('alice', r.token, 'pw');
  await link.call('create_group', { group: 'g' });
  const first = link.currentTracker.port;
  assert.equal(first, c.ports[0]);
  await c.waitConverged(10_000);

  // Bob, on tracker 3, is a member and will ask for alice's file.
  const bob = fx.track(await RpcTestClient.connect(c.ports[2]!));
  await bob.ok('create_user', { user: 'bob', password: 'pw' });
  const tokBob = (await bob.ok<{ token: string }>('login', { user: 'bob', password: 'pw', peer: '127.0.0.1:7200', clientId: 'b'.repeat(16) })).token;
  await bob.ok('join_group', { group: 'g' }, tokBob);
  await c.waitConverged(10_000);
  await link.call('accept_request', { group: 'g', user: 'bob' });
  const info = manifestFromHashes('f.bin', 1000, 16384, Buffer.alloc(20, 3)).infoBytes.toString('base64');
  await link.call('upload_file', { group: 'g', info, sha256: 'e'.repeat(64), peer: '127.0.0.1:7100', clientId: 'a'.repeat(16) });
  await c.waitConverged(10_000);

  await c.kill9(0);
  const t0 = Date.now();
  await link.call('create_group', { group: 'after-failover' });
  console.log(`failover: first call after the kill answered by port ${link.currentTracker.port} in ${Date.now() - t0} ms`);
  assert.notEqual(link.currentTracker.port, first);
  await link.heartbeatNow();
  const logins = sent.filter((s) => s.startsWith('login@'));
  assert.deepEqual(logins, [`login@${first}`], 'logged in exactly once, on the first tracker');
  assert.ok(sent.some((s) => s.startsWith('heartbeat@') && !s.endsWith(`@${first}`)), 'heartbeats moved to the new tracker');

  // Alice's presence moved with her: bob, on tracker 3, still gets her as a peer.
  const t1 = Date.now();
  let peers: string[] = [];
  while (Date.now() - t1 < 20_000) {
    const g = await bob.call('get_peers', { group: 'g', name: 'f.bin' }, tokBob);
    if (g.ok) { peers = (g.result as { peers: { addr: string }[] }).peers.map((p) => p.addr); break; }
    await new Promise((res) => setTimeout(res, 50));
  }
  assert.deepEqual(peers, ['127.0.0.1:7100']);
  const groups = (await bob.ok<{ groups: { group: string }[] }>('list_groups', {}, tokBob)).groups.map((g) => g.group);
  assert.ok(groups.includes('after-failover'));
  link.close();
});
