/**
 * Three tracker processes in sync: a write acknowledged by one is visible on the others within
 * milliseconds (lag measured and printed), and a write acknowledged by a tracker that is killed
 * with SIGKILL before it could ship it (its links cut) reaches the others once it is back.
 * Status shows the version vector, every peer link and the digest.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { clusterFixture, type TrackerCluster } from '../helpers/cluster.js';
import { RpcTestClient, TRACKER_MAIN } from '../helpers/tracker.js';

const fx = clusterFixture('coterie-repl-basic-');
let c: TrackerCluster | null = null;

async function client(port: number): Promise<RpcTestClient> {
  return fx.track(await RpcTestClient.connect(port));
}

/** Polls `probe` as fast as the loopback allows until it is true; resolves with the ms it took. */
async function until(probe: () => Promise<boolean>, timeoutMs: number, what: string): Promise<number> {
  const t0 = performance.now();
  while (!(await probe())) {
    if (performance.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
  }
  return performance.now() - t0;
}

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((s.length - 1) * p))]!;
}

test('a write on one tracker is visible on the others at once, and status shows the links', async () => {
  c = await fx.start({ n: 3, sub: 'a', proxied: true });
  const [a, b, d] = [await client(c.ports[0]!), await client(c.ports[1]!), await client(c.ports[2]!)];
  await a.ok('create_user', { user: 'alice', password: 'pw' });
  // The account made on tracker 1 logs in on tracker 2 and 3.
  let tokB = '';
  await until(async () => {
    const r = await b.call('login', { user: 'alice', password: 'pw', peer: '127.0.0.1:7001', clientId: 'a'.repeat(16) });
    if (r.ok) tokB = (r.result as { token: string }).token;
    return r.ok;
  }, 5000, 'alice on tracker 2');
  const tokA = (await a.ok<{ token: string }>('login', { user: 'alice', password: 'pw', peer: '127.0.0.1:7000', clientId: 'b'.repeat(16) })).token;
  const tokD = (await d.ok<{ token: string }>('login', { user: 'alice', password: 'pw', peer: '127.0.0.1:7002', clientId: 'c'.repeat(16) })).token;

  // Lag: from the ack of create_group on tracker 1 to the group listed on trackers 2 and 3.
  const lags: number[] = [];
  for (let i = 0; i < 40; i++) {
    const g = `g${i}`;
    await a.ok('create_group', { group: g }, tokA);
    const t0 = performance.now();
    const seen = async (x: RpcTestClient, tok: string) => ((await x.ok<{ groups: { group: string }[] }>('list_groups', {}, tok)).groups.some((y) => y.group === g));
    await Promise.all([
      until(() => seen(b, tokB), 5000, `${g} on 2`).then(() => lags.push(performance.now() - t0)),
      until(() => seen(d, tokD), 5000, `${g} on 3`).then(() => lags.push(performance.now() - t0)),
    ]);
  }
  console.log(`replication lag (ack on 1 -> visible on 2/3, ${lags.length} samples): p50 ${pct(lags, 0.5).toFixed(1)} ms, p99 ${pct(lags, 0.99).toFixed(1)} ms, max ${Math.max(...lags).toFixed(1)} ms`);
  // Every write was seen on both others within the bounded wait above; the lag itself is a figure
  // (printed here, measured by the replication benchmark), not asserted: a timed assertion flakes
  // on a loaded machine, and push delivery is proven in the unit tests with the repair tick off.
  assert.equal(lags.length, 80);

  await c.waitConverged(5000);
  // The peers' acknowledgements (status's lag) follow the rows by a moment: wait for them.
  await until(async () => ((await c!.status(0))?.peers ?? []).every((p) => p.connected && p.lag === 0), 5000, 'acks back on tracker 1');
  const st = (await c.status(0))!;
  assert.equal(typeof st.digest, 'string');
  assert.ok(Object.keys(st.versionVector).length >= 3, 'every tracker wrote at least its key row');
  const peers = st.peers;
  assert.equal(peers.length, 2);
  for (const p of peers) {
    assert.equal(p.connected, true);
    assert.equal(p.lag, 0);
    assert.ok(p.lastContactMsAgo !== null && p.lastContactMsAgo < 5000);
  }
  // The operator's view: `tracker --status <tracker_info> <no>`.
  const cli = spawnSync(process.execPath, [TRACKER_MAIN, c.infoFile, '1', '--status'], { encoding: 'utf8', timeout: 10_000 });
  assert.equal(cli.status, 0, cli.stderr);
  assert.match(cli.stdout, new RegExp(`^digest: +${st.digest}$`, 'm'));
  assert.match(cli.stdout, /^versions: +([0-9a-f]{16}=\d+ ?){3}$/m);
  for (const port of c.ports.slice(1)) assert.match(cli.stdout, new RegExp(`^  127\\.0\\.0\\.1:${port} +up .* lag 0 `, 'm'));
});

test('a write acked by a tracker killed before shipping it reaches the others when it is back', async () => {
  assert.ok(c);
  const a = await client(c.ports[0]!);
  const tokA = (await a.ok<{ token: string }>('login', { user: 'alice', password: 'pw', peer: '127.0.0.1:7000', clientId: 'b'.repeat(16) })).token;
  // Cut tracker 1 off so nothing it acks can leave before the kill.
  c.isolate(0);
  await until(async () => (await c!.status(1))!.peers.filter((p) => p.connected).length === 1, 10_000, 'tracker 2 to see the cut');
  await a.ok('create_group', { group: 'durable' }, tokA);
  await c.kill9(0);
  c.healAll();
  const b = await client(c.ports[1]!);
  const tokB = (await b.ok<{ token: string }>('login', { user: 'alice', password: 'pw', peer: '127.0.0.1:7001', clientId: 'a'.repeat(16) })).token;
  const has = async () => (await b.ok<{ groups: { group: string }[] }>('list_groups', {}, tokB)).groups.some((g) => g.group === 'durable');
  assert.equal(await has(), false);
  await c.start(0);
  const ms = await until(has, 15_000, 'the durable group on tracker 2');
  console.log(`write acked by a killed tracker reached tracker 2 ${ms.toFixed(0)} ms after its restart`);
  await c.waitConverged(10_000);
});
