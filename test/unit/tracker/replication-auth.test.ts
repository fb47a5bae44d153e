/**
 * Pure pieces of replication: admission rules, key pin policy, handshake signatures, presence
 * copies (leases, tombstones, per-holder copies), presence frame packing, frame schemas.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateKeyPairSync, sign } from 'node:crypto';
import { parseEndpoint } from '../../../src/common/config.js';
import { PeerDirectory, transcriptBytes, verifySignature, type Transcript } from '../../../src/tracker/replication/auth.js';
import { checkPin, FilePinStore } from '../../../src/tracker/replication/pins.js';
import { PresenceCopies } from '../../../src/tracker/replication/presence-copies.js';
import { presenceFrames } from '../../../src/tracker/replication/presence-frames.js';
import { parseDialOverride } from '../../../src/tracker/replication/replicator.js';
import { formatPeerLine } from '../../../src/tracker/replication/status-format.js';
import {
  isReplicationHello, linkFrameSchema, MAX_FRAME_BYTES, MAX_GOSSIP_SHARES, parseFrame, type PresenceEntry,
} from '../../../src/tracker/replication/wire.js';

const list = ['127.0.0.1:4001', '127.0.0.1:4002', '10.0.0.3:4003'].map(parseEndpoint);

test('admission: listed IP, listed address, not our own, IP matches the claimed address', () => {
  const d = new PeerDirectory(list[0]!, list);
  assert.deepEqual(d.peers, ['127.0.0.1:4002', '10.0.0.3:4003']);
  assert.equal(d.admissionProblem('127.0.0.1', '127.0.0.1:4002'), null);
  assert.equal(d.admissionProblem('::ffff:127.0.0.1', '127.0.0.1:4002'), null);
  assert.equal(d.admissionProblem('10.0.0.3', '10.0.0.3:4003'), null);
  assert.match(d.admissionProblem('10.0.0.9', '10.0.0.3:4003')!, /not listed/);
  assert.match(d.admissionProblem('127.0.0.1', '127.0.0.1:4001')!, /own address/);
  assert.match(d.admissionProblem('127.0.0.1', '127.0.0.1:9999')!, /not listed/);
  assert.match(d.admissionProblem('127.0.0.1', '10.0.0.3:4003')!, /connects from/);
  assert.match(d.admissionProblem(undefined, '127.0.0.1:4002')!, /no remote address/);
});

test('pin policy: first use pins, same key passes, a changed key needs a new origin and no live pinned link', () => {
  assert.deepEqual(checkPin(undefined, 'k1', 'o1', false), { ok: true, pin: true });
  const pin = { key: 'k1', origin: 'o1', since: 0 };
  assert.deepEqual(checkPin(pin, 'k1', 'o1', true), { ok: true, pin: false });
  assert.equal(checkPin(pin, 'k2', 'o1', false).ok, false, 'same origin, other key: impostor');
  assert.equal(checkPin(pin, 'k2', 'o2', true).ok, false, 'pinned tracker is connected');
  const wiped = checkPin(pin, 'k2', 'o2', false);
  assert.equal(wiped.ok, true);
  assert.ok(wiped.ok && wiped.pin && wiped.warning);
});

test('file pin store survives a reopen and ignores a corrupt file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'coterie-pins-'));
  try {
    const a = new FilePinStore(dir);
    a.set('127.0.0.1:4002', { key: 'k', origin: '0123456789abcdef', since: 5 });
    assert.deepEqual(new FilePinStore(dir).get('127.0.0.1:4002'), { key: 'k', origin: '0123456789abcdef', since: 5 });
    writeFileSync(join(dir, 'peer-keys.json'), '{not json');
    const b = new FilePinStore(dir);
    assert.equal(b.get('127.0.0.1:4002'), undefined);
    assert.ok(b.loadError);
  } finally { rmSync(dir, { recursive: true, force: true }); }
});

test('handshake signatures bind role and every transcript field', () => {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const key = publicKey.export({ format: 'der', type: 'spki' }).toString('base64');
  const t: Transcript = {
    dialerAddr: 'a', acceptorAddr: 'b', dialerOrigin: 'o1', acceptorOrigin: 'o2',
    dialerNonce: 'n1', acceptorNonce: 'n2', dialerKey: key, acceptorKey: 'k2',
  };
  const sig = sign(null, transcriptBytes('dialer', t), privateKey).toString('base64');
  assert.equal(verifySignature(key, transcriptBytes('dialer', t), sig), true);
  assert.equal(verifySignature(key, transcriptBytes('acceptor', t), sig), false);
  for (const f of Object.keys(t) as (keyof Transcript)[]) {
    assert.equal(verifySignature(key, transcriptBytes('dialer', { ...t, [f]: t[f] + 'x' }), sig), false, f);
  }
  assert.equal(verifySignature('bm90IGEga2V5', transcriptBytes('dialer', t), sig), false);
  assert.equal(verifySignature(key, transcriptBytes('dialer', t), ''), false);
});

function entry(over: Partial<PresenceEntry> = {}): PresenceEntry {
  return { holder: 'a'.repeat(16), user: 'u', clientId: 'c'.repeat(16), peer: '127.0.0.1:1', shares: [], gen: 1, ttlMs: 1000, ...over };
}

test('presence copies: lease, newer gen wins, tombstone blocks a stale renewal, one copy per holder', () => {
  const clock = { t: 0, now() { return this.t; } };
  const p = new PresenceCopies('f'.repeat(16), clock);
  assert.equal(p.apply([entry()]).length, 1);
  assert.equal(p.apply([entry()]).length, 0, 'same gen again: nothing changed');
  assert.equal(p.isOnline('u', 'c'.repeat(16)), true);
  assert.equal(p.apply([entry({ holder: 'f'.repeat(16) })]).length, 0, 'own entries ignored');
  // Failover: the client is now also held by b; a's removal must not hide it.
  p.apply([entry({ holder: 'b'.repeat(16), gen: 5, peer: '127.0.0.1:2' })]);
  p.apply([entry({ gen: 2, ttlMs: 0 })]);
  assert.deepEqual(p.get('u', 'c'.repeat(16)).map((e) => e.peer), ['127.0.0.1:2']);
  assert.equal(p.apply([entry({ gen: 1 })]).length, 0, 'stale renewal after removal');
  clock.t = 1000;
  assert.equal(p.isOnline('u', 'c'.repeat(16)), false, 'expired when renewals stop');
  // Relayed entries carry their remaining lease, never more.
  clock.t = 2000;
  p.apply([entry({ user: 'v', gen: 9, ttlMs: 800 })]);
  clock.t = 2500;
  const relayed = p.entries().find((e) => e.user === 'v')!;
  assert.equal(relayed.ttlMs, 300);
  p.sweep();
  clock.t = 100_000;
  p.sweep();
  assert.equal(p.size, 0);
});

test('presence frames stay under the line cap and truncate huge share lists', () => {
  const shares = Array.from({ length: MAX_GOSSIP_SHARES + 10 }, (_, i) => ({ group: 'g'.repeat(64), infoHash: i.toString(16).padStart(40, '0') }));
  const many = Array.from({ length: 30 }, (_, i) => entry({ user: `u${i}`, shares }));
  const frames = presenceFrames(many);
  assert.ok(frames.length > 1);
  assert.equal(frames.reduce((n, f) => n + f.entries.length, 0), 30);
  for (const f of frames) {
    assert.ok(Buffer.byteLength(JSON.stringify(f)) < MAX_FRAME_BYTES);
    assert.ok(parseFrame(linkFrameSchema, JSON.stringify(f)));
    for (const e of f.entries) assert.equal(e.shares.length, MAX_GOSSIP_SHARES);
  }
});

test('frame schemas reject unknown fields, wrong types and oversized batches', () => {
  assert.ok(parseFrame(linkFrameSchema, '{"t":"vector","vector":{"0123456789abcdef":3}}'));
  assert.equal(parseFrame(linkFrameSchema, '{"t":"vector","vector":{},"extra":1}'), null);
  assert.equal(parseFrame(linkFrameSchema, '{"t":"vector","vector":{"0123456789abcdef":-1}}'), null);
  assert.equal(parseFrame(linkFrameSchema, '{"t":"vector","vector":{"nothex":1}}'), null);
  assert.equal(parseFrame(linkFrameSchema, '{"t":"nope"}'), null);
  assert.equal(parseFrame(linkFrameSchema, 'not json'), null);
  const c = { origin: '0123456789abcdef', seq: 1, kind: 'user', key: 'u', delta: {}, hlc: '1750000000000-000000' };
  assert.ok(parseFrame(linkFrameSchema, JSON.stringify({ t: 'changes', n: 1, changes: [c] })));
  assert.equal(parseFrame(linkFrameSchema, JSON.stringify({ t: 'changes', n: 1, changes: [{ ...c, seq: 0 }] })), null);
  assert.equal(parseFrame(linkFrameSchema, JSON.stringify({ t: 'changes', n: 1, changes: [{ ...c, hlc: 'x' }] })), null);
  assert.equal(parseFrame(linkFrameSchema, JSON.stringify({ t: 'changes', n: 1, changes: Array(1025).fill(c) })), null);
  assert.equal(isReplicationHello('{"t":"hello","v":1}'), true);
  assert.equal(isReplicationHello('{"id":1,"op":"login","args":{"user":"hello"}}'), false);
  assert.equal(isReplicationHello('{"id":1,"op":"hello"}'), false);
});

test('the dial override test hook parses listed=dial pairs', () => {
  const m = parseDialOverride('127.0.0.1:4001=127.0.0.1:5001, 127.0.0.1:4002=127.0.0.1:5002', parseEndpoint);
  assert.deepEqual(m.get('127.0.0.1:4002'), { host: '127.0.0.1', port: 5002 });
  assert.equal(parseDialOverride(undefined, parseEndpoint).size, 0);
});

test('status lines: a peer link up or down, for a human', () => {
  const up = formatPeerLine({ addr: '127.0.0.1:4002', connected: true, direction: 'out', origin: 'ab'.repeat(8), lag: 0, behind: 3, lastContactMsAgo: 120, changesRefused: 0, lastError: null });
  assert.match(up, /^127\.0\.0\.1:4002 +up \(dialed by us\) +origin abab.* lag 0 +we lack 3 +last contact 120 ms ago$/);
  const down = formatPeerLine({ addr: '127.0.0.1:4003', connected: false, direction: null, origin: null, lag: 12, behind: null, lastContactMsAgo: 65_000, changesRefused: 2, lastError: 'IDLE: silent' });
  assert.match(down, /DOWN +lag 12 +last contact 65\.0 s ago +refused 2 +\(IDLE: silent\)$/);
  assert.equal(formatPeerLine({ x: 1 }), '{"x":1}');
});
