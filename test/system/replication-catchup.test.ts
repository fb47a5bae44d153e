/**
 * A tracker that was down while 10,000 changes happened catches up when it is back (the time is
 * measured and printed), and a tracker whose data dir was wiped comes back as a new origin and
 * resyncs everything.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { clusterFixture, type TrackerCluster } from '../helpers/cluster.js';
import { RpcTestClient } from '../helpers/tracker.js';

const fx = clusterFixture('coterie-repl-catchup-');
let c: TrackerCluster | null = null;

/** Makes `groups` groups on the tracker at `port` (2 changes each: group + owner membership). */
async function makeGroups(port: number, token: string, prefix: string, groups: number): Promise<void> {
  const conns = [fx.track(await RpcTestClient.connect(port)), fx.track(await RpcTestClient.connect(port))];
  const window = 64;
  let next = 0;
  await Promise.all(conns.map(async (x) => {
    const inflight = new Set<Promise<void>>();
    while (next < groups) {
      const i = next++;
      const p = x.ok('create_group', { group: `${prefix}${i}` }, token).then(() => { inflight.delete(p); });
      inflight.add(p);
      if (inflight.size >= window) await Promise.race(inflight);
    }
    await Promise.all(inflight);
  }));
}

test('a tracker that missed 10,000 changes catches up', async () => {
  c = await fx.start({ n: 3, sub: 'c' });
  const a = fx.track(await RpcTestClient.connect(c.ports[0]!));
  await a.ok('create_user', { user: 'alice', password: 'pw' });
  const tok = (await a.ok<{ token: string }>('login', { user: 'alice', password: 'pw', peer: '127.0.0.1:7000', clientId: 'a'.repeat(16) })).token;
  await c.waitConverged(10_000);
  await c.kill9(2);
  const before3 = Date.now();
  await makeGroups(c.ports[0]!, tok, 'g', 5000);
  const writeMs = Date.now() - before3;
  const st1 = (await c.status(0))!;
  const origin1 = st1.origin;
  assert.ok(st1.versionVector[origin1]! >= 10_000);
  await c.waitConverged(10_000); // 1 and 2
  const target = (await c.status(0))!.versionVector;
  const t0 = Date.now();
  await c.start(2);
  const catchUp = await c.waitVector(2, target, 60_000);
  const total = Date.now() - t0;
  await c.waitConverged(10_000);
  console.log(`10,000 changes written in ${writeMs} ms; tracker 3 caught up ${catchUp} ms after it was listening (${total} ms including its start)`);
  const st3 = (await c.status(2))!;
  assert.equal(st3.digest, st1.digest);
  assert.ok(total < 60_000);
});

test('a wiped tracker comes back as a new origin and resyncs everything', async () => {
  assert.ok(c);
  const old = (await c.status(2))!;
  await c.wipe(2);
  const t0 = Date.now();
  await c.start(2);
  await c.waitConverged(60_000);
  const ms = Date.now() - t0;
  const fresh = (await c.status(2))!;
  const st1 = (await c.status(0))!;
  console.log(`wiped tracker 3 resynced ${Object.values(st1.versionVector).reduce((x, y) => x + y, 0)} changes in ${ms} ms`);
  assert.notEqual(fresh.origin, old.origin, 'a wiped data dir is a new origin');
  assert.equal(fresh.digest, st1.digest);
  // Its old origin's changes came back too (they are part of everyone's log).
  assert.equal(fresh.versionVector[old.origin], old.versionVector[old.origin]);
  // And the others learned the new origin (its key row).
  assert.ok(st1.versionVector[fresh.origin]! >= 1);
  // A session opened on tracker 1 works on the resynced tracker.
  const x = fx.track(await RpcTestClient.connect(c.ports[2]!));
  const r = await x.ok<{ groups: unknown[] }>('list_groups', {}, await tokenOnOne());
  assert.ok(r.groups.length >= 5000);
});

async function tokenOnOne(): Promise<string> {
  const a = fx.track(await RpcTestClient.connect(c!.ports[0]!));
  const tok = (await a.ok<{ token: string }>('login', { user: 'alice', password: 'pw', peer: '127.0.0.1:7000', clientId: 'b'.repeat(16) })).token;
  await c!.waitConverged(10_000);
  return tok;
}
