import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
// @ts-expect-error: the package ships no type declarations (dev-only differential oracle)
import Protocol from 'bittorrent-protocol';
import {
  BLOCK_SIZE, CHOKE, INTERESTED, KEEP_ALIVE, NOT_INTERESTED, UNCHOKE, WireDecoder, encodeBitfield, encodeCancel,
  encodeExtended, encodeHandshake, encodeHave, encodePiece, encodeRequest, encodeRequests, maxFrameLength,
  type Geometry, type Handshake, type WireHandler,
} from '../../../src/swarm/wire/codec.js';
import { ReadBuffer } from '../../../src/swarm/wire/read-buffer.js';
import { decodeExtHandshake, encodeExtHandshake } from '../../../src/swarm/wire/extended.js';
import { CoterieError } from '../../../src/common/errors.js';

type Msg =
  | { t: 'keepalive' } | { t: 'choke' } | { t: 'unchoke' } | { t: 'interested' } | { t: 'notinterested' }
  | { t: 'have'; piece: number } | { t: 'bitfield'; bytes: string }
  | { t: 'request'; piece: number; begin: number; length: number }
  | { t: 'cancel'; piece: number; begin: number; length: number }
  | { t: 'piece'; piece: number; begin: number; data: string }
  | { t: 'extended'; id: number; payload: string };

/** Records every decoded message (buffers copied to hex, since they are views). */
class Collector implements WireHandler {
  msgs: Msg[] = [];
  handshakes: Handshake[] = [];
  /** When set, the handshake sets this decoder's geometry (as a session does on attach). */
  dec: WireDecoder | null = null;
  constructor(private readonly geometry?: Geometry) {}
  onHandshake(h: Handshake): void {
    this.handshakes.push(h);
    if (this.dec && this.geometry) this.dec.setGeometry(this.geometry);
  }
  onKeepAlive(): void { this.msgs.push({ t: 'keepalive' }); }
  onChoke(): void { this.msgs.push({ t: 'choke' }); }
  onUnchoke(): void { this.msgs.push({ t: 'unchoke' }); }
  onInterested(): void { this.msgs.push({ t: 'interested' }); }
  onNotInterested(): void { this.msgs.push({ t: 'notinterested' }); }
  onHave(piece: number): void { this.msgs.push({ t: 'have', piece }); }
  onBitfield(bytes: Buffer): void { this.msgs.push({ t: 'bitfield', bytes: bytes.toString('hex') }); }
  onRequest(piece: number, begin: number, length: number): void { this.msgs.push({ t: 'request', piece, begin, length }); }
  onCancel(piece: number, begin: number, length: number): void { this.msgs.push({ t: 'cancel', piece, begin, length }); }
  onPiece(piece: number, begin: number, data: Buffer): void { this.msgs.push({ t: 'piece', piece, begin, data: data.toString('hex') }); }
  onExtended(id: number, payload: Buffer): void { this.msgs.push({ t: 'extended', id, payload: payload.toString('hex') }); }
}

const G: Geometry = { pieceCount: 37, pieceLength: 65536, totalLength: 36 * 65536 + 20000 };
const pieceSize = (g: Geometry, i: number): number => (i === g.pieceCount - 1 ? g.totalLength - i * g.pieceLength : g.pieceLength);

function encode(m: Msg): Buffer {
  switch (m.t) {
    case 'keepalive': return KEEP_ALIVE;
    case 'choke': return CHOKE;
    case 'unchoke': return UNCHOKE;
    case 'interested': return INTERESTED;
    case 'notinterested': return NOT_INTERESTED;
    case 'have': return encodeHave(m.piece);
    case 'bitfield': return encodeBitfield(Buffer.from(m.bytes, 'hex'));
    case 'request': return encodeRequest(m.piece, m.begin, m.length);
    case 'cancel': return encodeCancel(m.piece, m.begin, m.length);
    case 'piece': return encodePiece(m.piece, m.begin, Buffer.from(m.data, 'hex'));
    case 'extended': return encodeExtended(m.id, Buffer.from(m.payload, 'hex'));
  }
}

/** A decoder expecting a handshake first, which then learns geometry G. */
function handshakeDecoder(): { c: Collector; d: WireDecoder } {
  const c = new Collector(G);
  const d = new WireDecoder(c);
  c.dec = d;
  return { c, d };
}

/** Valid messages for geometry G. */
function arbMsg(g: Geometry): fc.Arbitrary<Msg> {
  const piece = fc.integer({ min: 0, max: g.pieceCount - 1 });
  const range = piece.chain((p) => fc.integer({ min: 1, max: Math.min(BLOCK_SIZE, pieceSize(g, p)) }).chain((len) =>
    fc.integer({ min: 0, max: pieceSize(g, p) - len }).map((begin) => ({ piece: p, begin, length: len }))));
  const bfLen = (g.pieceCount + 7) >>> 3;
  const spare = bfLen * 8 - g.pieceCount;
  return fc.oneof(
    fc.constantFrom<Msg>({ t: 'keepalive' }, { t: 'choke' }, { t: 'unchoke' }, { t: 'interested' }, { t: 'notinterested' }),
    piece.map((p): Msg => ({ t: 'have', piece: p })),
    fc.uint8Array({ minLength: bfLen, maxLength: bfLen }).map((b): Msg => {
      b[bfLen - 1] = b[bfLen - 1]! & (0xff << spare);
      return { t: 'bitfield', bytes: Buffer.from(b).toString('hex') };
    }),
    range.map((r): Msg => ({ t: 'request', ...r })),
    range.map((r): Msg => ({ t: 'cancel', ...r })),
    range.chain((r) => fc.uint8Array({ minLength: r.length, maxLength: r.length })
      .map((d): Msg => ({ t: 'piece', piece: r.piece, begin: r.begin, data: Buffer.from(d).toString('hex') }))),
    fc.tuple(fc.integer({ min: 0, max: 255 }), fc.uint8Array({ maxLength: 300 }))
      .map(([id, p]): Msg => ({ t: 'extended', id, payload: Buffer.from(p).toString('hex') })),
  );
}

/** Feeds `bytes` split at the given cut points through a ReadBuffer, as socket reads would. */
function feedSplit(dec: WireDecoder, bytes: Buffer, cuts: number[]): ReadBuffer {
  const rb = new ReadBuffer(dec, 256 * 1024);
  let prev = 0;
  for (const c of [...cuts.filter((x) => x > 0 && x < bytes.length)].sort((a, b) => a - b).concat(bytes.length)) {
    if (c <= prev) continue;
    rb.push(bytes.subarray(prev, c));
    prev = c;
  }
  return rb;
}

/** The same, through the onread path: copy each chunk into readTarget() and commit. */
function feedOnread(dec: WireDecoder, bytes: Buffer, chunk: number): void {
  const rb = new ReadBuffer(dec, 64 * 1024);
  let off = 0;
  while (off < bytes.length) {
    const t = rb.readTarget();
    const n = Math.min(chunk, t.length, bytes.length - off);
    bytes.copy(t, 0, off, off + n);
    rb.commit(n);
    off += n;
  }
}

describe('wire codec', () => {
  test('round trip: any sequence of valid messages, split anywhere, decodes to itself', () => {
    fc.assert(fc.property(fc.array(arbMsg(G), { maxLength: 40 }), fc.array(fc.nat(), { maxLength: 30 }), (msgs, cuts) => {
      const bytes = Buffer.concat(msgs.map(encode));
      const c = new Collector();
      feedSplit(new WireDecoder(c, { handshake: false, geometry: G }), bytes, cuts.map((x) => x % (bytes.length + 1)));
      assert.deepEqual(c.msgs, msgs);
    }), { numRuns: 300 });
  });

  test('round trip through the onread path with tiny and large reads', () => {
    fc.assert(fc.property(fc.array(arbMsg(G), { maxLength: 30 }), fc.integer({ min: 1, max: 70_000 }), (msgs, chunk) => {
      const bytes = Buffer.concat(msgs.map(encode));
      const c = new Collector();
      feedOnread(new WireDecoder(c, { handshake: false, geometry: G }), bytes, chunk);
      assert.deepEqual(c.msgs, msgs);
    }), { numRuns: 200 });
  });

  test('handshake round trip, and the BEP 10 bit', () => {
    const ih = Buffer.alloc(20, 7), pid = Buffer.from('-CT0001-abcdefghijkl');
    const hs = encodeHandshake(ih, pid);
    assert.equal(hs.length, 68);
    assert.equal(hs[25]! & 0x10, 0x10);
    // Handshake and a message in one read, split at every position.
    const bytes = Buffer.concat([hs, encodeHave(3)]);
    for (let cut = 0; cut <= bytes.length; cut++) {
      const { c, d } = handshakeDecoder();
      feedSplit(d, bytes, [cut]);
      assert.equal(c.handshakes.length, 1);
      assert.ok(c.handshakes[0]!.infoHash.equals(ih));
      assert.ok(c.handshakes[0]!.peerId.equals(pid));
      assert.equal(c.handshakes[0]!.extended, true);
      assert.deepEqual(c.msgs, [{ t: 'have', piece: 3 }]);
    }
  });

  test('a wrong protocol string is refused as soon as its first bytes arrive', () => {
    const c = new Collector();
    const d = new WireDecoder(c);
    assert.throws(() => d.feed(Buffer.from('GET / HTTP/1.1\r\n'), 0, 16), (e: CoterieError) => e.code === 'PROTOCOL');
    const d2 = new WireDecoder(new Collector());
    const bad = Buffer.from([19, ...Buffer.from('BitTorrent protocoX')]);
    assert.throws(() => d2.feed(bad, 0, bad.length), (e: CoterieError) => e.code === 'PROTOCOL');
  });

  test('frame lengths are read unsigned and capped before any waiting', () => {
    const d = new WireDecoder(new Collector(), { handshake: false, geometry: G });
    const huge = Buffer.from([0xff, 0xff, 0xff, 0xff, 7]);
    assert.throws(() => d.feed(huge, 0, huge.length), (e: CoterieError) => e.code === 'TOO_LARGE');
    const over = Buffer.alloc(5);
    over.writeUInt32BE(maxFrameLength(G) + 1, 0);
    assert.throws(() => new WireDecoder(new Collector(), { handshake: false, geometry: G }).feed(over, 0, 4), (e: CoterieError) => e.code === 'TOO_LARGE');
  });

  test('the cap grows with the bitfield of a large torrent', () => {
    const big: Geometry = { pieceCount: 1_000_000, pieceLength: 16384, totalLength: 1_000_000 * 16384 };
    assert.ok(maxFrameLength(big) >= 1 + 125_000);
    assert.ok(maxFrameLength(G) < 17_000);
  });

  test('semantic validation: every field is checked', () => {
    const bad: Array<[string, Buffer]> = [
      ['have out of range', encodeHave(G.pieceCount)],
      ['have too long', Buffer.from([0, 0, 0, 6, 4, 0, 0, 0, 1, 0])],
      ['choke with payload', Buffer.from([0, 0, 0, 2, 0, 0])],
      ['bitfield wrong size', encodeBitfield(Buffer.alloc(3))],
      ['request zero length', encodeRequest(0, 0, 0)],
      ['request over a block', encodeRequest(0, 0, BLOCK_SIZE + 1)],
      ['request past piece end', encodeRequest(G.pieceCount - 1, 20000 - 100, 200)],
      ['request index out of range', encodeRequest(G.pieceCount, 0, 16384)],
      ['request with huge begin', encodeRequest(0, 0xfffffff0, 16384)],
      ['cancel past end', encodeCancel(0, 65536, 1)],
      ['piece past end', encodePiece(0, 65536 - 10, Buffer.alloc(20))],
      ['piece empty', Buffer.from([0, 0, 0, 9, 7, 0, 0, 0, 0, 0, 0, 0, 0])],
      ['piece too big', encodePiece(0, 0, Buffer.alloc(BLOCK_SIZE + 1))],
      ['extended without id', Buffer.from([0, 0, 0, 1, 20])],
      ['port wrong length', Buffer.from([0, 0, 0, 2, 9, 1])],
    ];
    for (const [what, bytes] of bad) {
      const d = new WireDecoder(new Collector(), { handshake: false, geometry: G });
      assert.throws(() => d.feed(bytes, 0, bytes.length), (e: CoterieError) => e instanceof CoterieError && (e.code === 'PROTOCOL' || e.code === 'TOO_LARGE'), what);
    }
  });

  test('unknown message ids and PORT are skipped', () => {
    const c = new Collector();
    const d = new WireDecoder(c, { handshake: false, geometry: G });
    const bytes = Buffer.concat([Buffer.from([0, 0, 0, 3, 9, 0x1a, 0xe1]), Buffer.from([0, 0, 0, 5, 0x11, 0, 0, 0, 1]), encodeHave(1)]);
    assert.equal(d.feed(bytes, 0, bytes.length), bytes.length);
    assert.deepEqual(c.msgs, [{ t: 'have', piece: 1 }]);
  });

  test('random bytes never crash the decoder: they parse or throw a CoterieError', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 2000 }), fc.boolean(), fc.array(fc.nat(), { maxLength: 10 }), (bytes, hs, cuts) => {
      const c = new Collector(G);
      const d = new WireDecoder(c, hs ? {} : { handshake: false, geometry: G });
      c.dec = d;
      try {
        feedSplit(d, Buffer.from(bytes), cuts.map((x) => x % (bytes.length + 1)));
      } catch (e) {
        assert.ok(e instanceof CoterieError, `unexpected ${String(e)}`);
        return;
      }
      // Whatever parsed must be valid for G.
      for (const m of c.msgs) {
        if ('piece' in m) assert.ok(m.piece < G.pieceCount);
        if (m.t === 'request' || m.t === 'cancel') assert.ok(m.length >= 1 && m.length <= BLOCK_SIZE && m.begin + m.length <= pieceSize(G, m.piece));
      }
    }), { numRuns: 500 });
  });

  test('truncated input is held, not misparsed: a prefix yields a prefix of the messages', () => {
    fc.assert(fc.property(fc.array(arbMsg(G), { minLength: 1, maxLength: 20 }), fc.nat(), (msgs, cutRaw) => {
      const parts = msgs.map(encode);
      const bytes = Buffer.concat(parts);
      const cut = cutRaw % bytes.length;
      const c = new Collector();
      const d = new WireDecoder(c, { handshake: false, geometry: G });
      const used = d.feed(bytes, 0, cut);
      // Exactly the messages wholly inside the prefix, and `used` is where the next one starts.
      let end = 0, k = 0;
      while (k < parts.length && end + parts[k]!.length <= cut) { end += parts[k]!.length; k++; }
      assert.equal(used, end);
      assert.deepEqual(c.msgs, msgs.slice(0, k));
    }), { numRuns: 300 });
  });

  test('encodeRequests lays out a batch of REQUEST frames', () => {
    const reqs = [{ piece: 1, begin: 0, length: 16384 }, { piece: 1, begin: 16384, length: 16384 }, { piece: 36, begin: 16384, length: 3616 }];
    const c = new Collector();
    const b = encodeRequests(reqs);
    new WireDecoder(c, { handshake: false, geometry: G }).feed(b, 0, b.length);
    assert.deepEqual(c.msgs, reqs.map((r) => ({ t: 'request', ...r })));
  });

  test('extended handshake round trip and hostile payloads', () => {
    const h = { m: { ut_metadata: 3 }, v: 'Coterie 0.1', p: 6881, reqq: 512, ticket: 'abc.def', group: 'g1' };
    const back = decodeExtHandshake(encodeExtHandshake(h));
    assert.deepEqual({ ...back, m: { ...back.m } }, h);
    for (const bad of ['i5e', 'd1:pi70000ee', 'd6:ticketi3ee', 'xx', 'd1:m3:abce']) {
      assert.throws(() => decodeExtHandshake(Buffer.from(bad)), (e: CoterieError) => e.code === 'PROTOCOL', bad);
    }
    // Unknown keys and unsorted keys (some clients) are fine.
    const ok = decodeExtHandshake(Buffer.from('d1:v3:abc1:md6:ut_pexi1ee4:zzzzi1ee'));
    assert.equal(ok.v, 'abc');
    assert.equal(ok.m['ut_pex'], 1);
  });
});

// ------------------------------------------------------------------ differential, npm package

/** Bytes bittorrent-protocol writes for these calls. */
async function theirBytes(calls: (w: InstanceType<typeof Protocol>) => void): Promise<Buffer> {
  const w = new Protocol();
  const out: Buffer[] = [];
  w.on('data', (b: Uint8Array) => out.push(Buffer.from(b)));
  calls(w);
  await new Promise((r) => setTimeout(r, 5));
  w.destroy();
  return Buffer.concat(out);
}

describe('wire codec vs bittorrent-protocol (npm)', () => {
  const ih = Buffer.alloc(20, 0xab), pid = Buffer.alloc(20, 0x42);

  test('what it encodes, we decode the same', async () => {
    const msgs = fc.sample(fc.array(arbMsg(G), { minLength: 1, maxLength: 25 }), { numRuns: 30, seed: 42 });
    for (const seq of msgs) {
      const bytes = await theirBytes((w) => {
        w.handshake(ih, pid, { dht: false });
        // It refuses to send REQUESTs while choked: pretend the peer unchoked it.
        (w as unknown as { peerChoking: boolean }).peerChoking = false;
        for (const m of seq) {
          switch (m.t) {
            case 'keepalive': w.keepAlive(); break;
            case 'choke': (w as unknown as { amChoking: boolean }).amChoking = false; w.choke(); break;
            case 'unchoke': (w as unknown as { amChoking: boolean }).amChoking = true; w.unchoke(); break;
            case 'interested': (w as unknown as { amInterested: boolean }).amInterested = false; w.interested(); break;
            case 'notinterested': (w as unknown as { amInterested: boolean }).amInterested = true; w.uninterested(); break;
            case 'have': w.have(m.piece); break;
            case 'bitfield': w.bitfield(Buffer.from(m.bytes, 'hex')); break;
            case 'request': w.request(m.piece, m.begin, m.length, () => {}); break;
            case 'cancel': w.cancel(m.piece, m.begin, m.length); break;
            case 'piece': w.piece(m.piece, m.begin, Buffer.from(m.data, 'hex')); break;
            case 'extended': w.extended(m.id, Buffer.from(m.payload, 'hex')); break;
          }
        }
      });
      const { c, d } = handshakeDecoder();
      assert.equal(d.feed(bytes, 0, bytes.length), bytes.length);
      assert.equal(c.handshakes.length, 1);
      assert.ok(c.handshakes[0]!.infoHash.equals(ih));
      assert.ok(c.handshakes[0]!.peerId.equals(pid));
      assert.deepEqual(c.msgs, seq);
    }
  });

  test('what we encode, it decodes the same', async () => {
    const msgs = fc.sample(fc.array(arbMsg(G), { minLength: 1, maxLength: 25 }), { numRuns: 30, seed: 7 });
    for (const seq of msgs) {
      const w = new Protocol();
      const got: Msg[] = [];
      const hss: Array<{ infoHash: string; peerId: string; ext: { extended: boolean } }> = [];
      w.on('handshake', (infoHash: string, peerId: string, ext: { extended: boolean }) => { hss.push({ infoHash, peerId, ext }); });
      w.on('keep-alive', () => got.push({ t: 'keepalive' }));
      w.on('have', (piece: number) => got.push({ t: 'have', piece }));
      w.on('choke', () => got.push({ t: 'choke' }));
      w.on('unchoke', () => got.push({ t: 'unchoke' }));
      w.on('interested', () => got.push({ t: 'interested' }));
      w.on('uninterested', () => got.push({ t: 'notinterested' }));
      w.on('bitfield', (bf: { buffer: Uint8Array }) => got.push({ t: 'bitfield', bytes: Buffer.from(bf.buffer).toString('hex') }));
      w.on('request', (piece: number, begin: number, length: number) => got.push({ t: 'request', piece, begin, length }));
      w.on('cancel', (piece: number, begin: number, length: number) => got.push({ t: 'cancel', piece, begin, length }));
      w.on('piece', (piece: number, begin: number, data: Uint8Array) => got.push({ t: 'piece', piece, begin, data: Buffer.from(data).toString('hex') }));
      w.on('extended', (ext: number | string, payload: Uint8Array) => {
        if (ext !== 'handshake') got.push({ t: 'extended', id: Number(ext), payload: Buffer.from(payload).toString('hex') });
      });
      // It reports a HAVE only for a piece not already known from its last BITFIELD or an
      // earlier HAVE (a BITFIELD replaces what it knew): model that to know what to expect.
      let known = new Set<number>();
      const expected: Msg[] = [];
      for (const m of seq) {
        if (m.t === 'have') { if (known.has(m.piece)) continue; known.add(m.piece); }
        if (m.t === 'bitfield') {
          const b = Buffer.from(m.bytes, 'hex');
          known = new Set([...Array(b.length * 8).keys()].filter((i) => (b[i >> 3]! & (0x80 >> (i & 7))) !== 0));
        }
        // It parses every extended id 0 as its handshake: those are compared elsewhere.
        if (m.t === 'extended' && m.id === 0) continue;
        expected.push(m);
      }
      w.on('error', () => {});
      w.unchoke(); // it only reports REQUESTs from peers it does not choke
      w.write(encodeHandshake(ih, pid));
      for (const m of seq) {
        if (m.t === 'extended' && m.id === 0) continue;
        w.write(encode(m));
      }
      await new Promise((r) => setTimeout(r, 5));
      // Destroying the wire makes it emit choke/uninterested of its own: stop listening first.
      w.removeAllListeners();
      w.on('error', () => {});
      w.destroy();
      assert.equal(hss.length, 1);
      assert.equal(hss[0]!.infoHash, ih.toString('hex'));
      assert.equal(hss[0]!.peerId, pid.toString('hex'));
      assert.equal(hss[0]!.ext.extended, true);
      assert.deepEqual(got, expected);
    }
  });
});
