/** Names that enter from users and other peers: ids, file names, and a file name as a path component. */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import fc from 'fast-check';
import type { CoterieError } from '../../../src/common/errors.js';
import { fileNameProblem, idProblem, safeJoin } from '../../../src/common/names.js';

const HOSTILE_FILE_NAMES = [
  '', '.', '..', '../x', 'a/b', '/etc/passwd', 'a\\b', '..\\..\\x', 'nul\u0000byte', 'bell\u0007', 'esc\u001b[2J',
  'del\u007f', 'c1\u009bcsi', 'line\u2028sep', 'rtl\u202eexe.txt', 'iso\u2066x', 'tab\tname', 'new\nline', 'x'.repeat(256),
  'é'.repeat(128),
];

describe('names', () => {
  test('hostile file names are refused', () => {
    for (const n of HOSTILE_FILE_NAMES) assert.notEqual(fileNameProblem(n), null, JSON.stringify(n));
  });

  test('ordinary file names pass', () => {
    for (const n of ['report.txt', 'my notes.txt', '..hidden', 'a..b', 'ü.txt', '日本語.pdf', '-rf', 'x'.repeat(255)]) {
      assert.equal(fileNameProblem(n), null, n);
    }
  });

  test('ids: letters, digits and . _ @ + - only; not . or ..', () => {
    for (const n of ['', '.', '..', 'a/b', 'a b', 'a\u0000', 'é', 'x'.repeat(65), '../g']) assert.notEqual(idProblem(n), null, JSON.stringify(n));
    for (const n of ['alice', 'g-1', 'a.b', 'u@h', 'x+y', '...']) assert.equal(idProblem(n), null, n);
  });

  test('safeJoin: always directly inside the directory, or INVALID_NAME', () => {
    const dir = mkdtempSync(join(tmpdir(), 'coterie-names-'));
    try {
      for (const n of HOSTILE_FILE_NAMES) {
        assert.throws(() => safeJoin(dir, n), (e: unknown) => (e as CoterieError).code === 'INVALID_NAME', JSON.stringify(n));
      }
      assert.equal(safeJoin(dir, 'a..b'), join(dir, 'a..b'));
      // Any string at all: either refused, or a direct child of dir.
      fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 40 }), (n) => {
        let p: string;
        try { p = safeJoin(dir, n); } catch (e) { return (e as CoterieError).code === 'INVALID_NAME'; }
        return dirname(p) === dir && p === join(dir, n);
      }), { numRuns: 5000 });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
