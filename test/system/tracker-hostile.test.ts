/**
 * A tracker under hostile input: thousands of malformed, random and oversized (> 1 MiB) lines,
 * half-open connections and connections that never send, all at once, while an honest client
 * keeps creating users and groups. Every honest call must succeed and the tracker must be alive
 * (and answering) at the end. Hostile traffic comes from other loopback addresses (127.0.0.x) so
 * the per-address connection cap applies to it, not to the honest client.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePorts } from '../helpers/ports.js';
import { RpcTestClient, startTracker, stopAllTrackers, writeTrackerInfo } from '../helpers/tracker.js';

const dir = mkdtempSync(join(tmpdir(), 'coterie-hostile-'));
const sockets: Socket[] = [];
after(async () => {
  for (const s of sockets) s.destroy();
  await stopAllTrackers();
  rmSync(dir, { recursive: true, force: true });
});

function open(port: number, localAddress: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ port, host: '127.0.0.1', localAddress, allowHalfOpen: true });
    sockets.push(s);
    s.on('error', () => { /* resets are expected */ });
    s.once('connect', () => resolve(s));
    s.once('error', reject);
    s.resume(); // read and discard answers
  });
}

/** Whether the tracker hung up on `s` (FIN or reset) within `ms`. Our side is half-open, so wait for 'end' too. */
const closed = (s: Socket, ms: number) => new Promise<boolean>((resolve) => {
  if (s.destroyed || s.readableEnded) { resolve(true); return; }
  const t = setTimeout(() => resolve(false), ms);
  const done = () => { clearTimeout(t); s.destroy(); resolve(true); };
  s.once('end', done);
  s.once('close', done);
});

/** A random hostile line: garbage bytes, wrong JSON shapes, bad args, deep nesting... (no newline inside). */
function hostileLine(i: number): string | Buffer {
  switch (i % 12) {
    case 0: return Buffer.from(randomBytes(1 + (i % 300)).map((b) => (b === 0x0a ? 0x20 : b)));
    case 1: return '{"id":' + i + ',"op":"create_user","args":{"user":"' + 'x'.repeat(5000) + '","password":"p"}}';
    case 2: return '{"id":' + i + ',"op":"__proto__","args":{}}';
    case 3: return '{"id":' + i + ',"op":"login","args":{"__proto__":{"admin":true},"user":"a","password":"b","peer":"1:1","clientId":"0123456789abcdef"}}';
    case 4: return '['.repeat(50_000) + ']'.repeat(50_000);
    case 5: return '{"id":' + i + ',"op":"list_groups","args":{},"token":' + JSON.stringify('t'.repeat(129)) + '}';
    case 6: return '{"id":-5,"op":"status"}';
    case 7: return JSON.stringify({ id: i, op: 'heartbeat', args: { peer: 'x', clientId: 'zz', shares: Array(10).fill({ group: 1 }) }, token: 'abc' });
    case 8: return '{"id":1e400,"op":"status","args":{}}';
    case 9: return '"' + '\\u0000'.repeat(1000) + '"';
    case 10: return JSON.stringify({ id: i, op: 'upload_file', args: { group: 'g', info: '!!!', sha256: 'x', peer: 'p', clientId: 'c' }, token: 'f'.repeat(64) });
    default: return '{"id":' + i + ',"op":"status","args":{"extra":' + '9'.repeat(400) + '}}';
  }
}

describe('tracker under hostile input', () => {
  test('stays up and keeps serving an honest client', async () => {
    const [port] = await freePorts(1);
    const infoFile = writeTrackerInfo(dir, [port!]);
    const t = await startTracker({ infoFile, no: 1, dataDir: join(dir, 'data') });
    const honest = await RpcTestClient.connect(t.port);
    let stop = false;
    let honestOps = 0;
    let honestError: unknown = null;
    const honestLoop = (async () => {
      for (let i = 0; !stop || i < 5; i++) {
        await honest.ok('create_user', { user: `honest${i}`, password: 'pw' });
        const { token } = await honest.ok<{ token: string }>('login', { user: `honest${i}`, password: 'pw', peer: '127.0.0.1:9', clientId: '0123456789abcdef' });
        await honest.ok('create_group', { group: `group${i}` }, token);
        const gs = await honest.ok<{ groups: { group: string }[] }>('list_groups', {}, token);
        assert.ok(gs.groups.some((g) => g.group === `group${i}`));
        honestOps += 4;
      }
    })().catch((e: unknown) => { honestError = e; });

    // 1. Thousands of malformed lines: each connection sends 30 (it is cut after 20), 150 connections.
    const malformed = (async () => {
      let sent = 0;
      for (let c = 0; c < 150; c++) {
        const s = await open(t.port, '127.0.0.2');
        const lines = Array.from({ length: 30 }, (_, k) => hostileLine(c * 30 + k));
        for (const l of lines) { s.write(l); s.write('\n'); sent++; }
        assert.ok(await closed(s, 10_000), 'a connection sending garbage is cut');
      }
      return sent;
    })();

    // 2. Oversized lines: > 1 MiB with and without a newline, sent in pieces.
    const oversized = (async () => {
      for (let c = 0; c < 12; c++) {
        const s = await open(t.port, '127.0.0.3');
        const big = Buffer.alloc((1 << 20) + 1 + c * 50_000, c % 2 ? 0x7b : 0x61);
        for (let off = 0; off < big.length && !s.destroyed; off += 256 * 1024) s.write(big.subarray(off, off + 256 * 1024));
        if (c % 3 === 0) s.write('\n');
        assert.ok(await closed(s, 10_000), 'a connection sending an oversized line is cut');
      }
    })();

    // 3. Half-open connections: a partial line, then FIN; or a reset in the middle of a line.
    const halfOpen = (async () => {
      for (let c = 0; c < 40; c++) {
        const s = await open(t.port, '127.0.0.4');
        s.write('{"id":1,"op":"create_us');
        if (c % 2) s.end(); else s.destroy();
      }
    })();

    // 4. Connections that never send anything (held for the whole test), from two addresses.
    const silent = (async () => {
      for (let c = 0; c < 60; c++) await open(t.port, c % 2 ? '127.0.0.5' : '127.0.0.6');
    })();

    // 5. Random binary streams with newlines, many small writes.
    const fuzz = (async () => {
      for (let c = 0; c < 30; c++) {
        const s = await open(t.port, '127.0.0.7');
        for (let k = 0; k < 20 && !s.destroyed; k++) s.write(randomBytes(2000));
        s.end();
        await closed(s, 10_000);
      }
    })();

    // 6. Well-formed but wrong: bad logins from one address (rate limited), unknown sessions.
    const wrong = (async () => {
      const c = await RpcTestClient.connect(t.port, '127.0.0.1', { localAddress: '127.0.0.8' });
      sockets.push(c.socket);
      const codes = new Set<string>();
      for (let k = 0; k < 60; k++) {
        const r = await c.call('login', { user: `nobody${k}`, password: 'x', peer: '1.2.3.4:5', clientId: '0123456789abcdef' });
        if (!r.ok) codes.add(r.error.code);
        const r2 = await c.call('create_group', { group: 'x' }, randomBytes(32).toString('hex'));
        if (!r2.ok) codes.add(r2.error.code);
      }
      c.close();
      return codes;
    })();

    const [sent, , , , , , codes] = await Promise.all([malformed, oversized, halfOpen, silent, fuzz, Promise.resolve(), wrong]);
    stop = true;
    await honestLoop;
    assert.equal(honestError, null, `the honest client failed: ${String(honestError)}`);
    assert.ok(sent >= 4000, `sent ${sent} malformed lines`);
    assert.deepEqual([...codes].sort(), ['NO_SUCH_USER', 'RATE_LIMITED', 'UNAUTHENTICATED']);
    assert.ok(honestOps >= 20, `honest client did ${honestOps} calls`);

    // Still alive, still answering, on a fresh connection too.
    // No handler blew up (level 50 = error: "handler failed", "uncaught exception"...).
    const errors = t.stderrText().split('\n').filter((l) => l.startsWith('{') && (JSON.parse(l) as { level: number }).level >= 50);
    assert.deepEqual(errors, []);
    const fresh = await RpcTestClient.connect(t.port);
    const st = await fresh.ok<{ counts: { user: number; group: number } }>('status', {});
    assert.ok(st.counts.user >= honestOps / 4);
    fresh.close();
    honest.close();
    // Memory stays bounded (the 1 MiB lines were never buffered whole, many at once).
    const rssKb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${t.pid}/status`, 'utf8'))?.[1] ?? 0);
    assert.ok(rssKb < 400_000, `RSS ${rssKb} kB`);
    assert.equal(await t.stop(), 0);
  });
});
