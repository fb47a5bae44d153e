/**
 * Scenario 5 (tracker throughput) and the tracker half of scenario 6 (peak memory), both against
 * the real tracker process (`./tracker`), through raw RPC connections (src/protocol/rpc.ts).
 *
 * Throughput: C clients (200), each its own TCP connection and user. Each rep, as a real client
 * does: every client logs in once (all 200 at the same time; passwords use the tracker's real
 * scrypt cost, so a login costs what it costs a user), and those logins are timed on their own
 * (logins/s = 200 / time until the last one answered, p50 / p99). Then each client runs a closed
 * loop of one call at a time, picking list_files / get_peers by weight, with the session it just
 * got. Each client connects from its own loopback address (127.0.1.1, 127.0.1.2, ...), as 200 real
 * clients are 200 hosts: from 4 shared addresses the tracker's per-address request limit (1,000/s,
 * a flood guard) capped the pass at exactly 4,000 req/s and the figure measured the limiter. Ten
 * seeder users keep presence leases alive with heartbeats (not counted), so get_peers answers
 * with peers and a signed ticket as in real use. Headline figure: steady-state completed calls per
 * second over the measured window (after a warm-up), and each op's p50 / p99 latency. A mix may
 * still weigh in `login` (a re-login in the loop) for experiments.
 *
 * Memory: U users, G groups, F files. The users are written straight into the tracker's database
 * with a cheap scrypt setting (10,000 real scrypt hashes would take minutes of CPU and say nothing
 * about memory); everything else goes through the running tracker's RPC: every user logs in, owners
 * create groups, each user joins 3 groups and is accepted, members upload F manifests (file sizes
 * log-uniform from 64 KiB to 256 MiB in 256 KiB pieces, random piece hashes). Then every group is
 * listed and 1,000 get_peers are asked. Figure: the tracker's VmHWM (peak RSS) at the end.
 */
import { createHash, randomBytes } from 'node:crypto';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { manifestFromHashes } from '../../src/swarm/manifest.js';
import { createDomain, loadIdentity } from '../../src/tracker/domain/index.js';
import { Presence } from '../../src/tracker/presence.js';
import { HybridClock } from '../../src/tracker/store/hlc.js';
import { SqliteStore } from '../../src/tracker/store/sqlite-store.js';
import { freePorts } from '../../test/helpers/ports.js';
import { CoterieTracker, writeTrackerInfo } from '../lib/coterie.js';
import { BenchRpc } from '../lib/rpc.js';
import { makeWorkDir, MiB, note, percentile, processMemory, removeDir, sleep } from '../lib/util.js';

const PW = 'bench-password';
/** One loopback source address per client (see the header); Linux routes all of 127/8 to lo. */
const LOCALS = Array.from({ length: 250 }, (_, i) => `127.0.1.${i + 1}`);
const cid = (): string => randomBytes(8).toString('hex');

/** A small valid manifest (base64 info dict) and a fake SHA-256, for a file of `size` bytes. */
function fakeManifest(name: string, size: number): { info: string; sha256: string } {
  const pieceLength = 256 * 1024;
  const pieces = randomBytes(Math.ceil(size / pieceLength) * 20);
  const m = manifestFromHashes(name, size, pieceLength, pieces);
  return { info: m.infoBytes.toString('base64'), sha256: createHash('sha256').update(m.infoBytes).digest('hex') };
}

/** Runs `tasks` with at most `conns.length` in flight, task i on connection i % n. */
async function pool<T>(conns: BenchRpc[], items: T[], fn: (c: BenchRpc, item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(conns.map(async (c) => {
    for (;;) {
      const i = next++;
      if (i >= items.length) return;
      await fn(c, items[i]!);
    }
  }));
}

async function connectMany(port: number, n: number): Promise<BenchRpc[]> {
  const out: BenchRpc[] = [];
  for (let i = 0; i < n; i++) out.push(await BenchRpc.connect(port, '127.0.0.1', LOCALS[i % LOCALS.length]));
  return out;
}

// --------------------------------------------------------------------------- throughput

export interface RpsMix { login: number; list_files: number; get_peers: number }

export interface RpsResult {
  rps: number;
  perOp: Record<string, { count: number; rps: number; p50_ms: number; p99_ms: number }>;
  errors: number;
  tracker_hwm_MiB: number;
  /** This rep's logins: one per client, all at once, before the mix. */
  logins: { count: number; perSec: number; p50_ms: number; p99_ms: number; errors: number };
}

export interface RpsOptions { clients: number; warmupMs: number; measureMs: number; mixes: RpsMix[]; workParent?: string }

/** One tracker, set up once; one measurement per mix per rep. */
export async function runTrackerRps(o: RpsOptions, reps: number): Promise<RpsResult[][]> {
  const wd = makeWorkDir(o.workParent, 'coterie_rps.');
  let tracker: CoterieTracker | null = null;
  const conns: BenchRpc[] = [];
  const GROUPS = 10, FILES = 20;
  try {
    const [port] = await freePorts(1);
    const info = writeTrackerInfo(join(wd, 'trackers.txt'), [port!]);
    tracker = await CoterieTracker.start(info, 1, join(wd, 'tracker-1'));
    const owners = await connectMany(tracker.port, GROUPS);
    conns.push(...owners);
    note(`tracker rps: creating ${o.clients + GROUPS} users (real scrypt)`);
    const setup = await connectMany(tracker.port, 16);
    conns.push(...setup);
    const users = Array.from({ length: o.clients }, (_, i) => `u${i}`);
    await pool(setup, [...users, ...Array.from({ length: GROUPS }, (_, g) => `o${g}`)], async (c, u) => { await c.ok('create_user', { user: u, password: PW }); });
    // Owners: a group each, FILES files, and a heartbeat that keeps them online as seeders.
    const ownerState = await Promise.all(owners.map(async (c, g) => {
      const clientId = cid();
      const peer = `127.0.0.${(g % 4) + 1}:${20000 + g}`;
      const { token } = await c.ok<{ token: string }>('login', { user: `o${g}`, password: PW, peer, clientId });
      await c.ok('create_group', { group: `g${g}` }, token);
      const shares: { group: string; infoHash: string }[] = [];
      for (let f = 0; f < FILES; f++) {
        const m = fakeManifest(`file${f}.bin`, (f + 1) * MiB);
        const r = await c.ok<{ infoHash: string }>('upload_file', { group: `g${g}`, info: m.info, sha256: m.sha256, peer, clientId }, token);
        shares.push({ group: `g${g}`, infoHash: r.infoHash });
      }
      return { c, token, clientId, peer, shares };
    }));
    const beat = async () => { await Promise.all(ownerState.map((s) => s.c.ok('heartbeat', { peer: s.peer, clientId: s.clientId, shares: s.shares }, s.token))); };
    await beat();
    const beater = setInterval(() => { void beat().catch(() => { /* counted nowhere */ }); }, 4_000);
    try {
      // Load clients: a connection and a user each, member of one group.
      const load = await connectMany(tracker.port, o.clients);
      conns.push(...load);
      const clients = await Promise.all(load.map(async (c, i) => {
        const g = i % GROUPS;
        const clientId = cid();
        const peer = `${LOCALS[i % LOCALS.length]}:${30000 + i}`;
        const { token } = await c.ok<{ token: string }>('login', { user: `u${i}`, password: PW, peer, clientId });
        await c.ok('join_group', { group: `g${g}` }, token);
        return { c, i, g, clientId, peer, token, user: `u${i}` };
      }));
      await Promise.all(clients.map((cl) => ownerState[cl.g]!.c.ok('accept_request', { group: `g${cl.g}`, user: cl.user }, ownerState[cl.g]!.token)));

      const all: RpsResult[][] = [];
      for (let rep = 0; rep < reps; rep++) {
        const row: RpsResult[] = [];
        for (const mix of o.mixes) {
          // Each client logs in once (a fresh session), all together; timed on their own.
          const loginLat: number[] = [];
          let loginErrors = 0;
          const tl0 = performance.now();
          await Promise.all(clients.map(async (cl) => {
            const t0 = performance.now();
            const r = await cl.c.call('login', { user: cl.user, password: PW, peer: cl.peer, clientId: cl.clientId });
            if (!r.ok) { loginErrors++; return; }
            loginLat.push(performance.now() - t0);
            cl.token = (r.result as { token: string }).token;
          }));
          const loginSecs = (performance.now() - tl0) / 1000;
          const logins = {
            count: loginLat.length, perSec: loginLat.length / loginSecs, errors: loginErrors,
            p50_ms: percentile(loginLat, 50), p99_ms: percentile(loginLat, 99),
          };
          const total = mix.login + mix.list_files + mix.get_peers;
          let phase: 'warm' | 'measure' | 'stop' = 'warm';
          const lat: Record<string, number[]> = { login: [], list_files: [], get_peers: [] };
          let errors = 0;
          let rnd = (rep + 1) * 7919;
          const runners = clients.map(async (cl) => {
            while (phase !== 'stop') {
              rnd = (rnd * 1103515245 + 12345) & 0x7fffffff;
              const x = (rnd / 0x7fffffff) * total;
              const op = x < mix.login ? 'login' : x < mix.login + mix.list_files ? 'list_files' : 'get_peers';
              const args = op === 'login' ? { user: cl.user, password: PW, peer: cl.peer, clientId: cl.clientId }
                : op === 'list_files' ? { group: `g${cl.g}` } : { group: `g${cl.g}`, name: `file${(rnd >> 8) % FILES}.bin` };
              const t0 = performance.now();
              const r = await cl.c.call(op, args, op === 'login' ? undefined : cl.token);
              const dt = performance.now() - t0;
              if (!r.ok) { errors++; continue; }
              if (op === 'login') cl.token = (r.result as { token: string }).token;
              if (phase === 'measure') lat[op]!.push(dt);
            }
          });
          await sleep(o.warmupMs);
          phase = 'measure';
          const t0 = performance.now();
          await sleep(o.measureMs);
          const secs = (performance.now() - t0) / 1000;
          phase = 'stop';
          await Promise.all(runners);
          const perOp: RpsResult['perOp'] = {};
          let count = 0;
          for (const [op, v] of Object.entries(lat)) {
            if (v.length === 0) continue;
            count += v.length;
            perOp[op] = { count: v.length, rps: v.length / secs, p50_ms: percentile(v, 50), p99_ms: percentile(v, 99) };
          }
          const r: RpsResult = { rps: count / secs, perOp, errors, tracker_hwm_MiB: (processMemory(tracker.pid)?.hwm ?? NaN) / MiB, logins };
          row.push(r);
          note(`tracker rps rep ${rep + 1}/${reps}: ${logins.count} logins at ${logins.perSec.toFixed(0)}/s (p99 ${logins.p99_ms.toFixed(0)} ms); ` +
            `then mix ${mixLabel(mix)}: ${r.rps.toFixed(0)} req/s, errors ${errors}; ` +
            Object.entries(perOp).map(([k, v]) => `${k} ${v.rps.toFixed(0)}/s p50 ${v.p50_ms.toFixed(1)} ms p99 ${v.p99_ms.toFixed(1)} ms`).join('; '));
        }
        all.push(row);
      }
      return all;
    } finally {
      clearInterval(beater);
    }
  } finally {
    for (const c of conns) c.close();
    await tracker?.stop();
    removeDir(wd);
  }
}

export function mixLabel(m: RpsMix): string {
  const t = m.login + m.list_files + m.get_peers;
  const pct = (x: number) => `${Math.round((x / t) * 100)}%`;
  return `login ${pct(m.login)}, list_files ${pct(m.list_files)}, get_peers ${pct(m.get_peers)}`;
}

// --------------------------------------------------------------------------- memory

export interface TrackerRssResult { hwm_MiB: number; rss_MiB: number; populate_s: number; db_MiB: number; info_MiB: number }

export async function runTrackerRss(shape: { users: number; groups: number; files: number }, workParent?: string): Promise<TrackerRssResult> {
  const wd = makeWorkDir(workParent, 'coterie_trss.');
  let tracker: CoterieTracker | null = null;
  const conns: BenchRpc[] = [];
  try {
    const t0 = performance.now();
    const dataDir = join(wd, 'tracker-1');
    // Users straight into the database, with a cheap scrypt setting stored with each hash.
    {
      const { mkdirSync } = await import('node:fs');
      mkdirSync(dataDir, { recursive: true });
      const store = new SqliteStore({ path: join(dataDir, 'tracker.db'), clock: new HybridClock() });
      try {
        const presence = new Presence({ now: Date.now, origin: store.origin });
        const domain = createDomain({
          store, now: Date.now, presence, identity: loadIdentity(store),
          parseManifest: () => { throw new Error('unused'); }, scrypt: { N: 16, r: 1, p: 1 },
        });
        for (let i = 0; i < shape.users; i++) await domain.accounts.createUser(`u${i}`, PW);
      } finally {
        store.close();
      }
    }
    note(`tracker rss: ${shape.users} users written; starting the tracker`);
    const [port] = await freePorts(1);
    const info = writeTrackerInfo(join(wd, 'trackers.txt'), [port!]);
    tracker = await CoterieTracker.start(info, 1, dataDir);
    conns.push(...await connectMany(tracker.port, 48));
    const tokens: string[] = new Array<string>(shape.users);
    const clientIds: string[] = Array.from({ length: shape.users }, cid);
    const peerOf = (i: number) => `10.0.${(i >> 8) & 255}.${i & 255}:6881`;
    const idx = (n: number) => Array.from({ length: n }, (_, i) => i);
    await pool(conns, idx(shape.users), async (c, i) => {
      tokens[i] = (await c.ok<{ token: string }>('login', { user: `u${i}`, password: PW, peer: peerOf(i), clientId: clientIds[i] })).token;
    });
    note('tracker rss: logged in; groups and memberships');
    await pool(conns, idx(shape.groups), async (c, g) => { await c.ok('create_group', { group: `g${g}` }, tokens[g]); });
    // Each user joins 3 groups (the owners' own group excluded), accepted by the owner.
    const joins: [number, number][] = [];
    for (let i = 0; i < shape.users; i++) {
      for (let k = 0; k < 3; k++) {
        const g = (i * 7 + k * 331) % shape.groups;
        if (g !== i) joins.push([i, g]);
      }
    }
    const uniq = [...new Map(joins.map((j) => [`${j[0]}/${j[1]}`, j])).values()];
    await pool(conns, uniq, async (c, [i, g]) => {
      await c.ok('join_group', { group: `g${g}` }, tokens[i]);
      await c.ok('accept_request', { group: `g${g}`, user: `u${i}` }, tokens[g]);
    });
    note(`tracker rss: ${uniq.length} memberships; uploading ${shape.files} manifests`);
    let infoBytes = 0;
    const lnMin = Math.log(64 * 1024), lnMax = Math.log(256 * MiB);
    await pool(conns, idx(shape.files), async (c, f) => {
      const g = f % shape.groups;
      const size = Math.floor(Math.exp(lnMin + Math.random() * (lnMax - lnMin)));
      const m = fakeManifest(`file${f}.bin`, size);
      infoBytes += m.info.length;
      await c.ok('upload_file', { group: `g${g}`, info: m.info, sha256: m.sha256, peer: peerOf(g), clientId: clientIds[g] }, tokens[g]);
    });
    note('tracker rss: reading back (list_files of every group, 1,000 get_peers)');
    await pool(conns, idx(shape.groups), async (c, g) => { await c.ok('list_files', { group: `g${g}` }, tokens[g]); });
    await pool(conns, idx(1000), async (c, k) => {
      const f = (k * 97) % shape.files;
      const g = f % shape.groups;
      const r = await c.call('get_peers', { group: `g${g}`, name: `file${f}.bin` }, tokens[g]);
      if (!r.ok && r.error.code !== 'NO_SEEDER') throw new Error(`get_peers: ${r.error.code} ${r.error.message}`);
    });
    const populate_s = (performance.now() - t0) / 1000;
    const mem = processMemory(tracker.pid);
    let db = 0;
    for (const f of ['tracker.db', 'tracker.db-wal']) { try { db += statSync(join(dataDir, f)).size; } catch { /* absent */ } }
    return { hwm_MiB: (mem?.hwm ?? NaN) / MiB, rss_MiB: (mem?.rss ?? NaN) / MiB, populate_s, db_MiB: db / MiB, info_MiB: infoBytes / MiB };
  } finally {
    for (const c of conns) c.close();
    await tracker?.stop();
    removeDir(wd);
  }
}
