/**
 * Tracker hardening: request and connection rates per address (AddressLimiter and the RPC server
 * using it), and login failure budgets that hold across several trackers without any message
 * between them.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { CoterieError } from '../../../src/common/errors.js';
import { silentLogger } from '../../../src/common/log.js';
import { signTicket } from '../../../src/protocol/ticket.js';
import { parseManifest } from '../../../src/swarm/manifest.js';
import { AddressLimiter } from '../../../src/tracker/address-limiter.js';
import { createDomain, loadIdentity, type Domain } from '../../../src/tracker/domain/index.js';
import { Presence } from '../../../src/tracker/presence.js';
import { RpcServer, type ServerLimits } from '../../../src/tracker/server.js';
import { HybridClock } from '../../../src/tracker/store/hlc.js';
import { MemoryStore } from '../../../src/tracker/store/memory-store.js';
import { RpcTestClient } from '../../helpers/tracker.js';

describe('AddressLimiter', () => {
  test('a burst, then one token per 1/rate s; addresses are independent', () => {
    const l = new AddressLimiter({ ratePerSecond: 10, burst: 3 });
    assert.deepEqual([0, 0, 0].map(() => l.take('a', 1000)), [0, 0, 0]);
    assert.equal(l.take('a', 1000), 100, 'fourth waits one token time');
    assert.equal(l.take('a', 1000), 200, 'fifth queues behind it');
    assert.equal(l.take('b', 1000), 0, 'another address is not affected');
    // 0.5 s later: 5 tokens refilled, 2 of them pay the debt.
    assert.equal(l.take('a', 1500), 0);
    assert.equal(l.tryTake('a', 1500), true);
    assert.equal(l.tryTake('a', 1500), true);
    assert.equal(l.tryTake('a', 1500), false);
  });

  test('memory stays bounded under many addresses; a forgotten bucket was a full one', () => {
    const l = new AddressLimiter({ ratePerSecond: 1, burst: 2, maxAddresses: 100 });
    for (let i = 0; i < 10_000; i++) l.take(`10.0.${i >> 8}.${i & 255}`, i);
    assert.ok(l.size <= 100, `size ${l.size}`);
    // A busy address is remembered across the churn only while it is in debt or recent.
    l.take('x', 20_000); l.take('x', 20_000);
    assert.equal(l.tryTake('x', 20_000), false);
  });
});

async function server(limits: Partial<ServerLimits>): Promise<{ server: RpcServer; port: number }> {
  const s = new RpcServer({ logger: silentLogger(), limits, dispatch: async () => ({}) });
  const a = await s.listen('127.0.0.1', 0);
  return { server: s, port: a.port };
}

describe('RpcServer rates per address', () => {
  test('a flooding address is slowed to its rate; another address is answered at once', async () => {
    const { server: s, port } = await server({ requestsPerSecondPerAddress: 50, requestBurstPerAddress: 10 });
    try {
      const flood = await RpcTestClient.connect(port, '127.0.0.1', { localAddress: '127.0.0.21' });
      const start = Date.now();
      const all = Promise.all(Array.from({ length: 60 }, () => flood.call('status', {}, undefined, 20_000)));
      await new Promise((r) => setTimeout(r, 100));
      const other = await RpcTestClient.connect(port, '127.0.0.1', { localAddress: '127.0.0.22' });
      const t0 = Date.now();
      assert.equal((await other.call('status')).ok, true);
      assert.ok(Date.now() - t0 < 300, `the other address waited ${Date.now() - t0} ms`);
      const rs = await all;
      const took = Date.now() - start;
      assert.ok(rs.every((r) => r.ok), 'every flooded request is still answered');
      // 10 at once, then 50 more at 50/s: at least ~1 s.
      assert.ok(took >= 900, `60 requests took only ${took} ms`);
      flood.close(); other.close();
    } finally { await s.close(); }
  });

  test('new connections per second per address: past the burst, refused with RATE_LIMITED', async () => {
    const { server: s, port } = await server({ connectionsPerSecondPerAddress: 1, connectionBurstPerAddress: 3 });
    try {
      const cs: RpcTestClient[] = [];
      for (let i = 0; i < 3; i++) cs.push(await RpcTestClient.connect(port, '127.0.0.1', { localAddress: '127.0.0.23' }));
      for (const c of cs) assert.equal((await c.call('status')).ok, true);
      const extra = await RpcTestClient.connect(port, '127.0.0.1', { localAddress: '127.0.0.23' });
      await extra.closed;
      assert.equal((extra.unmatched[0] as { error: { code: string } }).error.code, 'RATE_LIMITED');
      const elsewhere = await RpcTestClient.connect(port, '127.0.0.1', { localAddress: '127.0.0.24' });
      assert.equal((await elsewhere.call('status')).ok, true);
      for (const c of [...cs, elsewhere]) c.close();
    } finally { await s.close(); }
  });
});

describe('RpcServer partial lines', () => {
  test('a line dripped slower than the line timeout is cut, even while bytes keep coming', async () => {
    const { server: s, port } = await server({ lineTimeoutMs: 300 });
    try {
      const c = await RpcTestClient.connect(port);
      const t0 = Date.now();
      const drip = setInterval(() => c.writeRaw('x'), 50);
      await c.closed;
      clearInterval(drip);
      const took = Date.now() - t0;
      assert.ok(took >= 250 && took < 2_000, `cut after ${took} ms`);
      assert.equal((c.unmatched[0] as { error: { code: string } }).error.code, 'BAD_REQUEST');
      // Whole lines, however many, are not affected.
      const d = await RpcTestClient.connect(port);
      for (let i = 0; i < 5; i++) { assert.equal((await d.call('status')).ok, true); await new Promise((r) => setTimeout(r, 100)); }
      d.close();
    } finally { await s.close(); }
  });

  test('partial lines over the server-wide cap: the connection that goes over is closed, others live', async () => {
    const { server: s, port } = await server({ maxBufferedBytes: 150_000 });
    try {
      const cs: RpcTestClient[] = [];
      for (let i = 0; i < 3; i++) cs.push(await RpcTestClient.connect(port, '127.0.0.1', { localAddress: `127.0.0.${40 + i}` }));
      cs[0]!.writeRaw(Buffer.alloc(70_000, 0x61));
      cs[1]!.writeRaw(Buffer.alloc(70_000, 0x61));
      await new Promise((r) => setTimeout(r, 200));
      cs[2]!.writeRaw(Buffer.alloc(70_000, 0x61));
      await cs[2]!.closed;
      assert.equal((cs[2]!.unmatched[0] as { error: { code: string } }).error.code, 'RATE_LIMITED');
      // The first two finish their lines and are answered.
      cs[0]!.writeRaw('\n');
      await new Promise((r) => setTimeout(r, 100));
      assert.equal((cs[0]!.unmatched[0] as { error: { code: string } }).error.code, 'BAD_REQUEST', 'the finished line was answered');
      cs[1]!.writeRaw('\n');
      assert.equal((await cs[1]!.call('status')).ok, true, 'still served');
      for (const c of cs) c.close();
    } finally { await s.close(); }
  });
});

describe('login failure budgets across trackers', () => {
  function tracker(trackerCount: number, now: () => number): Domain {
    const store = new MemoryStore({ clock: new HybridClock(now) });
    return createDomain({
      store, now, presence: new Presence({ now, origin: store.origin }), identity: loadIdentity(store), parseManifest, signTicket,
      scrypt: { N: 1024, r: 8, p: 1 }, loginLimits: { perUser: 5, perAddress: 30, windowMs: 60_000 }, trackerCount,
    });
  }

  async function code(p: Promise<unknown>): Promise<string> {
    try { await p; return 'ok'; } catch (e) { return (e as CoterieError).code; }
  }

  test('a guesser spreading attempts over 3 trackers gets at most limit + 2 tries a minute in all', async () => {
    let t = 1_750_000_000_000;
    const now = () => t;
    const trackers = [tracker(3, now), tracker(3, now), tracker(3, now)];
    // The same account on each (as replication would make it).
    for (const d of trackers) await d.accounts.createUser('alice', 'secret');
    let guesses = 0;
    for (let round = 0; round < 5; round++) {
      for (const d of trackers) {
        const c = await code(d.accounts.login('alice', `guess${guesses}`, 'h:1', '0123456789abcdef', { remote: `10.9.${round}.1`, connId: null }));
        if (c === 'WRONG_PASSWORD') guesses++;
        else assert.equal(c, 'RATE_LIMITED');
      }
    }
    assert.ok(guesses <= 5 + 2, `${guesses} guesses got through in one minute`);
    assert.ok(guesses >= 5, 'the budget is not smaller than the single-tracker one');
    // A minute later the budget is back.
    t += 60_001;
    assert.ok((await trackers[0]!.accounts.login('alice', 'secret', 'h:1', '0123456789abcdef', { remote: '10.1.1.1', connId: null })).token);
  });

  test('one tracker alone keeps the full budget', async () => {
    const t = 1_750_000_000_000;
    const d = tracker(1, () => t);
    await d.accounts.createUser('bob', 'secret');
    for (let i = 0; i < 5; i++) assert.equal(await code(d.accounts.login('bob', 'bad', 'h:1', '0123456789abcdef', { remote: '10.2.2.2', connId: null })), 'WRONG_PASSWORD');
    assert.equal(await code(d.accounts.login('bob', 'secret', 'h:1', '0123456789abcdef', { remote: '10.2.2.3', connId: null })), 'RATE_LIMITED');
  });
});
