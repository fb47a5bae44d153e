import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { CoterieError } from '../../../src/common/errors.js';
import { Bitfield } from '../../../src/swarm/bitfield.js';
import {
  HANDSHAKE_TIMEOUT_MS, IDLE_TIMEOUT_MS, KEEPALIVE_MS, MIN_PIPELINE, MAX_PIPELINE, MAX_REQUESTS_WHILE_CHOKED, MAX_UNREQUESTED_BYTES,
  PeerSession, makePeerId,
  type SessionOwner, type SessionTorrent,
} from '../../../src/swarm/session.js';
import { MAX_QUEUED_REQUESTS, Uploader, type BlockSource } from '../../../src/swarm/uploader.js';
import { TokenBucket } from '../../../src/swarm/rate-limit.js';
import { encodeBitfield, encodeHave, encodeHandshake, encodePiece, encodeRequest, UNCHOKE, type Handshake } from '../../../src/swarm/wire/codec.js';
import { pipePair, type MemoryTransport } from '../../helpers/swarm-pipe.js';

const PL = 64 * 1024;
const PIECES = 20;
const LENGTH = PIECES * PL - 1000;
const DATA = randomBytes(LENGTH);
const INFO_HASH = Buffer.alloc(20, 0x5a);

function torrent(ticket?: string): SessionTorrent {
  return {
    infoHash: INFO_HASH,
    geometry: { pieceCount: PIECES, pieceLength: PL, totalLength: LENGTH },
    peerId: makePeerId(),
    ext: { m: {}, v: 'test', reqq: 512, ...(ticket ? { ticket } : {}) },
  };
}

/** Records what a session reports; can act as the incoming side's server (attach on handshake). */
class Rec implements SessionOwner {
  events: string[] = [];
  blocks: Array<{ piece: number; begin: number; data: Buffer }> = [];
  closedWith: Error | undefined | 'open' = 'open';
  closes = 0;
  attachTo: SessionTorrent | null = null;
  onActiveHook: ((s: PeerSession) => void) | null = null;
  onHandshake(s: PeerSession, h: Handshake): void {
    this.events.push(`handshake:${h.extended}`);
    if (this.attachTo && h.infoHash.equals(this.attachTo.infoHash)) s.attach(this.attachTo, this);
  }
  onActive(s: PeerSession): void { this.events.push('active'); this.onActiveHook?.(s); }
  onPeerPieces(s: PeerSession): void { this.events.push(`pieces:${s.peerHas!.count}`); }
  onHave(_s: PeerSession, p: number): void { this.events.push(`have:${p}`); }
  onChoke(): void { this.events.push('choke'); }
  onUnchoke(): void { this.events.push('unchoke'); }
  onInterest(_s: PeerSession, v: boolean): void { this.events.push(`interest:${v}`); }
  onBlock(_s: PeerSession, piece: number, begin: number, data: Buffer): void { this.blocks.push({ piece, begin, data: Buffer.from(data) }); }
  onClose(_s: PeerSession, err?: Error): void { this.closes++; this.closedWith = err; }
}

const source: BlockSource = {
  pieceLength: PL,
  has: (p) => p >= 0 && p < PIECES,
  readBlocks(views, position) {
    let pos = position;
    for (const v of views) { DATA.copy(v, 0, pos, pos + v.length); pos += v.length; }
  },
};

interface Setup {
  a: PeerSession; b: PeerSession; ra: Rec; rb: Rec; ta: MemoryTransport; tb: MemoryTransport;
  pump: () => void; clock: { t: number };
}

/** A dials B (both in memory). B's owner attaches on handshake, as the peer server does. */
function connect(opts: { ticket?: string; noStart?: boolean } = {}): Setup {
  const clock = { t: 1000 };
  const now = (): number => clock.t;
  const { a: ta, b: tb, pump } = pipePair();
  const ra = new Rec(), rb = new Rec();
  rb.attachTo = torrent();
  const a = new PeerSession({ transport: ta, owner: ra, torrent: torrent(opts.ticket), clock: now, remote: 'b' });
  const b = new PeerSession({ transport: tb, owner: rb, clock: now, remote: 'a' });
  // Each transport knows the session that owns it: pump() delivers A's writes to B's session.
  ta.session = a;
  tb.session = b;
  if (!opts.noStart) { a.start(); pump(); }
  return { a, b, ra, rb, ta, tb, pump, clock };
}

describe('peer session: handshakes', () => {
  test('outgoing and incoming become active; the incoming side waits for the extended handshake and gets the ticket', () => {
    const { a, b, ra, rb } = connect({ ticket: 'T1' });
    assert.equal(a.state, 'active');
    assert.equal(b.state, 'active');
    assert.deepEqual(rb.events, ['handshake:true', 'active']);
    assert.deepEqual(ra.events, ['active']);
    assert.equal(b.peerExt?.ticket, 'T1');
    assert.equal(a.peerExt?.ticket, undefined);
    assert.ok(a.peerHandshake!.peerId.equals(rb.attachTo!.peerId));
  });

  test('a handshake for another torrent closes the outgoing side with PROTOCOL', () => {
    const s = connect({ noStart: true });
    s.rb.attachTo = { ...torrent(), infoHash: Buffer.alloc(20, 1) };
    // B answers for its own (different) torrent when A dials: simulate by feeding A a foreign handshake.
    s.a.start();
    s.a.onData(encodeHandshake(Buffer.alloc(20, 1), makePeerId()));
    assert.equal(s.a.state, 'closed');
    assert.equal((s.ra.closedWith as CoterieError).code, 'PROTOCOL');
    assert.equal(s.ra.closes, 1);
  });

  test('an unknown info-hash on an incoming connection closes it', () => {
    const s = connect({ noStart: true });
    s.rb.attachTo = null;
    s.a.start();
    s.pump();
    assert.equal(s.b.state, 'closed');
    assert.equal(s.a.state, 'closed');
    assert.equal(s.ra.closes, 1);
    assert.equal(s.rb.closes, 1);
  });

  test('garbage instead of a handshake closes with PROTOCOL, once', () => {
    const s = connect({ noStart: true });
    s.b.onData(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    s.b.onData(Buffer.from('more'));
    assert.equal(s.b.state, 'closed');
    assert.equal((s.rb.closedWith as CoterieError).code, 'PROTOCOL');
    assert.equal(s.rb.closes, 1);
  });

  test('handshake timeout after 10 s', () => {
    const s = connect({ noStart: true });
    s.clock.t += HANDSHAKE_TIMEOUT_MS - 1;
    s.b.tick();
    assert.equal(s.b.state, 'handshake');
    s.clock.t += 2;
    s.b.tick();
    assert.equal(s.b.state, 'closed');
    assert.equal((s.rb.closedWith as CoterieError).code, 'UNAVAILABLE');
  });

  test('a peer without BEP 10 is active at once on the incoming side', () => {
    const s = connect({ noStart: true });
    const reserved = Buffer.alloc(8);
    s.b.onData(encodeHandshake(INFO_HASH, makePeerId(), reserved));
    assert.equal(s.b.state, 'active');
    assert.deepEqual(s.rb.events, ['handshake:false', 'active']);
  });
});

describe('peer session: state', () => {
  test('bitfield then HAVEs: pieces announced once, new HAVEs one by one, repeats dropped', () => {
    const s = connect();
    const bf = new Bitfield(PIECES);
    bf.set(0); bf.set(5);
    s.b.sendBitfield(bf);
    s.b.sendHave(7);
    s.b.sendHave(5);
    s.b.sendHave(7);
    s.b.flushHaves(); // what the end of the event-loop turn does
    s.pump();
    assert.deepEqual(s.ra.events.filter((e) => e !== 'active'), ['pieces:2', 'have:7']);
    assert.equal(s.a.peerHas!.count, 3);
  });

  test("a turn's HAVEs go out in one write, by themselves at the end of the turn", async () => {
    const s = connect();
    s.tb.drain();
    const before = s.tb.writes;
    for (const p of [1, 2, 3, 9]) s.b.sendHave(p);
    assert.equal(s.tb.writes, before, 'nothing written during the turn');
    await new Promise((r) => setImmediate(r));
    assert.equal(s.tb.writes, before + 1, 'one write for four HAVEs');
    s.pump();
    // (the first HAVE before any bitfield is reported as the peer's initial pieces)
    assert.deepEqual(s.ra.events.filter((e) => e.startsWith('have:') || e.startsWith('pieces:')), ['pieces:1', 'have:2', 'have:3', 'have:9']);
    assert.deepEqual([1, 2, 3, 9].map((p) => s.a.peerHas!.get(p)), [true, true, true, true]);
    // A closed session drops what it had queued.
    s.b.sendHave(4);
    s.b.close();
    await new Promise((r) => setImmediate(r));
    assert.equal(s.tb.writes, before + 1);
  });

  test('HAVEs before a late bitfield: announced at the first HAVE, then the bitfield piece by piece', () => {
    const s = connect();
    s.tb.write(encodeHave(3));
    const bf = new Bitfield(PIECES);
    bf.set(3); bf.set(4);
    s.tb.write(encodeBitfield(bf.bytes()));
    s.pump();
    assert.deepEqual(s.ra.events.filter((e) => e !== 'active'), ['pieces:1', 'have:4']);
  });

  test('messages before the incoming side is active are kept and announced at activation', () => {
    const s = connect({ noStart: true });
    // A's handshake without its extended handshake yet, then a bitfield.
    const bf = Bitfield.allSet(PIECES);
    s.b.onData(Buffer.concat([encodeHandshake(INFO_HASH, makePeerId()), encodeBitfield(bf.bytes())]));
    assert.equal(s.b.state, 'ext');
    assert.deepEqual(s.rb.events, ['handshake:true']);
    s.b.onData(Buffer.from([0, 0, 0, 4, 20, 0, 0x64, 0x65])); // extended handshake "de"
    assert.deepEqual(s.rb.events, ['handshake:true', 'active', `pieces:${PIECES}`]);
  });

  test('a bitfield with spare bits set is a protocol error', () => {
    const s = connect();
    const bytes = Buffer.alloc(3);
    bytes[2] = 0x01; // piece 23 of 20
    s.tb.write(encodeBitfield(bytes));
    s.pump();
    assert.equal(s.a.state, 'closed');
    assert.equal((s.ra.closedWith as CoterieError).code, 'PROTOCOL');
  });

  test('choke, unchoke and interest both ways', () => {
    const s = connect();
    s.a.setInterested(true);
    s.b.unchoke();
    s.pump();
    assert.ok(s.rb.events.includes('interest:true'));
    assert.ok(s.ra.events.includes('unchoke'));
    assert.equal(s.a.peerChoking, false);
    assert.equal(s.b.peerInterested, true);
    s.b.choke();
    s.a.setInterested(false);
    s.a.setInterested(false); // no duplicate message
    s.pump();
    assert.deepEqual(s.rb.events.filter((e) => e.startsWith('interest')), ['interest:true', 'interest:false']);
    assert.ok(s.ra.events.includes('choke'));
  });

  test('idle timeout after 120 s of silence; keep-alives every 60 s keep the peer alive', () => {
    const s = connect();
    for (let i = 0; i < 5; i++) {
      s.clock.t += KEEPALIVE_MS;
      s.a.tick();
      s.b.tick();
      s.pump();
    }
    assert.equal(s.a.state, 'active');
    assert.equal(s.b.state, 'active');
    // Now B goes silent: it stops ticking (no keep-alives).
    s.clock.t += IDLE_TIMEOUT_MS + 1;
    s.a.tick();
    assert.equal(s.a.state, 'closed');
    assert.equal((s.ra.closedWith as CoterieError).code, 'UNAVAILABLE');
  });

  test('pipeline depth follows the measured rate within its bounds', () => {
    const s = connect();
    assert.equal(s.a.pipelineDepth(), MIN_PIPELINE);
    // 100 MB/s for a second: the depth goes to the cap.
    for (let i = 0; i < 100; i++) {
      s.clock.t += 10;
      s.a.down.add(1_000_000, s.clock.t);
    }
    assert.equal(s.a.pipelineDepth(), MAX_PIPELINE);
    assert.equal(s.a.pipelineDepth(256), 256);
  });
});

describe('peer session: serving requests (uploader)', () => {
  function serving(limiter: TokenBucket | null = null, timers: Array<() => void> = []): Setup {
    const s = connect();
    s.b.uploader = new Uploader(s.b, source, limiter, (fn) => { timers.push(fn); });
    s.b.unchoke();
    s.pump();
    return s;
  }

  test('a batch of requests is answered with the right bytes, coalesced into one write', () => {
    const s = serving();
    const reqs = [];
    for (let i = 0; i < 32; i++) reqs.push({ piece: 2 + (i >> 2), begin: (i & 3) * 16384, length: 16384 });
    s.a.sendRequests(reqs);
    const before = s.tb.writes;
    s.pump();
    assert.equal(s.tb.writes - before, 1, 'one write for 32 contiguous blocks');
    assert.equal(s.ra.blocks.length, 32);
    for (const blk of s.ra.blocks) {
      const pos = blk.piece * PL + blk.begin;
      assert.ok(blk.data.equals(DATA.subarray(pos, pos + 16384)));
    }
  });

  test('batches of every send-buffer size class (1 to 64 slots, and past 64) are served exactly', () => {
    for (const n of [1, 2, 3, 4, 5, 9, 16, 17, 33, 63, 64, 65, 70]) {
      const s = serving();
      const reqs = [];
      for (let i = 0; i < n; i++) reqs.push({ piece: i >> 2, begin: (i & 3) * 16384, length: 16384 });
      s.a.sendRequests(reqs);
      s.pump();
      assert.equal(s.ra.blocks.length, n, `${n} blocks`);
      for (const blk of s.ra.blocks) {
        const pos = blk.piece * PL + blk.begin;
        assert.ok(blk.data.equals(DATA.subarray(pos, pos + 16384)), `${n}: block ${blk.piece}/${blk.begin}`);
      }
    }
  });

  test('scattered requests and the short last piece are served exactly', () => {
    const s = serving();
    const last = PIECES - 1, lastLen = LENGTH - last * PL;
    const reqs = [{ piece: 9, begin: 16384, length: 16384 }, { piece: 1, begin: 0, length: 100 }, { piece: last, begin: 49152, length: lastLen - 49152 }];
    s.a.sendRequests(reqs);
    s.pump();
    assert.deepEqual(s.ra.blocks.map((b) => [b.piece, b.begin, b.data.length]), reqs.map((r) => [r.piece, r.begin, r.length]));
    for (const blk of s.ra.blocks) {
      const pos = blk.piece * PL + blk.begin;
      assert.ok(blk.data.equals(DATA.subarray(pos, pos + blk.data.length)));
    }
  });

  test(`more than ${MAX_QUEUED_REQUESTS} queued requests is a flood: disconnected`, () => {
    const s = serving();
    // Deliver the flood in one read so the queue cannot drain in between.
    const frames = [];
    for (let i = 0; i < MAX_QUEUED_REQUESTS + 1; i++) frames.push(encodeRequest(i % PIECES, 0, 16384));
    s.b.onData(Buffer.concat(frames));
    assert.equal(s.b.state, 'closed');
    assert.equal((s.rb.closedWith as CoterieError).code, 'PROTOCOL');
  });

  test('a request for a piece we do not have disconnects', () => {
    const s = connect();
    s.b.uploader = new Uploader(s.b, { ...source, has: (p) => p === 0 });
    s.b.unchoke();
    s.pump();
    s.a.sendRequests([{ piece: 1, begin: 0, length: 16384 }]);
    s.pump();
    assert.equal(s.b.state, 'closed');
    assert.equal((s.rb.closedWith as CoterieError).code, 'PROTOCOL');
  });

  test('requests while choked are ignored; a CHOKE drops what is queued', () => {
    const s = connect();
    s.b.uploader = new Uploader(s.b, source);
    s.a.sendRequests([{ piece: 1, begin: 0, length: 16384 }]);
    s.pump();
    assert.equal(s.b.state, 'active');
    assert.equal(s.ra.blocks.length, 0);
    // Queue requests without letting B serve (deliver them while B's socket is congested).
    s.b.unchoke();
    s.pump();
    const up = s.b.uploader;
    up.enqueue(1, 0, 16384);
    up.enqueue(1, 16384, 16384);
    assert.equal(up.queued, 2);
    s.b.choke();
    assert.equal(up.queued, 0);
  });

  test('a stream of requests while choked is a flood: disconnected past the limit', () => {
    const s = connect();
    s.b.uploader = new Uploader(s.b, source);
    const frames = [];
    for (let i = 0; i < MAX_REQUESTS_WHILE_CHOKED; i++) frames.push(encodeRequest(i % PIECES, 0, 16384));
    s.b.onData(Buffer.concat(frames));
    assert.equal(s.b.state, 'active', 'up to the limit they are dropped quietly');
    s.b.onData(encodeRequest(0, 0, 16384));
    assert.equal(s.b.state, 'closed');
    assert.equal((s.rb.closedWith as CoterieError).code, 'PROTOCOL');
  });

  test('a CANCEL removes a queued request', () => {
    const s = serving();
    // Both requests and the cancel reach B in one read, so B queues both before serving.
    s.a.sendRequests([{ piece: 3, begin: 0, length: 16384 }, { piece: 3, begin: 16384, length: 16384 }]);
    s.a.sendCancel({ piece: 3, begin: 0, length: 16384 });
    const merged = Buffer.concat(s.ta.out.splice(0));
    s.ta.out.push(merged);
    const before = s.b.uploader!.served;
    s.pump();
    assert.deepEqual(s.ra.blocks.map((b) => [b.piece, b.begin]), [[3, 16384]]);
    assert.equal(s.b.uploader!.served - before, 16384);
  });

  test('blocks we did not ask this peer for never reach the owner; a stream of them is a flood', () => {
    const s = connect();
    s.a.sendRequests([{ piece: 2, begin: 0, length: 16384 }]);
    s.pump();
    const block = (piece: number, begin: number): Buffer => encodePiece(piece, begin, DATA.subarray(piece * PL + begin, piece * PL + begin + 16384));
    // The requested block arrives once; a repeat and a block never asked for are dropped.
    s.tb.write(block(2, 0));
    s.tb.write(block(2, 0));
    s.tb.write(block(5, 16384));
    s.pump();
    assert.deepEqual(s.ra.blocks.map((b) => [b.piece, b.begin]), [[2, 0]]);
    assert.equal(s.a.unrequestedBytes, 2 * 16384);
    assert.equal(s.a.state, 'active');
    const flood = [];
    for (let i = 0; i * 16384 <= MAX_UNREQUESTED_BYTES; i++) flood.push(block(i % (PIECES - 1), 0));
    s.tb.write(Buffer.concat(flood));
    s.pump();
    assert.equal(s.a.state, 'closed');
    assert.equal((s.ra.closedWith as CoterieError).code, 'PROTOCOL');
  });

  test('after the peer chokes us, blocks of our earlier requests are unrequested', () => {
    const s = connect();
    s.a.sendRequests([{ piece: 1, begin: 0, length: 16384 }]);
    s.b.unchoke();
    s.b.choke();
    s.pump();
    assert.equal(s.a.requested.size, 0);
    s.tb.write(encodePiece(1, 0, DATA.subarray(PL, PL + 16384)));
    s.pump();
    assert.equal(s.ra.blocks.length, 0);
  });

  test('the upload rate limit holds serving until the bucket refills', () => {
    const timers: Array<() => void> = [];
    const clock = { t: 0 };
    const bucket = new TokenBucket(1_000_000, () => clock.t, 64 * 1024);
    const s = serving(bucket, timers);
    const reqs = [];
    for (let i = 0; i < 76; i++) reqs.push({ piece: i >> 2, begin: (i & 3) * 16384, length: 16384 });
    s.a.sendRequests(reqs);
    s.pump();
    // One send buffer (64 blocks) went out and drew the bucket into debt; the rest waits for it.
    assert.equal(s.ra.blocks.length, 64);
    assert.ok(bucket.available < 0);
    assert.equal(timers.length, 1);
    clock.t += 500;
    s.b.uploader!.flush(); // an early flush (a new request, a drain) must not bypass the wait
    s.pump();
    assert.equal(s.ra.blocks.length, 64);
    clock.t += 1500;
    timers.shift()!();
    s.pump();
    assert.equal(s.ra.blocks.length, 76);
  });

  test('unsolicited UNCHOKE and blocks from a peer reach the owner as-is (the picker judges them)', () => {
    const s = connect();
    s.tb.write(UNCHOKE);
    s.pump();
    assert.ok(s.ra.events.includes('unchoke'));
  });
});
