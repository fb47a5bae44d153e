import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { FrameTooLargeError } from '../../../src/common/errors.js';
import { encodeLine, isOpName, LineDecoder, ops, parseArgs, parseRequest, responseSchema, type OpName } from '../../../src/protocol/rpc.js';

/** Cuts `buf` at the given offsets. */
function chunks(buf: Buffer, cuts: number[]): Buffer[] {
  const at = [...new Set(cuts.map((c) => c % (buf.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const c of at) { out.push(buf.subarray(prev, c)); prev = c; }
  out.push(buf.subarray(prev));
  return out;
}

describe('LineDecoder', () => {
  test('lines come out whole however the stream is cut (property)', () => {
    const line = fc.string({ unit: 'binary', maxLength: 40 }).map((s) => s.replace(/[\n\r]/g, ' '));
    fc.assert(fc.property(fc.array(line, { maxLength: 12 }), fc.array(fc.nat(), { maxLength: 20 }), (lines, cuts) => {
      const buf = Buffer.from(lines.map((l) => l + '\n').join(''), 'utf8');
      const d = new LineDecoder(1000);
      const got = chunks(buf, cuts).flatMap((c) => d.push(c));
      assert.deepEqual(got, lines);
      assert.equal(d.pending, 0);
    }));
  });

  test('a multi-byte character split across chunks is decoded intact', () => {
    const buf = Buffer.from('héllo wörld €\n', 'utf8');
    const d = new LineDecoder();
    const got: string[] = [];
    for (let i = 0; i < buf.length; i++) got.push(...d.push(buf.subarray(i, i + 1)));
    assert.deepEqual(got, ['héllo wörld €']);
  });

  test('CRLF endings are accepted; an incomplete line is held back', () => {
    const d = new LineDecoder();
    assert.deepEqual(d.push(Buffer.from('a\r\nb\nc')), ['a', 'b']);
    assert.equal(d.pending, 1);
    assert.deepEqual(d.push(Buffer.from('d\n')), ['cd']);
  });

  test('a line of exactly the cap passes, one byte more is refused', () => {
    const d = new LineDecoder(10);
    assert.deepEqual(d.push(Buffer.from('x'.repeat(10) + '\n')), ['x'.repeat(10)]);
    assert.throws(() => d.push(Buffer.from('y'.repeat(11) + '\n')), (e: unknown) => e instanceof FrameTooLargeError && e.code === 'TOO_LARGE');
  });

  test('an oversized line is refused before its newline arrives (never buffered whole)', () => {
    const d = new LineDecoder(100);
    d.push(Buffer.alloc(60, 0x61));
    assert.throws(() => d.push(Buffer.alloc(60, 0x61)), (e: unknown) => e instanceof FrameTooLargeError && e.size === 120 && e.cap === 100);
  });

  test('an oversized line spread over many chunks is refused when its parts pass the cap', () => {
    const d = new LineDecoder(1000);
    let threw = false;
    for (let i = 0; i < 20 && !threw; i++) {
      try { d.push(Buffer.alloc(100, 0x62)); } catch (e) { threw = e instanceof FrameTooLargeError; assert.ok(i >= 10); }
    }
    assert.ok(threw);
  });

  test('the default cap is 1 MiB', () => {
    const d = new LineDecoder();
    assert.equal(d.push(Buffer.from('z'.repeat(1 << 20) + '\n'))[0]!.length, 1 << 20);
    assert.throws(() => d.push(Buffer.alloc((1 << 20) + 1, 0x7a)), FrameTooLargeError);
  });
});

describe('encodeLine', () => {
  test('one line, newline terminated, even with newlines inside strings', () => {
    const line = encodeLine({ id: 1, ok: true, result: { text: 'a\nb\r\nc' } });
    assert.equal(line.indexOf('\n'), line.length - 1);
    assert.deepEqual(JSON.parse(line), { id: 1, ok: true, result: { text: 'a\nb\r\nc' } });
  });

  test('responses round-trip through the response schema', () => {
    assert.ok(responseSchema.safeParse(JSON.parse(encodeLine({ id: 3, ok: false, error: { code: 'NOT_MEMBER', message: 'm' } }))).success);
    assert.ok(!responseSchema.safeParse({ id: 3, ok: true, result: {}, extra: 1 }).success);
  });
});

describe('parseRequest', () => {
  const bad = (line: string) => {
    const r = parseRequest(line);
    assert.equal(r.ok, false, line);
    return r as Extract<typeof r, { ok: false }>;
  };

  test('a well-formed request parses', () => {
    const r = parseRequest('{"id":7,"op":"login","args":{"a":1},"token":"t"}');
    assert.ok(r.ok);
    assert.deepEqual(r.req, { id: 7, op: 'login', args: { a: 1 }, token: 't' });
  });

  test('invalid JSON is BAD_REQUEST without an id', () => {
    for (const l of ['', '{', 'nope', '{"id":1,}', '\u0000']) {
      const r = bad(l);
      assert.equal(r.error.code, 'BAD_REQUEST');
      assert.equal(r.id, null);
    }
  });

  test('a request with an unknown field, a bad id or oversized fields is BAD_REQUEST, keeping the id when readable', () => {
    assert.equal(bad('{"id":4,"op":"status","args":{},"extra":true}').id, 4);
    assert.equal(bad('{"id":5,"op":"' + 'x'.repeat(65) + '"}').id, 5);
    assert.equal(bad('{"id":6,"op":"status","token":"' + 't'.repeat(129) + '"}').id, 6);
    for (const l of ['{"id":-1,"op":"status"}', '{"id":1.5,"op":"status"}', '{"id":"1","op":"status"}', '{"op":"status"}',
      '{"id":1}', '{"id":1,"op":5}', '[]', 'null', '42', '"str"', '{"id":1e300,"op":"status"}']) {
      assert.equal(bad(l).error.code, 'BAD_REQUEST', l);
    }
  });

  test('never throws on random input (property)', () => {
    fc.assert(fc.property(fc.oneof(fc.string(), fc.json(), fc.jsonValue().map((v) => JSON.stringify(v))), (s) => {
      const r = parseRequest(s);
      if (!r.ok) assert.equal(r.error.code, 'BAD_REQUEST');
    }), { numRuns: 500 });
  });
});

/** A valid argument object for every op. */
const valid: { [K in OpName]: unknown } = {
  create_user: { user: 'alice', password: 'pw' },
  login: { user: 'alice', password: 'pw', peer: '127.0.0.1:9000', clientId: '0123456789abcdef' },
  heartbeat: { peer: '127.0.0.1:9000', clientId: '0123456789abcdef', shares: [{ group: 'g', infoHash: 'a'.repeat(40) }] },
  logout: {},
  create_group: { group: 'g' },
  join_group: { group: 'g' },
  leave_group: { group: 'g' },
  list_requests: { group: 'g' },
  accept_request: { group: 'g', user: 'bob' },
  reject_request: { group: 'g', user: 'bob' },
  list_groups: {},
  list_files: { group: 'g' },
  upload_file: { group: 'g', info: 'ZGF0YQ==', sha256: 'b'.repeat(64), peer: '127.0.0.1:9000', clientId: '0123456789abcdef' },
  announce: { group: 'g', infoHash: 'a'.repeat(40), peer: '127.0.0.1:9000', clientId: '0123456789abcdef' },
  stop_share: { group: 'g', name: 'f.txt', peer: '127.0.0.1:9000', clientId: '0123456789abcdef' },
  get_peers: { group: 'g', name: 'f.txt' },
  status: {},
};

describe('parseArgs', () => {
  const opNames = Object.keys(ops) as OpName[];

  test('isOpName knows every op and nothing else', () => {
    for (const op of opNames) assert.ok(isOpName(op));
    for (const op of ['toString', '__proto__', 'constructor', 'hasOwnProperty', 'nope', '']) assert.ok(!isOpName(op), op);
  });

  test('valid arguments pass for every op', () => {
    for (const op of opNames) assert.ok(parseArgs(op, valid[op]).ok, op);
    // Absent args mean {} (ops without arguments).
    assert.ok(parseArgs('status', undefined).ok);
  });

  test('an unknown field is refused for every op (property)', () => {
    fc.assert(fc.property(fc.constantFrom(...opNames), fc.string({ minLength: 1, maxLength: 12 }), fc.jsonValue(), (op, key, v) => {
      fc.pre(!Object.prototype.hasOwnProperty.call(valid[op], key) && !['user', 'password', 'peer', 'clientId', 'group', 'name', 'info', 'sha256', 'infoHash', 'shares'].includes(key));
      const r = parseArgs(op, { ...(valid[op] as object), [key]: v });
      assert.equal(r.ok, false);
      if (!r.ok) assert.equal(r.error.code, 'BAD_REQUEST');
    }), { numRuns: 300 });
  });

  test('oversized and malformed values are refused', () => {
    const cases: [OpName, Record<string, unknown>][] = [
      ['create_user', { user: 'u'.repeat(65), password: 'pw' }],
      ['create_user', { user: 'alice', password: 'p'.repeat(257) }],
      ['create_user', { user: '', password: 'pw' }],
      ['create_user', { user: 'alice', password: '' }],
      ['create_user', { user: 'alice' }],
      ['create_user', { user: 5, password: 'pw' }],
      ['login', { ...(valid.login as object), clientId: 'XYZ' }],
      ['login', { ...(valid.login as object), peer: 'p'.repeat(65) }],
      ['upload_file', { ...(valid.upload_file as object), info: 'A'.repeat((1 << 19) + 4) }],
      ['upload_file', { ...(valid.upload_file as object), info: 'not base64!' }],
      ['upload_file', { ...(valid.upload_file as object), sha256: 'B'.repeat(64) }],
      ['announce', { ...(valid.announce as object), infoHash: 'a'.repeat(39) }],
      ['stop_share', { ...(valid.stop_share as object), name: 'n'.repeat(256) }],
      ['heartbeat', { ...(valid.heartbeat as object), shares: [{ group: 'g', infoHash: 'a'.repeat(40), x: 1 }] }],
      ['heartbeat', { ...(valid.heartbeat as object), shares: 'none' }],
      ['list_groups', { anything: 1 }],
      ['status', [] as unknown as Record<string, unknown>],
    ];
    for (const [op, args] of cases) {
      const r = parseArgs(op, args);
      assert.equal(r.ok, false, `${op} ${JSON.stringify(args).slice(0, 80)}`);
      if (!r.ok) assert.equal(r.error.code, 'BAD_REQUEST');
    }
  });

  test('a heartbeat listing more than 100,000 shares is refused', () => {
    const shares = Array.from({ length: 100_001 }, () => ({ group: 'g', infoHash: 'a'.repeat(40) }));
    assert.equal(parseArgs('heartbeat', { ...(valid.heartbeat as object), shares }).ok, false);
  });
});
