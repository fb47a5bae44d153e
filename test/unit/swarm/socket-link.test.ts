import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { adopt } from '../../../src/swarm/socket-link.js';
import type { PeerSession, SessionTransport } from '../../../src/swarm/session.js';

/** Stands in for a PeerSession: records how bytes arrive (onread into its buffer, or 'data'). */
class Sink {
  readonly buf = Buffer.alloc(16 * 1024);
  readonly got: Buffer[] = [];
  viaRead = 0;
  viaData = 0;
  closed = false;
  releases = 0;
  transport: SessionTransport | null = null;
  readTarget(): Buffer { return this.buf; }
  onRead(n: number): void { this.viaRead++; this.got.push(Buffer.from(this.buf.subarray(0, n))); }
  onData(chunk: Buffer): void { this.viaData++; this.got.push(Buffer.from(chunk)); }
  onDrain(): void { /* nothing queued */ }
  close(): void { this.closed = true; }
  released(): void { this.releases++; }
  start(): void { /* accepted side: the peer speaks first */ }
  get bytes(): Buffer { return Buffer.concat(this.got); }
}

function serverWith(onSocket: (s: net.Socket) => void): Promise<net.Server> {
  return new Promise((resolve) => {
    const srv = net.createServer({ noDelay: true, pauseOnConnect: true }, onSocket);
    srv.listen(0, '127.0.0.1', () => resolve(srv));
  });
}

function until(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const tick = (): void => {
      if (cond()) resolve();
      else if (Date.now() - t0 > ms) reject(new Error(`timed out waiting for ${what}`));
      else setTimeout(tick, 5);
    };
    tick();
  });
}

describe('socket-link adopt (accepted connections)', () => {
  test('moves the handle: every byte arrives through onread into the session buffer, in order', async () => {
    const sink = new Sink();
    let live: net.Socket | null = null;
    let liveClosed = false;
    const srv = await serverWith((sock) => {
      const r = adopt(sock, (t) => { sink.transport = t; return sink as unknown as PeerSession; });
      live = r.socket;
      r.socket.once('close', () => { liveClosed = true; });
      assert.notEqual(r.socket, sock, 'a new socket carries the connection');
    });
    const port = (srv.address() as net.AddressInfo).port;
    const payload = randomBytes(3 * 1024 * 1024 + 17);
    const c = net.connect(port, '127.0.0.1');
    const reply: Buffer[] = [];
    c.on('data', (d: Buffer) => reply.push(d));
    await new Promise<void>((r) => c.once('connect', () => r()));
    c.write(payload);
    await until(() => sink.bytes.length >= payload.length, 'the payload');
    assert.equal(sink.viaData, 0, 'no chunk went through data events');
    assert.ok(sink.viaRead >= payload.length / sink.buf.length, 'reads landed in the session buffer');
    assert.ok(sink.bytes.equals(payload), 'bytes identical and in order');

    // Writing goes through the same (moved) socket.
    sink.transport!.write(Buffer.from('pong'));
    await until(() => Buffer.concat(reply).toString() === 'pong', 'the reply');

    c.end();
    await until(() => liveClosed, 'close on the live socket');
    assert.ok(live !== null && (live as net.Socket).destroyed);
    assert.equal(sink.releases, 1, 'the session heard the close once');
    // The server's connection count was settled by the old object: close() resolves.
    await new Promise<void>((r) => srv.close(() => r()));
  });

  test('the data-event fallback (no movable handle) delivers the same bytes', async () => {
    const sink = new Sink();
    const srv = await serverWith((sock) => {
      const r = adopt(sock, () => sink as unknown as PeerSession, { moveHandle: false });
      assert.equal(r.socket, sock);
    });
    const port = (srv.address() as net.AddressInfo).port;
    const payload = randomBytes(200 * 1024);
    const c = net.connect(port, '127.0.0.1');
    await new Promise<void>((r) => c.once('connect', () => r()));
    c.end(payload);
    await until(() => sink.bytes.length >= payload.length, 'the payload');
    assert.equal(sink.viaRead, 0);
    assert.ok(sink.viaData >= 1);
    assert.ok(sink.bytes.equals(payload));
    await new Promise<void>((r) => srv.close(() => r()));
  });
});
