/** The RPC transport on a real loopback socket, with a scripted dispatcher. */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { CoterieError } from '../../../src/common/errors.js';
import { silentLogger } from '../../../src/common/log.js';
import { NO_ID, RpcServer, type ServerLimits } from '../../../src/tracker/server.js';
import type { ConnContext } from '../../../src/tracker/handlers.js';
import { RpcTestClient } from '../../helpers/tracker.js';

const closedConns: number[] = [];

async function startServer(limits: Partial<ServerLimits> = {}) {
  const server = new RpcServer({
    logger: silentLogger(),
    limits,
    onClose: (c) => closedConns.push(c.connId),
    dispatch: async (op, args, token, conn: ConnContext) => {
      if (op === 'status') return { conn: conn.connId, remote: conn.remote, token: token ?? null };
      if (op === 'list_groups') throw new Error('boom: a bug in a handler');
      if (op === 'join_group') throw new CoterieError('NOT_MEMBER', 'scripted refusal');
      if (op === 'create_group') {
        // Slow op: answers must still come back in request order.
        await new Promise((r) => setTimeout(r, 30));
        return { slow: (args as { group: string }).group };
      }
      if (op === 'login') { conn.hasSession = true; return { token: 't', user: 'u', trackerKeys: [] }; }
      return {};
    },
  });
  const addr = await server.listen('127.0.0.1', 0);
  return { server, port: addr.port };
}

describe('RpcServer', () => {
  let s: Awaited<ReturnType<typeof startServer>>;
  before(async () => { s = await startServer(); });
  after(async () => { await s.server.close(); });

  test('answers carry the request id; pipelined requests are answered in order', async () => {
    const c = await RpcTestClient.connect(s.port);
    const order: number[] = [];
    const calls = [
      c.call('create_group', { group: 'slow' }).then((r) => { order.push(r.id); return r; }),
      c.call('status', {}, 'tok').then((r) => { order.push(r.id); return r; }),
    ];
    const [slow, st] = await Promise.all(calls);
    assert.deepEqual(slow, { id: 1, ok: true, result: { slow: 'slow' } });
    assert.equal(st!.ok && (st.result as { token: string }).token, 'tok');
    assert.deepEqual(order, [1, 2]);
    c.close();
  });

  test('a CoterieError is answered with its code; any other error with INTERNAL, and the server lives on', async () => {
    const c = await RpcTestClient.connect(s.port);
    const r1 = await c.call('join_group', { group: 'g' });
    assert.ok(!r1.ok && r1.error.code === 'NOT_MEMBER');
    const r2 = await c.call('list_groups', {});
    assert.ok(!r2.ok && r2.error.code === 'INTERNAL');
    assert.ok(!r2.ok && !r2.error.message.includes('boom'), 'internal details are not sent');
    assert.ok((await c.call('status', {})).ok);
    c.close();
  });

  test('malformed lines get BAD_REQUEST (with the id when readable) or UNKNOWN_OP', async () => {
    const c = await RpcTestClient.connect(s.port);
    c.writeRaw('not json\n');
    c.writeRaw('{"id":77,"op":"status","args":{},"bogus":1}\n');
    c.writeRaw('{"id":78,"op":"fly","args":{}}\n');
    c.writeRaw('{"id":79,"op":"create_user","args":{"user":"x"}}\n');
    c.writeRaw('\n\r\n');
    const ok = await c.call('status', {});
    assert.ok(ok.ok, 'the connection still works');
    assert.deepEqual(c.unmatched.map((m) => { const r = m as { id: number; error: { code: string } }; return [r.id, r.error.code]; }),
      [[NO_ID, 'BAD_REQUEST'], [77, 'BAD_REQUEST'], [78, 'UNKNOWN_OP'], [79, 'BAD_REQUEST']]);
    c.close();
  });

  test('more than 20 malformed lines close the connection', async () => {
    const c = await RpcTestClient.connect(s.port);
    for (let i = 0; i < 25; i++) c.writeRaw(`garbage ${i}\n`);
    await c.closed;
    assert.equal(c.unmatched.length, 21, '20 answers, then the hang-up notice');
  });

  test('an oversized line is answered TOO_LARGE and the connection closed', async () => {
    const c = await RpcTestClient.connect(s.port);
    c.writeRaw(Buffer.alloc((1 << 20) + 10, 0x61));
    await c.closed;
    assert.deepEqual((c.unmatched[0] as { error: { code: string } }).error.code, 'TOO_LARGE');
  });

  test('a client that half-closes still gets every answer', async () => {
    const sock = connect({ port: s.port, host: '127.0.0.1', allowHalfOpen: true });
    await new Promise((r) => sock.once('connect', r));
    let text = '';
    sock.on('data', (d) => { text += d.toString(); });
    sock.end('{"id":1,"op":"create_group","args":{"group":"a"}}\n{"id":2,"op":"status","args":{}}\n');
    await new Promise((r) => sock.once('close', r));
    assert.deepEqual(text.trim().split('\n').map((l) => (JSON.parse(l) as { id: number }).id), [1, 2]);
  });

  test('a thousand pipelined requests are all answered, in order', async () => {
    const c = await RpcTestClient.connect(s.port);
    const rs = await Promise.all(Array.from({ length: 1000 }, () => c.call('status', {})));
    assert.deepEqual(rs.map((r) => r.id), Array.from({ length: 1000 }, (_, i) => i + 1));
    assert.ok(rs.every((r) => r.ok));
    c.close();
  });

  test('closing a connection is reported (presence drops its leases)', async () => {
    const c = await RpcTestClient.connect(s.port);
    const r = await c.call('status', {});
    const id = (r.ok && (r.result as { conn: number }).conn) as number;
    c.close();
    for (let i = 0; i < 100 && !closedConns.includes(id); i++) await new Promise((x) => setTimeout(x, 10));
    assert.ok(closedConns.includes(id));
  });
});

describe('RpcServer: replication hand-over', () => {
  test('a connection opening with a hello goes to the link handler, with what was read after it', async () => {
    const s = await startServer();
    const got: { lines: string[]; pending: number; rest: string }[] = [];
    s.server.setLinkHandler((sock, lines, decoder) => {
      const entry = { lines, pending: decoder.pending, rest: '' };
      got.push(entry);
      sock.on('data', (d: Buffer) => { entry.rest += d.toString(); if (entry.rest.endsWith('\n')) sock.end('welcome\n'); });
    });
    try {
      const sock = connect({ port: s.port, host: '127.0.0.1' });
      await new Promise((r) => sock.once('connect', r));
      let answer = '';
      sock.on('data', (d) => { answer += d.toString(); });
      sock.write('{"t":"hello","v":1}\n{"t":"vector"}\n{"t":"par');
      await new Promise((r) => setTimeout(r, 50));
      sock.write('tial"}\n');
      await new Promise((r) => sock.once('close', r));
      assert.equal(got.length, 1);
      assert.deepEqual(got[0]!.lines, ['{"t":"hello","v":1}', '{"t":"vector"}']);
      assert.equal(got[0]!.pending, '{"t":"par'.length);
      assert.equal(got[0]!.rest, 'tial"}\n');
      assert.equal(answer, 'welcome\n', 'the RPC server wrote nothing on a handed-over connection');
      assert.equal(s.server.connectionCount, 0, 'no longer counted as an RPC connection');

      // RPC connections are unaffected, and a hello later than the first line is just a bad request.
      const c = await RpcTestClient.connect(s.port);
      assert.ok((await c.call('status', {})).ok);
      c.writeRaw('{"t":"hello","v":1}\n');
      assert.ok((await c.call('status', {})).ok);
      assert.equal((c.unmatched[0] as { error: { code: string } }).error.code, 'BAD_REQUEST');
      c.close();
    } finally {
      await s.server.close();
    }
  });

  test('without a link handler a hello is an ordinary bad request', async () => {
    const s = await startServer();
    try {
      const c = await RpcTestClient.connect(s.port);
      c.writeRaw('{"t":"hello","v":1}\n');
      assert.ok((await c.call('status', {})).ok);
      assert.equal((c.unmatched[0] as { error: { code: string } }).error.code, 'BAD_REQUEST');
      c.close();
    } finally {
      await s.server.close();
    }
  });
});

describe('RpcServer limits', () => {
  test('connections per address are capped; other addresses are not affected', async () => {
    const s = await startServer({ maxConnsPerAddress: 3 });
    const held: RpcTestClient[] = [];
    try {
      for (let i = 0; i < 3; i++) held.push(await RpcTestClient.connect(s.port, '127.0.0.1', { localAddress: '127.0.0.2' }));
      for (const c of held) assert.ok((await c.call('status', {})).ok);
      const extra = await RpcTestClient.connect(s.port, '127.0.0.1', { localAddress: '127.0.0.2' });
      await extra.closed;
      assert.equal((extra.unmatched[0] as { error: { code: string } }).error.code, 'RATE_LIMITED');
      const other = await RpcTestClient.connect(s.port, '127.0.0.1', { localAddress: '127.0.0.3' });
      const st = await other.call('status', {});
      assert.ok(st.ok && (st.result as { remote: string }).remote === '127.0.0.3');
      other.close();
      // A slot frees when a connection closes.
      held.pop()!.close();
      await new Promise((r) => setTimeout(r, 50));
      const again = await RpcTestClient.connect(s.port, '127.0.0.1', { localAddress: '127.0.0.2' });
      assert.ok((await again.call('status', {})).ok);
      held.push(again);
    } finally {
      for (const c of held) c.close();
      await s.server.close();
    }
  });

  test('idle connections are closed, unless they hold a session', async () => {
    const s = await startServer({ idleMs: 200 });
    try {
      const idle = await RpcTestClient.connect(s.port);
      const quiet = await RpcTestClient.connect(s.port); // sent one request, then nothing
      await quiet.call('status', {});
      const session = await RpcTestClient.connect(s.port);
      await session.call('login', { user: 'u', password: 'p', peer: 'h:1', clientId: '0123456789abcdef' });
      const t0 = Date.now();
      await Promise.all([idle.closed, quiet.closed]);
      assert.ok(Date.now() - t0 < 2_000);
      await new Promise((r) => setTimeout(r, 400));
      assert.ok((await session.call('status', {})).ok, 'the session connection is kept');
      session.close();
    } finally {
      await s.server.close();
    }
  });

  test('total connections are capped', async () => {
    const s = await startServer({ maxConns: 2 });
    try {
      const a = await RpcTestClient.connect(s.port), b = await RpcTestClient.connect(s.port, '127.0.0.1', { localAddress: '127.0.0.4' });
      await a.call('status', {}); await b.call('status', {});
      const c = await RpcTestClient.connect(s.port, '127.0.0.1', { localAddress: '127.0.0.5' });
      await c.closed;
      assert.equal((c.unmatched[0] as { error: { code: string } }).error.code, 'RATE_LIMITED');
      assert.equal(s.server.connectionCount, 2);
      a.close(); b.close();
    } finally {
      await s.server.close();
    }
  });
});
