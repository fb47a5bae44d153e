import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Bitfield, popcount } from '../../../src/swarm/bitfield.js';

/** The BEP 3 layout written out the slow way: piece i is bit (7 - i % 8) of byte floor(i / 8). */
function reference(length: number, pieces: Iterable<number>): Uint8Array {
  const b = new Uint8Array(Math.ceil(length / 8));
  for (const i of pieces) b[Math.floor(i / 8)] = b[Math.floor(i / 8)]! | (1 << (7 - (i % 8)));
  return b;
}

describe('Bitfield', () => {
  test('piece 0 is the high bit of byte 0, piece 9 the second-highest bit of byte 1', () => {
    const b = new Bitfield(12);
    b.set(0);
    b.set(9);
    assert.deepEqual([...b.toBuffer()], [0x80, 0x40]);
    assert.equal(b.get(0), true);
    assert.equal(b.get(1), false);
    assert.equal(b.get(9), true);
  });

  test('count is maintained through repeated set and clear', () => {
    const b = new Bitfield(20);
    b.set(3); b.set(3); b.set(19);
    assert.equal(b.count, 2);
    b.clear(3); b.clear(3); b.clear(4);
    assert.equal(b.count, 1);
    assert.equal(b.full, false);
    for (let i = 0; i < 20; i++) b.set(i);
    assert.equal(b.count, 20);
    assert.equal(b.full, true);
  });

  test('a zero-length bitfield is empty, full and zero bytes long', () => {
    const b = new Bitfield(0);
    assert.equal(b.count, 0);
    assert.equal(b.full, true);
    assert.equal(b.toBuffer().length, 0);
  });

  test('allSet leaves the spare bits clear', () => {
    const b = Bitfield.allSet(11);
    assert.deepEqual([...b.toBuffer()], [0xff, 0xe0]);
    assert.equal(b.count, 11);
    assert.equal(b.full, true);
    assert.equal(Bitfield.allSet(16).toBuffer().equals(Buffer.from([0xff, 0xff])), true);
  });

  test('fromWire refuses a wrong size or spare bits with a ProtocolError', () => {
    assert.throws(() => Bitfield.fromWire(9, new Uint8Array(1)), { name: 'ProtocolError', code: 'PROTOCOL' });
    assert.throws(() => Bitfield.fromWire(9, new Uint8Array(3)), { name: 'ProtocolError' });
    assert.throws(() => Bitfield.fromWire(9, Uint8Array.of(0, 0x40)), { name: 'ProtocolError' });
    assert.throws(() => Bitfield.fromWire(15, Uint8Array.of(0, 0x01)), { name: 'ProtocolError' });
    const ok = Bitfield.fromWire(9, Uint8Array.of(0x01, 0x80));
    assert.equal(ok.get(7), true);
    assert.equal(ok.get(8), true);
    assert.equal(ok.count, 2);
  });

  test('the constructor refuses bad bytes and out-of-range indices with a RangeError', () => {
    assert.throws(() => new Bitfield(8, new Uint8Array(2)), RangeError);
    assert.throws(() => new Bitfield(7, Uint8Array.of(0x01)), RangeError);
    const b = new Bitfield(8);
    assert.throws(() => b.get(8), RangeError);
    assert.throws(() => b.set(-1), RangeError);
    assert.throws(() => b.clear(1.5), RangeError);
  });

  test('the constructor copies its bytes; toBuffer returns a copy; bytes() is the live array', () => {
    const src = Uint8Array.of(0x80);
    const b = new Bitfield(8, src);
    src[0] = 0;
    assert.equal(b.get(0), true);
    const wire = b.toBuffer();
    wire[0] = 0;
    assert.equal(b.get(0), true);
    b.set(1);
    assert.equal(b.bytes()[0], 0xc0);
    const c = b.clone();
    c.clear(0);
    assert.equal(b.get(0), true);
  });

  test('property: matches the reference layout, count, iteration and wire round trip', () => {
    fc.assert(fc.property(
      fc.integer({ min: 1, max: 300 }).chain((n) => fc.tuple(fc.constant(n), fc.array(fc.nat(n - 1), { maxLength: 2 * n }))),
      ([n, idx]) => {
        const b = new Bitfield(n);
        for (const i of idx) b.set(i);
        const set = new Set(idx);
        assert.deepEqual(b.bytes(), reference(n, set));
        assert.equal(b.count, set.size);
        assert.equal(popcount(b.bytes()), set.size);
        assert.deepEqual([...b], [...set].sort((x, y) => x - y));
        const back = Bitfield.fromWire(n, b.toBuffer());
        assert.deepEqual(back.bytes(), b.bytes());
        assert.equal(back.count, b.count);
        for (const i of idx.slice(0, idx.length >> 1)) { b.clear(i); set.delete(i); }
        assert.equal(b.count, set.size);
        assert.deepEqual(b.bytes(), reference(n, set));
      }), { numRuns: 300 });
  });
});
