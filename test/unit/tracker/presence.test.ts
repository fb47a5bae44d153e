import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { LEASE_MS, Presence } from '../../../src/tracker/presence.js';

const A = 'aaaaaaaaaaaaaaaa', B = 'bbbbbbbbbbbbbbbb';
const share = (g: string) => ({ group: g, infoHash: '1'.repeat(40) });

function make(origin = '0000000000000001') {
  let t = 1_000_000;
  const p = new Presence({ now: () => t, origin });
  return { p, advance: (ms: number) => { t += ms; } };
}

describe('Presence', () => {
  test('a lease lives LEASE_MS after its last renewal', () => {
    const { p, advance } = make();
    p.renew('alice', A, '10.0.0.1:1', [share('g')], 1);
    advance(LEASE_MS - 1);
    assert.ok(p.isOnline('alice', A));
    p.renew('alice', A, '10.0.0.1:2', undefined, 1);
    advance(LEASE_MS - 1);
    assert.equal(p.get('alice', A)?.peer, '10.0.0.1:2');
    assert.deepEqual(p.get('alice', A)?.shares, [share('g')], 'undefined shares keeps the set');
    advance(1);
    assert.ok(!p.isOnline('alice', A));
    assert.equal(p.size, 0);
  });

  test('clients of one user are separate leases', () => {
    const { p } = make();
    p.renew('alice', A, 'h:1', [], 1);
    p.renew('alice', B, 'h:2', [], 2);
    p.drop('alice', A);
    assert.ok(!p.isOnline('alice', A));
    assert.ok(p.isOnline('alice', B));
  });

  test('closing a connection drops the leases it renewed last, and only those', () => {
    const { p } = make();
    p.renew('alice', A, 'h:1', [], 1);
    p.renew('bob', B, 'h:2', [], 1);
    p.renew('bob', B, 'h:2', [], 2); // bob moved to connection 2
    assert.equal(p.dropConnection(1), 1);
    assert.ok(!p.isOnline('alice', A));
    assert.ok(p.isOnline('bob', B));
  });

  test('shares: add, remove one, remove a whole group', () => {
    const { p } = make();
    p.renew('alice', A, 'h:1', [share('g1')], 1);
    p.addShare('alice', A, share('g2'));
    p.addShare('alice', A, share('g2'));
    p.addShare('nobody', A, share('g2'));
    assert.deepEqual(p.get('alice', A)?.shares, [share('g1'), share('g2')]);
    p.removeShares('alice', A, 'g1', '1'.repeat(40));
    assert.deepEqual(p.get('alice', A)?.shares, [share('g2')]);
    p.removeShares('alice', null, 'g2');
    assert.deepEqual(p.get('alice', A)?.shares, []);
  });

  test('export/import for gossip: TTL capped, local leases win, own entries ignored', () => {
    const one = make('0000000000000001'), two = make('0000000000000002');
    one.p.renew('alice', A, 'h:1', [share('g')], 1);
    one.advance(5_000);
    const exported = one.p.exportLocal();
    assert.deepEqual(exported, [{ user: 'alice', clientId: A, peer: 'h:1', shares: [share('g')], ttlMs: LEASE_MS - 5_000, origin: '0000000000000001' }]);
    two.p.importRemote([...exported, { ...exported[0]!, user: 'zed', ttlMs: 10 * LEASE_MS }]);
    assert.equal(two.p.get('alice', A)?.origin, '0000000000000001');
    two.advance(LEASE_MS - 5_000);
    assert.ok(!two.p.isOnline('alice', A), 'imported with the remaining TTL');
    assert.ok(two.p.isOnline('zed', A));
    two.advance(5_000);
    assert.ok(!two.p.isOnline('zed', A), 'TTL capped at one lease');
    // Gossip does not re-export what came from elsewhere, and a local lease wins over a remote one.
    assert.deepEqual(two.p.exportLocal(), []);
    two.p.renew('bob', B, 'local:1', [], 3);
    two.p.importRemote([{ user: 'bob', clientId: B, peer: 'remote:1', shares: [], ttlMs: LEASE_MS, origin: '0000000000000001' }]);
    assert.equal(two.p.get('bob', B)?.peer, 'local:1');
    // Our own entries echoed back are ignored.
    one.p.importRemote([{ user: 'echo', clientId: B, peer: 'x:1', shares: [], ttlMs: LEASE_MS, origin: '0000000000000001' }]);
    assert.ok(!one.p.isOnline('echo', B));
  });

  test('the change listener hears new leases, moves, share changes and drops, not plain renewals', () => {
    const { p, advance } = make();
    let calls = 0;
    p.setChangeListener(() => { calls++; });
    const expect = (n: number, what: string) => { assert.equal(calls, n, what); };
    p.renew('alice', A, 'h:1', [], 1); expect(1, 'new lease');
    p.renew('alice', A, 'h:1', [], 1); expect(1, 'plain renewal');
    p.renew('alice', A, 'h:1', undefined, 2); expect(1, 'renewal through another connection');
    p.renew('alice', A, 'h:2', [], 2); expect(2, 'new peer address');
    p.renew('alice', A, 'h:2', [share('g')], 2); expect(3, 'new share set');
    p.addShare('alice', A, share('g')); expect(3, 'share already there');
    p.addShare('alice', A, share('h')); expect(4, 'share added');
    p.removeShares('alice', A, 'x'); expect(4, 'nothing removed');
    p.removeShares('alice', A, 'h'); expect(5, 'share removed');
    p.drop('alice', A); expect(6, 'dropped');
    p.drop('alice', A); expect(6, 'nothing to drop');
    p.renew('bob', B, 'h:3', [], 9); expect(7, 'new lease');
    p.dropConnection(9); expect(8, 'connection closed');
    p.dropConnection(9); expect(8, 'nothing on that connection');
    p.renew('carol', A, 'h:4', [], 3); expect(9, 'new lease');
    advance(LEASE_MS);
    p.sweep(); expect(10, 'a local lease lapsed');
    p.importRemote([{ user: 'zed', clientId: A, peer: 'r:1', shares: [], ttlMs: 100, origin: '0000000000000009' }]);
    advance(200);
    p.sweep(); expect(10, 'a remote copy lapsing is not a local change');
    p.setChangeListener(() => { throw new Error('listener bug'); });
    assert.doesNotThrow(() => p.renew('dave', A, 'h:5', [], 4));
  });

  test('sweep drops expired leases', () => {
    const { p, advance } = make();
    for (let i = 0; i < 10; i++) p.renew(`u${i}`, A, 'h:1', [], null);
    advance(LEASE_MS);
    p.renew('fresh', A, 'h:1', [], null);
    assert.equal(p.sweep(), 10);
    assert.equal(p.size, 1);
  });
});
