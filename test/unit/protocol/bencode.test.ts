import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  BencodeError, Raw, decode, decodeDictWithSpans, dictValueBytes, encode,
  type BDict, type BEncodable, type BValue,
} from '../../../src/protocol/bencode.js';

// The npm `bencode` package is a dev-only oracle and ships no typings.
const oracleName = 'bencode';
const oracle = (await import(oracleName)).default as {
  encode(v: unknown): Uint8Array;
  decode(b: Uint8Array): unknown;
};

const b = (s: string): Buffer => Buffer.from(s, 'latin1');

function rejects(input: string | Buffer, opts = {}): BencodeError {
  const buf = typeof input === 'string' ? b(input) : input;
  try { decode(buf, opts); } catch (e) {
    assert.ok(e instanceof BencodeError, `expected BencodeError, got ${String(e)}`);
    assert.equal(e.code, 'BAD_BENCODE');
    return e;
  }
  assert.fail(`decoded ${JSON.stringify(buf.toString('latin1'))} without error`);
}

/** A comparable, JSON-like form of a bencode value from either codec. */
function norm(v: unknown): unknown {
  if (v instanceof Uint8Array) return { bytes: Buffer.from(v).toString('hex') };
  if (typeof v === 'number') return v;
  if (Array.isArray(v)) return v.map(norm);
  if (v instanceof Map) return Object.fromEntries([...v.entries()].sort(([x], [y]) => (x < y ? -1 : 1)).map(([k, x]) => [k, norm(x)]));
  if (typeof v === 'object' && v !== null) {
    return Object.fromEntries(Object.keys(v).sort().map((k) => [k, norm((v as Record<string, unknown>)[k])]));
  }
  throw new Error(`unexpected ${typeof v}`);
}

// Values both codecs agree on: ASCII keys (the oracle decodes keys as UTF-8 text), byte-string
// values, safe integers, lists, dicts.
const asciiKey = fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)), maxLength: 12 })
  .filter((k) => k !== '__proto__');
const { value: bvalue } = fc.letrec<{ value: BEncodable }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.uint8Array({ maxLength: 40 }).map((u) => Buffer.from(u) as BEncodable),
    fc.maxSafeInteger() as fc.Arbitrary<BEncodable>,
    fc.array(tie('value'), { maxLength: 5 }) as fc.Arbitrary<BEncodable>,
    fc.dictionary(asciiKey, tie('value'), { maxKeys: 5 }) as fc.Arbitrary<BEncodable>,
  ),
}));

describe('bencode decode', () => {
  test('decodes each type', () => {
    assert.equal(decode(b('i0e')), 0);
    assert.equal(decode(b('i-42e')), -42);
    assert.equal(decode(b(`i${Number.MAX_SAFE_INTEGER}e`)), Number.MAX_SAFE_INTEGER);
    assert.equal(decode(b(`i${Number.MIN_SAFE_INTEGER}e`)), Number.MIN_SAFE_INTEGER);
    assert.deepEqual(decode(b('4:spam')), b('spam'));
    assert.deepEqual(decode(b('0:')), Buffer.alloc(0));
    assert.deepEqual(norm(decode(b('l4:spami7ee'))), [{ bytes: '7370616d' }, 7]);
    const d = decode(b('d3:bar4:spam3:fooi42ee')) as BDict;
    assert.equal(Object.getPrototypeOf(d), null);
    assert.deepEqual(norm(d), { bar: { bytes: '7370616d' }, foo: 42 });
  });

  test('dict keys are binary strings, one char per byte', () => {
    const d = decode(Buffer.concat([b('d2:'), Buffer.from([0xff, 0x00]), b('i1ee')])) as BDict;
    assert.deepEqual(Object.keys(d), ['\u00ff\u0000']);
    assert.deepEqual(encode(d), Buffer.concat([b('d2:'), Buffer.from([0xff, 0x00]), b('i1ee')]));
  });

  test('__proto__ is just a key', () => {
    const d = decode(b('d9:__proto__i1ee')) as BDict;
    assert.equal(d['__proto__'], 1);
    assert.equal(({} as Record<string, unknown>)['polluted'], undefined);
  });

  test('refuses non-canonical integers', () => {
    for (const s of ['i-0e', 'i01e', 'i-01e', 'i00e', 'ie', 'i-e', 'i+1e', 'i1.5e', 'i 1e', 'i1', 'i12']) rejects(s);
  });

  test('refuses integers outside the safe range', () => {
    rejects(`i${Number.MAX_SAFE_INTEGER + 1}e`);
    rejects('i9007199254740993e');
    rejects(`i-${Number.MAX_SAFE_INTEGER + 1}e`);
    rejects('i12345678901234567890e');
    rejects('i' + '1'.repeat(10_000) + 'e');
  });

  test('refuses bad byte strings', () => {
    for (const s of ['5:abc', '01:a', '-1:a', ':', '1', '4', '99999999999999999999:x', '1x']) rejects(s);
  });

  test('checks a string length against the input before slicing', () => {
    const e = rejects('9007199254740991:ab');
    assert.equal(e.offset, 17);
  });

  test('refuses unsorted and duplicate keys in strict mode', () => {
    rejects('d3:fooi1e3:bari2ee');
    rejects('d3:fooi1e3:fooi2ee');
    rejects('d1:bi1e2:aai2ee'); // "aa" < "b"
    assert.deepEqual(norm(decode(b('d2:aai2e1:bi1ee'))), { aa: 2, b: 1 });
  });

  test('lenient mode accepts unsorted keys but never duplicates', () => {
    assert.deepEqual(norm(decode(b('d3:fooi1e3:bari2ee'), { lenient: true })), { bar: 2, foo: 1 });
    rejects('d3:fooi1e3:bari2e3:fooi3ee', { lenient: true });
    rejects('d3:fooi1e3:fooi3ee', { lenient: true });
  });

  test('refuses non-string dict keys', () => {
    rejects('di1ei2ee');
    rejects('dlei2ee');
  });

  test('refuses trailing bytes, truncation and junk', () => {
    for (const s of ['i1ei2e', '4:spamx', 'le ', 'l', 'd', 'd1:a', 'l4:spam', 'x', '', 'e', 'de e']) rejects(s);
  });

  test('enforces the size cap before decoding', () => {
    const e = rejects('4:spam', { maxBytes: 5 });
    assert.equal(e.offset, -1);
    assert.deepEqual(decode(b('4:spam'), { maxBytes: 6 }), b('spam'));
  });

  test('enforces the depth cap without recursing past it', () => {
    assert.deepEqual(norm(decode(b('l'.repeat(32) + 'e'.repeat(32)))), JSON.parse('['.repeat(32) + ']'.repeat(32)));
    rejects('l'.repeat(33) + 'e'.repeat(33));
    rejects('l'.repeat(100_000) + 'e'.repeat(100_000));
    rejects('d1:a'.repeat(40) + 'i1e' + 'e'.repeat(40));
    rejects('lle' + 'e', { maxDepth: 1 });
  });

  test('enforces entry and value caps', () => {
    rejects('l' + 'i1e'.repeat(11) + 'e', { maxEntries: 10 });
    assert.equal((decode(b('l' + 'i1e'.repeat(10) + 'e'), { maxEntries: 10 }) as BValue[]).length, 10);
    rejects('d' + Array.from({ length: 11 }, (_, i) => `2:k${String.fromCharCode(65 + i)}i1e`).join('') + 'e', { maxEntries: 10 });
    rejects('l' + 'le'.repeat(100) + 'e', { maxValues: 100 });
    // Keys count as values too.
    rejects('d1:ai1e1:bi1ee', { maxValues: 4 });
    assert.equal(typeof decode(b('d1:ai1e1:bi1ee'), { maxValues: 5 }), 'object');
  });

  test('byte strings are views of the input', () => {
    const input = b('l3:abce');
    const [s] = decode(input) as Buffer[];
    input[3] = 0x78;
    assert.deepEqual(s, b('xbc'));
  });
});

describe('bencode encode', () => {
  test('encodes canonically with keys sorted bytewise', () => {
    assert.deepEqual(encode({ zeta: 1, 'piece length': 2, alpha: [b('x'), 'é', -3] }), b('d5:alphal1:x2:\u00c3\u00a9i-3ee12:piece lengthi2e4:zetai1ee'));
    assert.deepEqual(encode(new Map<string, BEncodable>([['b', 1], ['a', 2]])), b('d1:ai2e1:bi1ee'));
    assert.deepEqual(encode({ Z: 1, a: 2, '\u00ff': 3 }), Buffer.concat([b('d1:Zi1e1:ai2e1:'), Buffer.from([0xff]), b('i3ee')]));
    assert.deepEqual(encode(-0), b('i0e'));
  });

  test('skips undefined dict values, embeds Raw verbatim', () => {
    assert.deepEqual(encode({ a: undefined, b: new Raw(b('i5e')) }), b('d1:bi5ee'));
  });

  test('refuses what bencode cannot carry', () => {
    const bad: unknown[] = [1.5, NaN, Infinity, 2 ** 53, null, true, undefined, { k: null }, new Date(), { '\u0100': 1 }, Symbol('x')];
    for (const v of bad) {
      assert.throws(() => encode(v as BEncodable), (e: unknown) => e instanceof BencodeError && e.code === 'BAD_BENCODE', String(v));
    }
    const cyclic: BEncodable[] = [];
    cyclic.push(cyclic);
    assert.throws(() => encode(cyclic), (e: unknown) => e instanceof BencodeError);
  });
});

describe('spans', () => {
  test('returns the exact bytes of a top-level value, also from a lenient foreign file', () => {
    const info = b('d6:lengthi3e4:name1:xe');
    const doc = Buffer.concat([b('d8:announce3:url4:info'), info, b('8:zcommenti1ee')]);
    assert.deepEqual(dictValueBytes(doc, 'info'), info);
    assert.equal(dictValueBytes(doc, 'missing'), undefined);
    const { spans, dict } = decodeDictWithSpans(doc);
    assert.deepEqual(spans.get('announce'), { start: 11, end: 16 });
    assert.deepEqual(norm(dict['announce']), { bytes: Buffer.from('url').toString('hex') });
    const unsorted = Buffer.concat([b('d4:info'), info, b('8:announce3:urle')]);
    assert.throws(() => dictValueBytes(unsorted, 'info'), BencodeError);
    assert.deepEqual(dictValueBytes(unsorted, 'info', { lenient: true }), info);
  });

  test('only top-level keys have spans, and the top level must be a dict', () => {
    const { spans } = decodeDictWithSpans(b('d1:ad1:bi1eee'));
    assert.deepEqual([...spans.keys()], ['a']);
    assert.throws(() => decodeDictWithSpans(b('li1ee')), BencodeError);
    assert.throws(() => dictValueBytes(b('d1:ai1ee '), 'a'), BencodeError);
  });
});

describe('against the npm bencode package (oracle)', () => {
  test('our encoding is byte-identical to the oracle\'s', () => {
    fc.assert(fc.property(bvalue, (v) => {
      assert.deepEqual(encode(v), Buffer.from(oracle.encode(v)));
    }), { numRuns: 400 });
  });

  test('each decodes what the other encodes', () => {
    fc.assert(fc.property(bvalue, (v) => {
      assert.deepEqual(norm(decode(Buffer.from(oracle.encode(v)))), norm(v));
      assert.deepEqual(norm(oracle.decode(encode(v))), norm(v));
    }), { numRuns: 400 });
  });

  test('decode then encode is the identity on canonical input', () => {
    fc.assert(fc.property(bvalue, (v) => {
      const bytes = encode(v);
      assert.deepEqual(encode(decode(bytes)), bytes);
    }), { numRuns: 400 });
  });
});
