import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { tokenize, quoteWord, quoteWords } from '../../../src/client/tokenizer.js';

describe('tokenize', () => {
  test('splits on blanks and drops empty fields', () => {
    assert.deepEqual(tokenize('  login   alice\tsecret  '), ['login', 'alice', 'secret']);
    assert.deepEqual(tokenize(''), []);
    assert.deepEqual(tokenize(' \t '), []);
  });

  test('single quotes are literal', () => {
    assert.deepEqual(tokenize(`upload_file 'my file $x \\n "q"' g1`), ['upload_file', 'my file $x \\n "q"', 'g1']);
  });

  test('double quotes escape only " \\ $ and backquote', () => {
    assert.deepEqual(tokenize(String.raw`a "x\"y\\z\$w\`v\n"`), ['a', 'x"y\\z$w`v\\n']);
  });

  test('backslash outside quotes makes the next character literal', () => {
    assert.deepEqual(tokenize(String.raw`my\ file\'s \"x\"`), [`my file's`, '"x"']);
  });

  test('adjacent quoted parts join into one word', () => {
    assert.deepEqual(tokenize(`a'b c'"d e"f`), ['ab cd ef']);
  });

  test('an empty quoted string is an empty word', () => {
    assert.deepEqual(tokenize(`x '' ""`), ['x', '', '']);
  });

  test('a trailing backslash is dropped without making a word', () => {
    assert.deepEqual(tokenize('a \\'), ['a']);
  });

  test('unclosed quotes are usage errors', () => {
    assert.throws(() => tokenize(`login 'alice`), (e: unknown) => (e as { code?: string }).code === 'USAGE');
    assert.throws(() => tokenize(`login "alice`), (e: unknown) => (e as { code?: string }).code === 'USAGE');
    assert.throws(() => tokenize(`"a\\"`), (e: unknown) => (e as { code?: string }).code === 'USAGE');
  });
});

describe('quoteWord', () => {
  test('leaves plain words alone and quotes the rest', () => {
    assert.equal(quoteWord('g1'), 'g1');
    assert.equal(quoteWord('/tmp/a-b_c.txt'), '/tmp/a-b_c.txt');
    assert.equal(quoteWord('a b'), `'a b'`);
    assert.equal(quoteWord(`it's`), `'it'\\''s'`);
    assert.equal(quoteWord(''), `''`);
  });
});

/** Quotes one word in a randomly chosen POSIX style, chosen per segment, to exercise every path. */
function quoteInStyle(segments: Array<[string, number]>): string {
  return segments.map(([s, style]) => {
    switch (style) {
      case 0: return "'" + s.replace(/'/g, `'\\''`) + "'";
      case 1: return '"' + s.replace(/["\\$`]/g, (m) => '\\' + m) + '"';
      default: return s === '' ? "''" : [...s].map((ch) => '\\' + ch).join('');
    }
  }).join('');
}

describe('tokenize properties', () => {
  const anyChar = fc.oneof(
    fc.constantFrom(' ', '\t', "'", '"', '\\', '$', '`', 'a', 'Z', '0', '-', '#', '*', 'é'),
    fc.string({ minLength: 1, maxLength: 1 }),
  );
  const word = fc.array(anyChar, { maxLength: 12 }).map((cs) => cs.join('').replace(/[\r\n]/g, 'x'));

  test('quoteWords then tokenize gives the words back', () => {
    fc.assert(fc.property(fc.array(word, { maxLength: 8 }), (words) => {
      assert.deepEqual(tokenize(quoteWords(words)), words);
    }), { numRuns: 500 });
  });

  test('any mix of quoting styles round-trips', () => {
    const quoted = fc.array(fc.tuple(word, fc.integer({ min: 0, max: 2 })), { minLength: 1, maxLength: 4 });
    fc.assert(fc.property(fc.array(quoted, { maxLength: 6 }), fc.constantFrom(' ', '  ', '\t', ' \t '), (ws, sep) => {
      const expected = ws.map((segs) => segs.map(([s]) => s).join(''));
      assert.deepEqual(tokenize(ws.map(quoteInStyle).join(sep)), expected);
    }), { numRuns: 500 });
  });

  test('never throws anything but a usage error', () => {
    fc.assert(fc.property(fc.string({ maxLength: 40 }), (s) => {
      try { tokenize(s); } catch (e) { assert.equal((e as { code?: string }).code, 'USAGE'); }
    }), { numRuns: 500 });
  });
});
