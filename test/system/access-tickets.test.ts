/**
 * Access tickets end to end, with real processes: a tracker, a seeding client (alice, owner of
 * group g, sharing files A and B), and attackers that are raw TCP peers speaking the BitTorrent
 * wire with crafted handshakes. Only a member holding a ticket the tracker signed for that very
 * file in that group is served; every other peer gets no BITFIELD and no PIECE, and is
 * disconnected within a bound. The client log says which check refused each one.
 *
 * Tickets a tracker would never hand out (expired, for another group) are made with the tracker's
 * real private key, read from its data dir: they differ from genuine ones only in what is tested.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes, randomFillSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { generateKeyPair, importPrivateKey, signTicket, type Ticket } from '../../src/protocol/ticket.js';
import { MsgId } from '../../src/swarm/wire/codec.js';
import { ClientDriver, stopAllClients } from '../helpers/client.js';
import { HostilePeer } from '../helpers/hostile-peer.js';
import { freePort } from '../helpers/ports.js';
import { RpcTestClient, startTracker, stopAllTrackers, writeTrackerInfo, type TrackerProcess } from '../helpers/tracker.js';

/** How long a refused peer may stay connected after its handshakes. */
const REFUSE_MS = 3_000;
const SIZE_A = 3 * 1024 * 1024 + 12_345;

let dir: string;
let info: string;
let tracker: TrackerProcess;
let alice: ClientDriver;
let seederPort: number;
let fileA: Buffer;
let hashA: Buffer;
let hashB: string;
let key: { origin: string; sign: (t: Omit<Ticket, 'origin'>) => string };
/** A member of g with a live session. */
let bob: { rpc: RpcTestClient; token: string };
const rpcs: RpcTestClient[] = [];
const peers: HostilePeer[] = [];
let nextLocal = 10;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'coterie-access-'));
  info = writeTrackerInfo(dir, [await freePort()]);
  // The tracker's signing key, as the tracker stored it. The store is opened exclusively while the
  // tracker runs, so: start it once (it creates its key), stop it, read the key, start it again.
  await (await startTracker({ infoFile: info, no: 1, dataDir: join(dir, 't1') })).stop();
  const db = new Database(join(dir, 't1', 'tracker.db'), { readonly: true, fileMustExist: true });
  const meta = (k: string) => (db.prepare('SELECT v FROM meta WHERE k = ?').pluck().get(k) as string);
  const priv = importPrivateKey(meta('ed25519.private'));
  const origin = meta('origin');
  db.close();
  key = { origin, sign: (t) => signTicket({ ...t, origin }, priv) };
  tracker = await startTracker({ infoFile: info, no: 1, dataDir: join(dir, 't1') });
  mkdirSync(join(dir, 'files'));
  fileA = randomFillSync(Buffer.alloc(SIZE_A));
  writeFileSync(join(dir, 'files', 'A.bin'), fileA);
  writeFileSync(join(dir, 'files', 'B.bin'), randomBytes(100_000));
  alice = await ClientDriver.start({ infoFile: info, dataDir: join(dir, 'c-alice') });
  seederPort = Number(alice.addr.split(':')[1]);
  for (const line of ['create_user alice pw', 'login alice pw', 'create_group g', `upload_file ${join(dir, 'files', 'A.bin')} g`,
    `upload_file ${join(dir, 'files', 'B.bin')} g`]) {
    const r = await alice.send(line);
    assert.deepEqual(r.err, [], `${line}: ${r.err.join('\n')}`);
  }
});

after(async () => {
  for (const p of peers) p.destroy();
  for (const c of rpcs) c.close();
  await stopAllClients();
  await stopAllTrackers();
  rmSync(dir, { recursive: true, force: true });
});

/** A user with a live session on the tracker, by raw RPC (the attacker's tracker access). */
async function user(name: string): Promise<{ rpc: RpcTestClient; token: string }> {
  const rpc = await RpcTestClient.connect(tracker.port);
  rpcs.push(rpc);
  await rpc.ok('create_user', { user: name, password: 'pw' });
  const { token } = await rpc.ok<{ token: string }>('login', { user: name, password: 'pw', peer: '127.0.0.1:9', clientId: randomBytes(8).toString('hex') });
  return { rpc, token };
}

async function member(name: string): Promise<{ rpc: RpcTestClient; token: string }> {
  const u = await user(name);
  await u.rpc.ok('join_group', { group: 'g' }, u.token);
  const r = await alice.send(`accept_request g ${name}`);
  assert.deepEqual(r.err, []);
  return u;
}

async function ticketFor(u: { rpc: RpcTestClient; token: string }, name: string): Promise<{ ticket: string; infoHash: string }> {
  const r = await u.rpc.ok<{ ticket?: string; infoHash: string; peers: { addr: string }[] }>('get_peers', { group: 'g', name }, u.token);
  assert.ok(r.ticket, 'get_peers answered without a ticket');
  assert.ok(r.peers.some((p) => p.addr === alice.addr), 'the seeder is not among the peers');
  return { ticket: r.ticket, infoHash: r.infoHash };
}

/**
 * A raw peer asks the seeder for file A showing `ticket` (none: no ticket key), then at once says
 * it is interested and requests the first block. Resolves with what it saw.
 */
async function attempt(ticket: string | undefined, o: { extended?: boolean; group?: string; waitMs?: number } = {}): Promise<HostilePeer> {
  const p = await HostilePeer.connect(seederPort, { localAddress: `127.0.0.${nextLocal++}` });
  peers.push(p);
  p.handshake(hashA, { extended: o.extended ?? true });
  if (o.extended ?? true) p.extHandshake({ ticket, group: o.group ?? 'g' });
  p.interested();
  p.request(0, 0, 16384);
  await p.closedWithin(o.waitMs ?? REFUSE_MS);
  return p;
}

/** The peer was refused: no pieces offered, nothing served, disconnected in time. */
function assertRefused(p: HostilePeer, what: string): void {
  assert.ok(p.closed, `${what}: still connected after ${REFUSE_MS} ms`);
  assert.equal(p.count(MsgId.BITFIELD), 0, `${what}: got a BITFIELD`);
  assert.equal(p.count(MsgId.HAVE), 0, `${what}: got a HAVE`);
  assert.equal(p.count(MsgId.PIECE), 0, `${what}: got a PIECE`);
  assert.equal(p.count(MsgId.UNCHOKE), 0, `${what}: got an UNCHOKE`);
}

/** Reasons the seeder logged for refusing tickets, in order. */
function refusalReasons(): string[] {
  const log = readFileSync(join(dir, 'c-alice', 'client.log'), 'utf8');
  return log.split('\n').filter((l) => l.includes('refused')).map((l) => {
    const o = JSON.parse(l) as { reason?: string; msg: string };
    return o.reason ?? o.msg;
  });
}

describe('access tickets: only members get pieces', () => {
  test('setup: alice seeds A and B in g', async () => {
    bob = await member('bob');
    const a = await ticketFor(bob, 'A.bin');
    hashA = Buffer.from(a.infoHash, 'hex');
    const r = await bob.rpc.ok<{ info: string }>('get_peers', { group: 'g', name: 'A.bin' }, bob.token);
    assert.equal(a.infoHash, createHash('sha1').update(Buffer.from(r.info, 'base64')).digest('hex'));
    hashB = (await ticketFor(bob, 'B.bin')).infoHash;
    assert.notEqual(hashB, a.infoHash);
  });

  test('a member with a valid ticket is served the right bytes', async () => {
    const { ticket } = await ticketFor(bob, 'A.bin');
    const p = await HostilePeer.connect(seederPort, { localAddress: `127.0.0.${nextLocal++}` });
    peers.push(p);
    p.handshake(hashA);
    p.extHandshake({ ticket, group: 'g' });
    p.interested();
    assert.ok(await p.until(() => p.count(MsgId.UNCHOKE) > 0, 5_000), 'not unchoked');
    assert.equal(p.count(MsgId.BITFIELD), 1);
    p.request(0, 0, 16384);
    p.request(1, 16384, 16384);
    assert.ok(await p.until(() => p.count(MsgId.PIECE) >= 2, 5_000), 'no PIECE');
    const pl = 256 * 1024; // 3 MiB file: the smallest piece length
    for (const m of p.messagesOf(MsgId.PIECE)) {
      const piece = m.payload.readUInt32BE(0), begin = m.payload.readUInt32BE(4);
      assert.ok(m.payload.subarray(8).equals(fileA.subarray(piece * pl + begin, piece * pl + begin + 16384)), `piece ${piece} bytes differ`);
    }
    assert.equal(p.closed, false);
    p.destroy();
  });

  test('a non-member: get_peers refuses a ticket; a peer with no ticket is refused', async () => {
    const mallory = await user('mallory');
    const r = await mallory.rpc.call('get_peers', { group: 'g', name: 'A.bin' }, mallory.token);
    assert.equal(r.ok, false);
    assert.equal(!r.ok && r.error.code, 'NOT_MEMBER');
    assertRefused(await attempt(undefined), 'no ticket, BEP 10');
    // A standard BitTorrent client: no extension bit, so no ticket at all.
    assertRefused(await attempt(undefined, { extended: false }), 'no ticket, no BEP 10');
    // Silence after the handshake instead of the extended handshake: refused at the handshake timeout.
    const p = await HostilePeer.connect(seederPort, { localAddress: `127.0.0.${nextLocal++}` });
    peers.push(p);
    p.handshake(hashA);
    const ms = await p.closedWithin(15_000);
    assert.ok(ms !== null && ms < 13_000, `silent peer closed after ${ms} ms`);
    assert.equal(p.count(MsgId.BITFIELD), 0);
  });

  test('a former member: no new ticket after leaving, and an expired ticket is refused', async () => {
    const carol = await member('carol');
    const { ticket } = await ticketFor(carol, 'A.bin');
    assert.ok(ticket);
    await carol.rpc.ok('leave_group', { group: 'g' }, carol.token);
    const r = await carol.rpc.call('get_peers', { group: 'g', name: 'A.bin' }, carol.token);
    assert.equal(!r.ok && r.error.code, 'NOT_MEMBER');
    const expired = key.sign({ user: 'carol', group: 'g', infoHash: hashA.toString('hex'), expiresAt: Date.now() - 1000 });
    assertRefused(await attempt(expired), 'former member, expired ticket');
    // Removed rather than left: the owner cannot hand out tickets to someone no longer in the group.
    const s2 = await carol.rpc.call('get_peers', { group: 'g', name: 'B.bin' }, carol.token);
    assert.equal(!s2.ok && s2.error.code, 'NOT_MEMBER');
  });

  test('a ticket that expires while connected: served, then cut at its expiry', async () => {
    const expiresAt = Date.now() + 3_000;
    const t = key.sign({ user: 'bob', group: 'g', infoHash: hashA.toString('hex'), expiresAt });
    const p = await HostilePeer.connect(seederPort, { localAddress: `127.0.0.${nextLocal++}` });
    peers.push(p);
    p.handshake(hashA);
    p.extHandshake({ ticket: t, group: 'g' });
    p.interested();
    assert.ok(await p.until(() => p.count(MsgId.UNCHOKE) > 0, 3_000), 'not unchoked');
    p.request(0, 0, 16384);
    assert.ok(await p.until(() => p.count(MsgId.PIECE) > 0, 3_000), 'not served before expiry');
    await p.closedWithin(8_000);
    assert.ok(p.closedAt !== null, 'still connected 5 s after the ticket expired');
    assert.ok(p.closedAt >= expiresAt - 50, `cut ${expiresAt - p.closedAt} ms before the expiry`);
    assert.ok(p.closedAt <= expiresAt + 2_500, `cut ${p.closedAt - expiresAt} ms after the expiry`);
  });

  test('an expired ticket of a member is refused', async () => {
    const t = key.sign({ user: 'bob', group: 'g', infoHash: hashA.toString('hex'), expiresAt: Date.now() - 1 });
    assertRefused(await attempt(t), 'expired');
  });

  test('forged tickets: tampered payload, self-signed under the tracker name, unknown signer', async () => {
    const { ticket } = await ticketFor(bob, 'B.bin');
    // Tampered: bob's genuine ticket for B with the info-hash changed to A's, signature kept.
    const [body, sig] = ticket.split('.') as [string, string];
    const claims = JSON.parse(Buffer.from(body, 'base64url').toString('utf8')) as Ticket;
    const tampered = `${Buffer.from(JSON.stringify({ ...claims, infoHash: hashA.toString('hex') })).toString('base64url')}.${sig}`;
    assertRefused(await attempt(tampered), 'tampered');
    const evil = generateKeyPair();
    const claimsA = { user: 'mallory', group: 'g', infoHash: hashA.toString('hex'), expiresAt: Date.now() + 600_000 };
    assertRefused(await attempt(signTicket({ ...claimsA, origin: key.origin }, evil.privateKey)), 'self-signed, tracker origin');
    assertRefused(await attempt(signTicket({ ...claimsA, origin: 'evil-tracker' }, evil.privateKey)), 'self-signed, unknown origin');
    assertRefused(await attempt('not a ticket at all'), 'garbage ticket');
    assertRefused(await attempt('x'.repeat(4000)), 'oversized ticket');
  });

  test('a ticket for another file or another group is refused', async () => {
    const { ticket } = await ticketFor(bob, 'B.bin');
    assertRefused(await attempt(ticket), 'ticket for B shown for A');
    const otherGroup = key.sign({ user: 'bob', group: 'h', infoHash: hashA.toString('hex'), expiresAt: Date.now() + 600_000 });
    assertRefused(await attempt(otherGroup, { group: 'h' }), 'ticket for A in another group');
  });

  test('the seeder logged why it refused each ticket', () => {
    const reasons = refusalReasons();
    for (const r of ['expired', 'bad-signature', 'unknown-origin', 'malformed', 'oversized']) {
      assert.ok(reasons.includes(r), `no refusal for ${r} in ${JSON.stringify(reasons)}`);
    }
    assert.ok(reasons.some((r) => /without an access ticket/.test(r)));
    assert.ok(reasons.some((r) => /another file or group/.test(r)));
  });

  test('a member downloads with a real client (ticket in the extended handshake), byte-exact', async () => {
    const dave = await ClientDriver.start({ infoFile: info, dataDir: join(dir, 'c-dave') });
    for (const line of ['create_user dave pw', 'login dave pw', 'join_group g']) assert.deepEqual((await dave.send(line)).err, [], line);
    assert.deepEqual((await alice.send('accept_request g dave')).err, []);
    mkdirSync(join(dir, 'dl'));
    assert.deepEqual((await dave.send(`download_file g A.bin ${join(dir, 'dl')}`)).err, []);
    const deadline = Date.now() + 30_000;
    for (;;) {
      const r = await dave.send('show_downloads');
      if (r.out.some((l) => l.startsWith('[C] [g] A.bin'))) break;
      assert.ok(Date.now() < deadline, `download did not complete: ${r.out.join('\n')}`);
      await new Promise((res) => setTimeout(res, 300));
    }
    assert.ok(readFileSync(join(dir, 'dl', 'A.bin')).equals(fileA));
  });

  test('--open-share serves a peer without a ticket (standard clients)', async () => {
    const erin = await ClientDriver.start({ infoFile: info, dataDir: join(dir, 'c-erin'), args: ['--open-share'] });
    writeFileSync(join(dir, 'files', 'C.bin'), randomBytes(50_000));
    for (const line of ['create_user erin pw', 'login erin pw', 'create_group open', `upload_file ${join(dir, 'files', 'C.bin')} open`]) {
      assert.deepEqual((await erin.send(line)).err, [], line);
    }
    const u = await user('frank');
    // frank is not a member: he learns the info-hash elsewhere (it is not secret) and needs no ticket.
    const ls = await erin.send('list_files open');
    assert.match(ls.out[0]!, /^C\.bin/);
    const r = await u.rpc.call('get_peers', { group: 'open', name: 'C.bin' }, u.token);
    assert.equal(!r.ok && r.error.code, 'NOT_MEMBER');
    const tok = await RpcTestClient.connect(tracker.port);
    rpcs.push(tok);
    const et = (await tok.ok<{ token: string }>('login', { user: 'erin', password: 'pw', peer: '127.0.0.1:9', clientId: randomBytes(8).toString('hex') })).token;
    const files = await tok.ok<{ files: { name: string; infoHash: string }[] }>('list_files', { group: 'open' }, et);
    const infoHash = Buffer.from(files.files.find((f) => f.name === 'C.bin')!.infoHash, 'hex');
    const p = await HostilePeer.connect(Number(erin.addr.split(':')[1]), { localAddress: `127.0.0.${nextLocal++}` });
    peers.push(p);
    p.handshake(infoHash, { extended: false });
    p.interested();
    assert.ok(await p.until(() => p.count(MsgId.UNCHOKE) > 0, 5_000), 'open share did not unchoke a ticketless peer');
    p.request(0, 0, 16384);
    assert.ok(await p.until(() => p.count(MsgId.PIECE) > 0, 5_000), 'open share sent no PIECE');
    p.destroy();
  });
});
