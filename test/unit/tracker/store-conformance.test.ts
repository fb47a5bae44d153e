/**
 * One conformance suite for every Store implementation: the same tests run against MemoryStore
 * and SqliteStore, plus cross-implementation and SQLite-only (persistence, locking) checks.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { CoterieError } from '../../../src/common/errors.js';
import { encodeHlc, HybridClock, MAX_SKEW_MS, type Stamp } from '../../../src/tracker/store/hlc.js';
import { rowKey, type Kind } from '../../../src/tracker/store/merge.js';
import { MemoryStore } from '../../../src/tracker/store/memory-store.js';
import { SqliteStore } from '../../../src/tracker/store/sqlite-store.js';
import type { Change, Delta, Store } from '../../../src/tracker/store/store.js';

const T0 = 1_700_000_000_000;
const tmp = mkdtempSync(join(tmpdir(), 'coterie-store-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
let n = 0;

type Factory = (physical?: () => number) => Store;
const factories: Record<string, Factory> = {
  MemoryStore: (physical = () => T0) => new MemoryStore({ clock: new HybridClock(physical) }),
  SqliteStore: (physical = () => T0) => new SqliteStore({ path: join(tmp, `s${n++}.db`), clock: new HybridClock(physical) }),
};

const st = (s: Store): Stamp => ({ hlc: s.clock.now(), origin: s.origin });
const reqDelta = (s: Store, group: string, user: string, state: 'pending' | 'closed' = 'pending'): Delta =>
  ({ kind: 'request', key: rowKey(group, user), value: { state, at: st(s) } });

function codeOf(fn: () => unknown): string | undefined {
  try { fn(); } catch (e) { return e instanceof CoterieError ? e.code : `not coterie: ${String(e)}`; }
  return undefined;
}

/** Ships everything `from` has that `to` lacks. */
function sync(from: Store, to: Store, batch = 1000): number {
  let total = 0;
  for (;;) {
    const cs = from.changesSince(to.versionVector(), batch);
    if (cs.length === 0) return total;
    total += to.applyRemote(cs);
  }
}

for (const [implName, make] of Object.entries(factories)) {
  describe(`Store conformance: ${implName}`, () => {
    test('a fresh store: origin id, empty log, no rows', () => {
      const s = make();
      assert.match(s.origin, /^[0-9a-f]{16}$/);
      assert.deepEqual(s.versionVector(), {});
      assert.deepEqual(s.changesSince({}, 100), []);
      assert.equal(s.get('user', 'alice'), undefined);
      assert.ok(Object.values(s.counts()).every((c) => c === 0));
      assert.equal(s.getMeta('origin'), s.origin);
      s.close();
    });

    test('commitLocal merges, appends with consecutive seqs and increasing HLCs', () => {
      const s = make();
      const c1 = s.commitLocal([reqDelta(s, 'g', 'alice'), reqDelta(s, 'g', 'bob')]);
      const c2 = s.commitLocal([reqDelta(s, 'g', 'alice', 'closed')]);
      assert.deepEqual([...c1, ...c2].map((c) => c.seq), [1, 2, 3]);
      assert.ok(c1[0]!.hlc < c1[1]!.hlc && c1[1]!.hlc < c2[0]!.hlc);
      assert.ok([...c1, ...c2].every((c) => c.origin === s.origin));
      assert.equal(s.get('request', rowKey('g', 'alice'))?.state, 'closed');
      assert.equal(s.get('request', rowKey('g', 'bob'))?.state, 'pending');
      assert.deepEqual(s.versionVector(), { [s.origin]: 3 });
      assert.equal(s.counts().request, 2);
      const log = s.changesSince({}, 100);
      assert.deepEqual(log.map((c) => [c.seq, c.kind, c.key]), [[1, 'request', rowKey('g', 'alice')], [2, 'request', rowKey('g', 'bob')], [3, 'request', rowKey('g', 'alice')]]);
      s.close();
    });

    test('an older delta does not overwrite a newer row (merge, not put)', () => {
      const s = make();
      const early = st(s), late = st(s);
      s.commitLocal([{ kind: 'request', key: rowKey('g', 'u'), value: { state: 'closed', at: late } }]);
      s.commitLocal([{ kind: 'request', key: rowKey('g', 'u'), value: { state: 'pending', at: early } }]);
      assert.deepEqual(s.get('request', rowKey('g', 'u')), { state: 'closed', at: late });
      assert.equal(s.versionVector()[s.origin], 2);
      s.close();
    });

    test('an invalid delta refuses the whole batch', () => {
      const s = make();
      const good = reqDelta(s, 'g', 'alice');
      const bad = { kind: 'request', key: rowKey('g', 'bob'), value: { state: 'weird', at: st(s) } } as unknown as Delta;
      assert.ok(codeOf(() => s.commitLocal([good, bad])));
      const badKey = { ...good, key: 'no-separator' };
      assert.ok(codeOf(() => s.commitLocal([good, badKey])));
      assert.equal(s.get('request', rowKey('g', 'alice')), undefined);
      assert.deepEqual(s.versionVector(), {});
      s.close();
    });

    test('scan returns exactly the prefix, in byte order', () => {
      const s = make();
      s.commitLocal(['g1', 'g10', 'g2', 'g1'].flatMap((g, i) => [reqDelta(s, g, `u${i}`), reqDelta(s, g, `a${i}`)]));
      s.commitLocal([reqDelta(s, 'g1', 'é'), reqDelta(s, 'g1', 'z')]);
      assert.deepEqual(s.scan('request', rowKey('g1', '')).map((r) => r.key), ['a0', 'a3', 'u0', 'u3', 'z', 'é'].map((u) => rowKey('g1', u)));
      assert.deepEqual(s.scan('request', rowKey('g10', '')).map((r) => r.key), [rowKey('g10', 'a1'), rowKey('g10', 'u1')]);
      assert.equal(s.scan('request', '').length, 10);
      assert.equal(s.scan('user', '').length, 0);
      assert.equal(s.scan('request', rowKey('nope', '')).length, 0);
      assert.equal(s.scan('request', rowKey('g1', 'a0'))[0]?.value.state, 'pending');
      s.close();
    });

    test('applyRemote applies in seq order, skips duplicates and gaps, keeps the remote origin', () => {
      const a = make(), b = make();
      a.commitLocal([reqDelta(a, 'g', 'u1'), reqDelta(a, 'g', 'u2'), reqDelta(a, 'g', 'u3')]);
      const log = a.changesSince({}, 100);
      assert.equal(b.applyRemote([log[0]!, log[2]!]), 1, 'seq 3 without seq 2 is a gap');
      assert.deepEqual(b.versionVector(), { [a.origin]: 1 });
      assert.equal(b.applyRemote(log), 2, 'seq 1 is a duplicate, 2 and 3 apply');
      assert.equal(b.applyRemote(log), 0);
      assert.deepEqual(b.versionVector(), { [a.origin]: 3 });
      assert.deepEqual(b.changesSince({}, 100), log);
      assert.equal(b.digest(), a.digest());
      // Local commits on b continue b's own seq, unaffected by a's.
      const own = b.commitLocal([reqDelta(b, 'g', 'u4')]);
      assert.equal(own[0]!.seq, 1);
      assert.deepEqual(b.versionVector(), { [a.origin]: 3, [b.origin]: 1 });
      a.close(); b.close();
    });

    test('applyRemote moves the clock past received stamps', () => {
      const a = make(() => T0 + 30_000), b = make(() => T0);
      const [c] = a.commitLocal([reqDelta(a, 'g', 'u')]);
      b.applyRemote([c]);
      assert.ok(b.clock.now() > c!.hlc);
      a.close(); b.close();
    });

    test('a malformed change refuses the batch (PROTOCOL)', () => {
      const a = make(), b = make();
      a.commitLocal([reqDelta(a, 'g', 'u1'), reqDelta(a, 'g', 'u2')]);
      const [c1, c2] = a.changesSince({}, 10) as [Change, Change];
      const bads: unknown[] = [
        { ...c2, delta: { state: 'nope', at: (c2.delta as { at: Stamp }).at } },
        { ...c2, kind: 'nonsense' },
        { ...c2, seq: 0 }, { ...c2, seq: 1.5 }, { ...c2, origin: 'short' }, { ...c2, hlc: 'x' },
        { ...c2, key: 'no-separator' }, { ...c2, extra: 1 }, null, 'string', 42,
      ];
      for (const bad of bads) {
        assert.equal(codeOf(() => b.applyRemote([c1, bad])), 'PROTOCOL', JSON.stringify(bad));
      }
      assert.deepEqual(b.versionVector(), {});
      assert.equal(b.get('request', c1.key), undefined);
      a.close(); b.close();
    });

    test('a change stamped too far in the future refuses the batch (CLOCK_SKEW)', () => {
      const a = make(() => T0 + MAX_SKEW_MS + 10_000), b = make(() => T0);
      const [c] = a.commitLocal([reqDelta(a, 'g', 'u')]);
      assert.equal(codeOf(() => b.applyRemote([c])), 'CLOCK_SKEW');
      assert.deepEqual(b.versionVector(), {});
      a.close(); b.close();
    });

    test('changesSince honours the vector and the limit, per origin in seq order', () => {
      const a = make(), b = make();
      a.commitLocal([reqDelta(a, 'g', 'a1'), reqDelta(a, 'g', 'a2'), reqDelta(a, 'g', 'a3')]);
      b.commitLocal([reqDelta(b, 'g', 'b1'), reqDelta(b, 'g', 'b2')]);
      sync(a, b);
      const all = b.changesSince({}, 100);
      assert.equal(all.length, 5);
      const origins = all.map((c) => c.origin);
      assert.deepEqual(origins, [...origins].sort(), 'grouped by origin');
      for (const o of [a.origin, b.origin]) {
        const seqs = all.filter((c) => c.origin === o).map((c) => c.seq);
        assert.deepEqual(seqs, seqs.map((_, i) => i + 1));
      }
      assert.deepEqual(b.changesSince({ [a.origin]: 2, [b.origin]: 2 }, 100).map((c) => [c.origin, c.seq]), [[a.origin, 3]]);
      assert.equal(b.changesSince({}, 2).length, 2);
      assert.deepEqual(b.changesSince(b.versionVector(), 100), []);
      a.close(); b.close();
    });

    test('meta values are node-local and readable back', () => {
      const s = make();
      assert.equal(s.getMeta('k'), undefined);
      s.setMeta('k', 'v1');
      s.setMeta('k', 'v2');
      assert.equal(s.getMeta('k'), 'v2');
      assert.deepEqual(s.versionVector(), {});
      s.close();
    });

    test('listeners hear every committed batch with its source', () => {
      const a = make(), b = make();
      const heard: [string, number][] = [];
      const off = b.subscribe((cs, src) => heard.push([src, cs.length]));
      a.commitLocal([reqDelta(a, 'g', 'u1'), reqDelta(a, 'g', 'u2')]);
      b.commitLocal([reqDelta(b, 'g', 'u3')]);
      sync(a, b);
      off();
      b.commitLocal([reqDelta(b, 'g', 'u4')]);
      assert.deepEqual(heard, [['local', 1], ['remote', 2]]);
      a.close(); b.close();
    });

    test('replicas converge to the same digest whatever the order of exchange (property)', () => {
      const users = ['u1', 'u2', 'u3'];
      const op = fc.record({
        at: fc.integer({ min: 0, max: 2 }),
        what: fc.constantFrom<'req' | 'close' | 'join' | 'leave' | 'share'>('req', 'close', 'join', 'leave', 'share'),
        user: fc.constantFrom(...users),
        syncTo: fc.option(fc.integer({ min: 0, max: 2 }), { nil: undefined }),
      });
      fc.assert(fc.property(fc.array(op, { maxLength: 25 }), (ops) => {
        const stores = [make(), make(), make()];
        try {
          for (const o of ops) {
            const s = stores[o.at]!;
            const claim: Stamp = { hlc: encodeHlc({ wall: T0, logical: 0 }), origin: '0000000000000000' };
            const key = rowKey('g', o.user);
            if (o.what === 'req') s.commitLocal([reqDelta(s, 'g', o.user)]);
            else if (o.what === 'close') s.commitLocal([reqDelta(s, 'g', o.user, 'closed')]);
            else if (o.what === 'join') s.commitLocal([{ kind: 'member', key, value: { adds: [{ at: st(s), claim }], removes: [] } }]);
            else if (o.what === 'leave') {
              const m = s.get('member', key);
              if (m) s.commitLocal([{ kind: 'member', key, value: { adds: [], removes: m.adds } }]);
            } else s.commitLocal([{ kind: 'share', key: rowKey('g', 'a'.repeat(40), o.user, '0123456789abcdef'), value: { peer: `p:${o.at}`, live: o.at !== 1, at: st(s) } }]);
            if (o.syncTo !== undefined && o.syncTo !== o.at) sync(s, stores[o.syncTo]!, 3);
          }
          for (let round = 0; round < 2; round++) for (const x of stores) for (const y of stores) if (x !== y) sync(x, y, 4);
          const d = stores[0]!.digest();
          for (const x of stores) {
            assert.equal(x.digest(), d);
            assert.deepEqual(x.versionVector(), stores[0]!.versionVector());
          }
        } finally {
          for (const x of stores) x.close();
        }
      }), { numRuns: implName === 'SqliteStore' ? 25 : 80 });
    });
  });
}

describe('Store: across implementations', () => {
  test('the same changes give the same rows and digest in both', () => {
    const m = factories['MemoryStore']!(), q = factories['SqliteStore']!();
    m.commitLocal([reqDelta(m, 'grp', 'é'), reqDelta(m, 'grp', 'z'), reqDelta(m, 'g', 'a')]);
    q.commitLocal([{ kind: 'tkey', key: q.origin, value: { publicKey: 'pk', created: st(q) } }]);
    sync(m, q); sync(q, m);
    assert.equal(m.digest(), q.digest());
    for (const kind of ['request', 'tkey'] as Kind[]) assert.deepEqual(m.scan(kind, ''), q.scan(kind, ''));
    assert.deepEqual(m.counts(), q.counts());
    m.close(); q.close();
  });
});

describe('SqliteStore only', () => {
  test('rows, log, meta, origin survive close and reopen; the clock never re-issues a stamp', () => {
    const path = join(tmp, 'reopen.db');
    let t = T0 + 100_000;
    const s1 = new SqliteStore({ path, clock: new HybridClock(() => t) });
    const origin = s1.origin;
    const cs = s1.commitLocal([reqDelta(s1, 'g', 'u1'), reqDelta(s1, 'g', 'u2')]);
    s1.setMeta('key', 'value');
    const digest = s1.digest();
    s1.close();
    t = T0; // the wall clock went back 100 s while we were down
    const s2 = new SqliteStore({ path, clock: new HybridClock(() => t) });
    assert.equal(s2.origin, origin);
    assert.equal(s2.getMeta('key'), 'value');
    assert.equal(s2.digest(), digest);
    assert.deepEqual(s2.versionVector(), { [origin]: 2 });
    assert.deepEqual(s2.changesSince({}, 10), cs);
    const [c3] = s2.commitLocal([reqDelta(s2, 'g', 'u3')]);
    assert.equal(c3!.seq, 3);
    assert.ok(c3!.hlc > cs[1]!.hlc);
    s2.close();
  });

  test('a second store on the same file is refused while the first is open (IO)', () => {
    const path = join(tmp, 'locked.db');
    const s1 = new SqliteStore({ path, clock: new HybridClock() });
    s1.commitLocal([reqDelta(s1, 'g', 'u')]);
    assert.equal(codeOf(() => new SqliteStore({ path, clock: new HybridClock() })), 'IO');
    s1.close();
    const s2 = new SqliteStore({ path, clock: new HybridClock() });
    assert.equal(s2.origin, s1.origin);
    s2.close();
  });
});
