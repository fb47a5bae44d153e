import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  canonicalJson, digestRows, isMemberValue, KINDS, keyProblem, mergeRow, mergeValues, normalize, parseValue, rowKey,
  type Kind, type MemberValue, type ValueOf,
} from '../../../src/tracker/store/merge.js';
import type { Stamp } from '../../../src/tracker/store/hlc.js';
import { CoterieError } from '../../../src/common/errors.js';

// Small pools so that equal stamps (ties) and equal values happen often.
const origin = fc.constantFrom('0000000000000001', '0000000000000002', 'abcdefabcdefabcd');
const hlc = fc.tuple(fc.integer({ min: 1_700_000_000_000, max: 1_700_000_000_003 }), fc.integer({ min: 0, max: 2 }))
  .map(([w, l]) => `${w}-${String(l).padStart(6, '0')}`);
const stamp: fc.Arbitrary<Stamp> = fc.record({ hlc, origin });
const hex = (n: number) => fc.stringMatching(new RegExp(`^[0-9a-f]{${n}}$`));
const name = fc.constantFrom('alice', 'bob', 'carol');

const arb: { [K in Kind]: fc.Arbitrary<ValueOf[K]> } = {
  user: fc.record({ salt: fc.constantFrom('aa', 'bb'), hash: fc.constantFrom('h1', 'h2'), created: stamp }),
  group: fc.record({ created: stamp, owner: name, ownerStamp: stamp }),
  member: fc.record({
    adds: fc.array(fc.record({ at: stamp, claim: stamp }), { maxLength: 4 }),
    removes: fc.array(fc.record({ at: stamp, claim: stamp }), { maxLength: 4 }),
  }),
  request: fc.record({ state: fc.constantFrom('pending' as const, 'closed' as const), at: stamp }),
  file: fc.record({
    infoHash: fc.constantFrom('a'.repeat(40), 'b'.repeat(40)), size: fc.integer({ min: 0, max: 10 }),
    pieceLength: fc.constantFrom(16384, 32768), sha256: fc.constantFrom('c'.repeat(64), 'd'.repeat(64)),
    info: fc.constantFrom('AAAA', 'BBBB'), claim: stamp, created: stamp,
  }),
  share: fc.record({ peer: fc.constantFrom('127.0.0.1:1', '127.0.0.1:2'), live: fc.boolean(), at: stamp }),
  session: fc.record({
    user: name, clientId: hex(16), claim: stamp, expires: fc.integer({ min: 0, max: 5 }), live: fc.boolean(), at: stamp,
  }),
  tkey: fc.record({ publicKey: fc.constantFrom('k1', 'k2'), created: stamp }),
};

const norm = <K extends Kind>(kind: K) => arb[kind].map((v) => normalize(kind, v));

for (const kind of KINDS) {
  describe(`merge of ${kind}`, () => {
    const v = norm(kind);
    const m = (a: ValueOf[typeof kind], b: ValueOf[typeof kind]) => mergeValues(kind, a, b);
    const j = canonicalJson;

    test('commutative', () => {
      fc.assert(fc.property(v, v, (a, b) => { assert.equal(j(m(a, b)), j(m(b, a))); }), { numRuns: 300 });
    });
    test('associative', () => {
      fc.assert(fc.property(v, v, v, (a, b, c) => { assert.equal(j(m(m(a, b), c)), j(m(a, m(b, c)))); }), { numRuns: 300 });
    });
    test('idempotent', () => {
      fc.assert(fc.property(v, (a) => { assert.equal(j(m(a, a)), j(a)); }), { numRuns: 200 });
    });
    test('result is canonical and valid', () => {
      fc.assert(fc.property(v, v, (a, b) => {
        const r = m(a, b);
        assert.equal(j(normalize(kind, r)), j(r));
        assert.equal(j(parseValue(kind, JSON.parse(JSON.stringify(r)))), j(r));
      }), { numRuns: 200 });
    });
    test('any order of a set of deltas gives the same row', () => {
      fc.assert(fc.property(fc.array(v, { minLength: 1, maxLength: 6 }), fc.infiniteStream(fc.nat()), (deltas, rnd) => {
        const fold = (ds: ValueOf[typeof kind][]) => ds.reduce<ValueOf[typeof kind] | undefined>((acc, d) => mergeRow(kind, acc, d), undefined);
        const shuffled = [...deltas, ...deltas.slice(0, 2)]; // with duplicates
        for (let i = shuffled.length - 1; i > 0; i--) {
          const k = rnd.next().value % (i + 1);
          [shuffled[i], shuffled[k]] = [shuffled[k]!, shuffled[i]!];
        }
        assert.equal(j(fold(shuffled)), j(fold(deltas)));
      }), { numRuns: 200 });
    });
  });
}

const s = (wall: number, o = '0000000000000001'): Stamp => ({ hlc: `${1_700_000_000_000 + wall}-000000`, origin: o });

describe('kind rules', () => {
  test('user: first claim wins whole', () => {
    const early = { salt: 'aa', hash: 'h-early', created: s(1, '0000000000000009') };
    const late = { salt: 'bb', hash: 'h-late', created: s(2, '0000000000000001') };
    assert.deepEqual(mergeValues('user', late, early), early);
    // Same HLC: the smaller origin wins.
    const tie = { salt: 'cc', hash: 'h-tie', created: s(1, '0000000000000002') };
    assert.deepEqual(mergeValues('user', early, tie), tie);
  });

  test('group: first claim wins; within a claim the latest hand-over wins', () => {
    const claim = s(1);
    const g0 = { created: claim, owner: 'alice', ownerStamp: claim };
    const handed = { created: claim, owner: 'bob', ownerStamp: s(5) };
    const rival = { created: s(2), owner: 'mallory', ownerStamp: s(9) };
    assert.equal(mergeValues('group', g0, handed).owner, 'bob');
    assert.equal(mergeValues('group', rival, handed).owner, 'bob');
    assert.equal(mergeValues('group', rival, g0).owner, 'alice');
  });

  test('member: add wins over a concurrent remove that did not see it', () => {
    const claim = s(0);
    const add1 = { at: s(1), claim };
    const joined: MemberValue = { adds: [add1], removes: [] };
    const leave: MemberValue = { adds: [], removes: [add1] }; // saw add1
    const reAccept: MemberValue = { adds: [{ at: s(3), claim }], removes: [] }; // concurrent, unseen by leave
    assert.equal(isMemberValue(mergeValues('member', joined, leave), claim), false);
    const all = mergeValues('member', mergeValues('member', joined, reAccept), leave);
    assert.equal(isMemberValue(all, claim), true);
  });

  test('member: tags made under another claim of the group do not count', () => {
    const winning = s(0, '0000000000000001');
    const losing = s(0, '0000000000000002');
    const m: MemberValue = { adds: [{ at: s(1), claim: losing }], removes: [] };
    assert.equal(isMemberValue(m, losing), true);
    assert.equal(isMemberValue(m, winning), false);
  });

  test('file: the file under the earliest group claim wins, then the earliest share', () => {
    const base = { infoHash: 'a'.repeat(40), size: 1, pieceLength: 16384, sha256: 'c'.repeat(64), info: 'AAAA' };
    const a = { ...base, claim: s(0), created: s(5) };
    const b = { ...base, infoHash: 'b'.repeat(40), claim: s(1), created: s(2) };
    const c = { ...base, infoHash: 'c'.repeat(40), claim: s(0), created: s(3) };
    assert.equal(mergeValues('file', a, b).infoHash, 'a'.repeat(40));
    assert.equal(mergeValues('file', a, c).infoHash, 'c'.repeat(40));
  });

  test('share, request, session: last writer wins', () => {
    assert.equal(mergeValues('share', { peer: 'p:1', live: true, at: s(1) }, { peer: 'p:1', live: false, at: s(2) }).live, false);
    assert.equal(mergeValues('request', { state: 'closed', at: s(3) }, { state: 'pending', at: s(2) }).state, 'closed');
    const sess = { user: 'alice', clientId: '0123456789abcdef', claim: s(0), expires: 10, live: true, at: s(1) };
    assert.equal(mergeValues('session', sess, { ...sess, live: false, at: s(2) }).live, false);
  });

  test('tkey: keys never change, the first stamp wins', () => {
    assert.equal(mergeValues('tkey', { publicKey: 'late', created: s(2) }, { publicKey: 'first', created: s(1) }).publicKey, 'first');
  });
});

describe('validation', () => {
  const codeOf = (fn: () => unknown) => { try { fn(); } catch (e) { return (e as CoterieError).code; } return undefined; };

  test('unknown fields, wrong types and bad stamps are refused', () => {
    assert.equal(codeOf(() => parseValue('request', { state: 'pending', at: s(1), extra: 1 })), 'PROTOCOL');
    assert.equal(codeOf(() => parseValue('request', { state: 'maybe', at: s(1) })), 'PROTOCOL');
    assert.equal(codeOf(() => parseValue('share', { peer: 'x', live: 'yes', at: s(1) })), 'PROTOCOL');
    assert.equal(codeOf(() => parseValue('tkey', { publicKey: 'k', created: { hlc: 'now', origin: '0000000000000001' } })), 'PROTOCOL');
    assert.equal(codeOf(() => parseValue('tkey', { publicKey: 'k', created: { hlc: s(1).hlc, origin: 'XYZ' } })), 'PROTOCOL');
    assert.equal(codeOf(() => parseValue('user', null)), 'PROTOCOL');
    assert.equal(codeOf(() => parseValue('user', { salt: 'a'.repeat(10_000), hash: 'h', created: s(1) })), 'PROTOCOL');
  });

  test('keys: right number of parts, bounded', () => {
    assert.equal(keyProblem('member', rowKey('g', 'u')), null);
    assert.notEqual(keyProblem('member', 'g'), null);
    assert.notEqual(keyProblem('member', rowKey('g', '')), null);
    assert.notEqual(keyProblem('user', 'x'.repeat(65)), null);
    assert.equal(keyProblem('share', rowKey('g', 'a'.repeat(40), 'u', '0123456789abcdef')), null);
  });
});

describe('canonical JSON and digest', () => {
  test('canonical JSON does not depend on key order', () => {
    assert.equal(canonicalJson({ b: 1, a: { d: [2, { y: 1, x: 0 }], c: 3 } }), canonicalJson({ a: { c: 3, d: [2, { x: 0, y: 1 }] }, b: 1 }));
  });

  test('digest is independent of row order and sensitive to any change', () => {
    const rows = [
      { kind: 'user' as const, key: 'alice', json: '{"a":1}' },
      { kind: 'member' as const, key: rowKey('g', 'alice'), json: '{"adds":[],"removes":[]}' },
      { kind: 'user' as const, key: 'bob', json: '{"a":2}' },
      { kind: 'user' as const, key: 'ébé', json: '{"a":3}' },
    ];
    const d = digestRows(rows);
    assert.match(d, /^[0-9a-f]{64}$/);
    assert.equal(digestRows([...rows].reverse()), d);
    assert.notEqual(digestRows(rows.slice(1)), d);
    assert.notEqual(digestRows([{ ...rows[0]!, json: '{"a":9}' }, ...rows.slice(1)]), d);
  });
});
