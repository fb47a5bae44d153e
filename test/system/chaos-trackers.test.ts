/**
 * Chaos: three trackers, clients writing through whichever tracker they reach, while trackers are
 * killed with SIGKILL and restarted and cut off from each other through proxies and healed. At the
 * end every tracker reports the same digest within seconds, every acknowledged write is present
 * on every tracker, and no client had to log in again.
 *
 * Writers are RPC test clients (each logged in once, before the chaos) plus one real client
 * process fed commands on its stdin. Every write is a `create_group` with a unique id, so
 * "present" is easy to check: the group is listed, owned by its writer, on every tracker.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { clusterFixture, type TrackerCluster } from '../helpers/cluster.js';
import { freePort } from '../helpers/ports.js';
import { RpcTestClient } from '../helpers/tracker.js';

const CHAOS_MS = Number(process.env['COTERIE_CHAOS_MS'] ?? 35_000);
const CLIENT_MAIN = fileURLToPath(new URL('../../src/client/main.js', import.meta.url));

const fx = clusterFixture('coterie-chaos-');
let c: TrackerCluster | null = null;
let realClient: ChildProcess | null = null;

fx.onTeardown(async () => {
  if (realClient && realClient.exitCode === null && realClient.signalCode === null) {
    realClient.kill('SIGKILL');
    await new Promise((r) => realClient!.once('exit', r));
  }
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A writer: one user, one session, failing over between trackers by itself. */
class Writer {
  private conn: RpcTestClient | null = null;
  private at: number;
  acked: string[] = [];
  failed = 0;
  relogins = 0;
  private n = 0;

  constructor(readonly user: string, private readonly token: string, private readonly ports: number[], start: number) {
    this.at = start;
  }

  async run(until: () => boolean): Promise<void> {
    while (!until()) {
      const group = `${this.user}-${this.n++}`;
      try {
        if (!this.conn) this.conn = await RpcTestClient.connect(this.ports[this.at]!, '127.0.0.1', { timeoutMs: 500 });
        const r = await this.conn.call('create_group', { group }, this.token, 2000);
        if (r.ok) this.acked.push(group);
        else if (r.error.code === 'UNAUTHENTICATED' || r.error.code === 'CLAIM_LOST') { this.relogins++; this.failover(); }
        else if (r.error.code === 'UNAVAILABLE') { this.failed++; this.failover(); }
        else throw new Error(`create_group ${group}: ${r.error.code} ${r.error.message}`);
      } catch (err) {
        if ((err as Error).message.startsWith('create_group')) throw err;
        this.failed++; // connect refused / timed out: the outcome is unknown, it does not count as acked
        this.failover();
      }
      await sleep(15);
    }
    this.conn?.close();
  }

  private failover(): void {
    this.conn?.close();
    this.conn = null;
    this.at = (this.at + 1) % this.ports.length;
  }
}

test('chaos: kills, restarts and partitions; every acked write everywhere, one digest, no re-login', { timeout: 85_000 }, async () => {
  c = await fx.start({ n: 3, sub: 'cluster', proxied: true });
  const setup = await RpcTestClient.connect(c.ports[0]!);
  const writers: Writer[] = [];
  for (let i = 0; i < 4; i++) {
    const user = `w${i}`;
    await setup.ok('create_user', { user, password: 'pw' });
    const tok = (await setup.ok<{ token: string }>('login', { user, password: 'pw', peer: `127.0.0.1:${7300 + i}`, clientId: `${i}`.repeat(16) })).token;
    writers.push(new Writer(user, tok, c.ports, i % 3));
  }
  await setup.ok('create_user', { user: 'real', password: 'pw' });
  setup.close();
  await c.waitConverged(10_000);

  // The real client: logs in once, then gets a create_group every 300 ms on its stdin.
  const peerPort = await freePort();
  const clientDir = join(fx.dir, 'client');
  realClient = spawn(process.execPath, [CLIENT_MAIN, `127.0.0.1:${peerPort}`, c.infoFile, '--data-dir', clientDir], {
    stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1', COTERIE_LOG: 'info' },
  });
  let out = '', errOut = '';
  realClient.stdout!.setEncoding('utf8').on('data', (s: string) => { out += s; });
  realClient.stderr!.setEncoding('utf8').on('data', (s: string) => { errOut += s; });
  realClient.stdin!.on('error', () => undefined);
  realClient.stdin!.write('login real pw\n');
  const realSent: string[] = [];

  const t0 = Date.now();
  const done = () => Date.now() - t0 > CHAOS_MS;
  const running = writers.map((w) => w.run(done));
  const realLoop = (async () => {
    let k = 0;
    while (!done()) {
      const g = `real-${k++}`;
      realSent.push(g);
      realClient!.stdin!.write(`create_group ${g}\n`);
      await sleep(300);
    }
  })();

  // The chaos monkey: every 0.8-2 s, kill -9 (30%), restart (25%), cut a pair (20%), isolate one
  // tracker (10%) or heal everything (15%). The seed is printed so a run can be replayed.
  let kills = 0, restarts = 0, partitions = 0, heals = 0;
  const seed0 = Number(process.env['COTERIE_CHAOS_SEED'] ?? Date.now() % 100_000);
  let seed = seed0;
  const rand = (n: number) => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed % n; };
  while (!done()) {
    await sleep(800 + rand(1200));
    const roll = rand(100);
    const i = rand(3);
    const dead = [0, 1, 2].filter((k) => !c!.running(k));
    if (roll < 30 && c.running(i) && dead.length < 2) { await c.kill9(i); kills++; }
    else if (roll < 55 && dead.length > 0) { await c.start(dead[rand(dead.length)]!); restarts++; }
    else if (roll < 75) { c.cut(i, (i + 1 + rand(2)) % 3); partitions++; }
    else if (roll < 85) { c.isolate(i); partitions++; }
    else { c.healAll(); heals++; }
  }
  await Promise.all(running);
  await realLoop;

  // Heal everything, restart every tracker, and wait for one digest.
  c.healAll();
  for (const i of [0, 1, 2]) if (!c.running(i)) { await c.start(i); restarts++; }
  const tEnd = Date.now();
  const convergeMs = await c.waitConverged(20_000);
  const finalDigest = (await c.status(0))!.digest;

  // Stop the real client: end of input makes it log out and exit.
  realClient.stdin!.end();
  await Promise.race([new Promise((r) => realClient!.once('exit', r)), sleep(10_000)]);

  // Every acknowledged write, on every tracker.
  const acked = writers.flatMap((w) => w.acked.map((g) => ({ g, owner: w.user })));
  const check = await RpcTestClient.connect(c.ports[1]!);
  await check.ok('create_user', { user: 'auditor', password: 'pw' });
  await c.waitConverged(10_000);
  let lost = 0;
  for (const i of [0, 1, 2]) {
    const x = await RpcTestClient.connect(c.ports[i]!);
    const tok = (await x.ok<{ token: string }>('login', { user: 'auditor', password: 'pw', peer: '127.0.0.1:7999', clientId: 'e'.repeat(16) })).token;
    const groups = new Map((await x.ok<{ groups: { group: string; owner: string }[] }>('list_groups', {}, tok)).groups.map((g) => [g.group, g.owner]));
    for (const a of acked) if (groups.get(a.g) !== a.owner) lost++;
    // The real client's writes that it reported done are there too.
    for (const g of realOkGroups(out)) if (groups.get(g) !== 'real') lost++;
    x.close();
  }
  check.close();

  const realErrors = errOut.split('\n').filter((l) => l.startsWith('error: '));
  const realOk = realOkGroups(out).length;
  const clientLog = findClientLog(clientDir);
  const realRelogins = clientLog ? (clientLog.match(/session renewed/g) ?? []).length : 0;
  const relogins = writers.reduce((n, w) => n + w.relogins, 0);
  console.log(`chaos (seed ${seed0}): ${CHAOS_MS} ms, writes acked ${acked.length} (unknown outcome ${writers.reduce((n, w) => n + w.failed, 0)}), ` +
    `real client ${realOk}/${realSent.length} ok (${realErrors.length} errors), kills ${kills}, restarts ${restarts}, ` +
    `partitions ${partitions}, heals ${heals}, converged ${convergeMs} ms after the last heal (${Date.now() - tEnd} ms incl. audit), ` +
    `re-logins ${relogins}+${realRelogins}, lost=${lost}`);
  assert.equal(lost, 0, 'every acknowledged write is on every tracker');
  assert.equal(relogins, 0, 'no RPC client had to log in again');
  assert.equal(realRelogins, 0, 'the real client did not log in again');
  assert.ok(acked.length > 100, 'the writers got through');
  assert.equal(typeof finalDigest, 'string');
});

/** Groups the real client reported created (`created group <id>` on stdout). */
function realOkGroups(out: string): string[] {
  return [...out.matchAll(/^created group (real-\d+)$/gm)].map((m) => m[1]!);
}

/** The real client's log file in its data dir (it logs there, stdout belongs to the shell). */
function findClientLog(d: string): string | null {
  if (!existsSync(d)) return null;
  for (const f of readdirSync(d)) if (f.endsWith('.log')) return readFileSync(join(d, f), 'utf8');
  return null;
}
