/**
 * The presence bridge between a tracker's presence table and gossip: what a holder gossips (new,
 * renewed, changed, ended leases, each once), and what a receiver puts in its table (the copy that
 * lasts longest over all holders; dropped when no copy is left).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Presence } from '../../../src/tracker/presence.js';
import { PresenceBridge, type PresenceTable, type TableEntry } from '../../../src/tracker/replication/presence-bridge.js';

const A = 'a'.repeat(16), B = 'b'.repeat(16), C = 'c'.repeat(16);
const CID = '1'.repeat(16);

/** The tracker's Presence, plus `dropRemote` as replication needs it (forgets a remote lease only). */
class Table implements PresenceTable {
  readonly p: Presence;
  constructor(readonly origin: string, readonly clock: { now(): number }) { this.p = new Presence({ now: () => clock.now(), origin }); }
  exportLocal(): TableEntry[] { return this.p.exportLocal(); }
  importRemote(e: readonly TableEntry[]): void { this.p.importRemote(e); }
  dropRemote(user: string, clientId: string): void {
    const cur = this.p.get(user, clientId);
    if (cur && cur.origin !== this.origin) this.p.importRemote([{ ...cur, ttlMs: 0 }]);
  }
}

test('a holder gossips new, renewed, changed and ended leases, each once', () => {
  const clock = { t: 1000, now() { return this.t; } };
  const t = new Table(A, clock);
  const b = new PresenceBridge(t, A, clock);
  assert.deepEqual(b.pollLocal(), []);
  t.p.renew('u', CID, '127.0.0.1:1', [], 1);
  const first = b.pollLocal();
  assert.equal(first.length, 1);
  assert.equal(first[0]!.holder, A);
  assert.equal(first[0]!.ttlMs, 15_000);
  assert.deepEqual(b.pollLocal(), [], 'nothing changed');
  clock.t += 100;
  t.p.renew('u', CID, '127.0.0.1:1', [], 1);
  assert.deepEqual(b.pollLocal(), [], 'a renewal within the slack is not worth a message');
  clock.t += 5000;
  t.p.renew('u', CID, '127.0.0.1:1', [], 1);
  const renewed = b.pollLocal();
  assert.equal(renewed.length, 1);
  assert.ok(renewed[0]!.gen > first[0]!.gen);
  t.p.renew('u', CID, '127.0.0.1:1', [{ group: 'g', infoHash: 'f'.repeat(40) }], 1);
  const changed = b.pollLocal();
  assert.equal(changed.length, 1);
  assert.deepEqual(changed[0]!.shares, [{ group: 'g', infoHash: 'f'.repeat(40) }]);
  assert.equal(b.localEntries().length, 1);
  assert.equal(b.localEntries()[0]!.gen, changed[0]!.gen, 'a snapshot carries the gossiped gen');
  t.p.dropConnection(1);
  const ended = b.pollLocal();
  assert.equal(ended.length, 1);
  assert.equal(ended[0]!.ttlMs, 0);
  assert.ok(ended[0]!.gen > changed[0]!.gen);
  assert.deepEqual(b.pollLocal(), []);
});

test('a receiver holds the longest-lasting copy over all holders and drops it when none is left', () => {
  const clock = { t: 1000, now() { return this.t; } };
  const t = new Table(C, clock);
  const b = new PresenceBridge(t, C, clock);
  const e = { user: 'u', clientId: CID, peer: '127.0.0.1:1', shares: [], gen: 10 };
  assert.equal(b.applyRemote([{ ...e, holder: A, ttlMs: 15_000 }]).length, 1);
  assert.equal(t.p.get('u', CID)?.origin, A);
  // The client failed over to B: both hold it for a while; B's lasts longer.
  clock.t += 3000;
  b.applyRemote([{ ...e, holder: B, ttlMs: 15_000 }]);
  assert.equal(t.p.get('u', CID)?.origin, B);
  // A drops its lease (the connection closed): B's copy keeps the client online.
  b.applyRemote([{ ...e, holder: A, gen: 11, ttlMs: 0 }]);
  assert.equal(t.p.isOnline('u', CID), true);
  // B drops it too: gone at once, not after the lease.
  b.applyRemote([{ ...e, holder: B, gen: 11, ttlMs: 0 }]);
  assert.equal(t.p.isOnline('u', CID), false);
  // Its own entries echoed back are ignored; a local lease wins over copies.
  assert.deepEqual(b.applyRemote([{ ...e, holder: C, gen: 99, ttlMs: 15_000 }]), []);
  t.p.renew('v', CID, '127.0.0.1:2', [], 5);
  b.applyRemote([{ ...e, user: 'v', holder: A, gen: 50, ttlMs: 15_000, peer: '127.0.0.1:9' }]);
  assert.equal(t.p.get('v', CID)?.peer, '127.0.0.1:2');
  // Copies expire when renewals stop.
  clock.t += 16_000;
  b.sweep();
  assert.equal(b.copies.isOnline('v', CID), false);
});
