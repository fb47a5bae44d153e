/**
 * Fuzz targets for the stream decoders a remote feeds directly, beside those in targets.ts:
 *  - `wire`: the BitTorrent peer wire decoder (WireDecoder behind a ReadBuffer, as a session uses
 *    it), on valid streams, their mutations, lying length prefixes (0xFFFFFFFF and friends) and
 *    random bytes. Properties: only ProtocolError / FrameTooLargeError escape; the same bytes cut
 *    into random chunks give exactly the same messages and the same error (split invariance);
 *    the bytes held between reads never exceed one capped frame (no unbounded buffering); what
 *    was decoded re-encodes and decodes to the same messages.
 *  - `ext-handshake`: the BEP 10 extended handshake parser (carries the access ticket): only
 *    ProtocolError escapes, and every field it returns is within its bound.
 *  - `rpc-stream`: the tracker's NDJSON line splitter plus request and argument validation, fed
 *    in random chunks: only FrameTooLargeError escapes the splitter, and only past its cap; the
 *    validators never throw; chunking never changes the lines; pending bytes stay under the cap.
 *
 * Shares the generator, mutator and runner of targets.ts; run.ts (`npm run fuzz`) runs these
 * targets with the others, e.g. `node dist/test/fuzz/run.js --target wire --seed 1`.
 */
import { createHash } from 'node:crypto';
import { FrameTooLargeError, ProtocolError } from '../../src/common/errors.js';
import { encode } from '../../src/protocol/bencode.js';
import { isOpName, LineDecoder, parseArgs, parseRequest } from '../../src/protocol/rpc.js';
import {
  CHOKE, INTERESTED, KEEP_ALIVE, NOT_INTERESTED, UNCHOKE, WireDecoder, encodeBitfield, encodeCancel, encodeExtended,
  encodeHandshake, encodeHave, encodePiece, encodeRequest, maxFrameLength, type Geometry, type Handshake, type WireHandler,
} from '../../src/swarm/wire/codec.js';
import { decodeExtHandshake, MAX_EXT_HANDSHAKE } from '../../src/swarm/wire/extended.js';
import { ReadBuffer } from '../../src/swarm/wire/read-buffer.js';
import { FuzzFailure, mutate, randomValue, Rng, type FuzzTarget } from './targets.js';

// --------------------------------------------------------------------------------------- wire

/** Torrent shapes a stream may be about; the input's first byte picks one. */
const GEOMETRIES: Geometry[] = [
  { pieceCount: 1, pieceLength: 16384, totalLength: 1 },
  { pieceCount: 3, pieceLength: 32768, totalLength: 70_000 },
  { pieceCount: 9, pieceLength: 16384, totalLength: 9 * 16384 },
  { pieceCount: 1000, pieceLength: 262144, totalLength: 1000 * 262144 - 5 },
  { pieceCount: 0, pieceLength: 16384, totalLength: 0 },
];

type Event = [string, ...unknown[]];

/** Records every decoder callback (copies of the views: they are only valid during the call). */
class Recorder implements WireHandler {
  readonly events: Event[] = [];
  onHandshake(h: Handshake): void { this.events.push(['handshake', h.reserved.toString('hex'), h.infoHash.toString('hex'), h.peerId.toString('hex')]); }
  onKeepAlive(): void { this.events.push(['keepalive']); }
  onChoke(): void { this.events.push(['choke']); }
  onUnchoke(): void { this.events.push(['unchoke']); }
  onInterested(): void { this.events.push(['interested']); }
  onNotInterested(): void { this.events.push(['not-interested']); }
  onHave(p: number): void { this.events.push(['have', p]); }
  onBitfield(b: Buffer): void { this.events.push(['bitfield', b.toString('hex')]); }
  onRequest(p: number, b: number, l: number): void { this.events.push(['request', p, b, l]); }
  onPiece(p: number, b: number, d: Buffer): void { this.events.push(['piece', p, b, d.toString('hex')]); }
  onCancel(p: number, b: number, l: number): void { this.events.push(['cancel', p, b, l]); }
  onExtended(id: number, payload: Buffer): void { this.events.push(['extended', id, payload.toString('hex')]); }
}

/** The frames that re-create `events` (the handshake first). */
function reencode(events: Event[]): Buffer {
  const out: Buffer[] = [];
  for (const e of events) {
    const [k, a, b, c] = e as [string, unknown, unknown, unknown];
    switch (k) {
      case 'handshake': out.push(encodeHandshake(Buffer.from(b as string, 'hex'), Buffer.from(c as string, 'hex'), Buffer.from(a as string, 'hex'))); break;
      case 'keepalive': out.push(KEEP_ALIVE); break;
      case 'choke': out.push(CHOKE); break;
      case 'unchoke': out.push(UNCHOKE); break;
      case 'interested': out.push(INTERESTED); break;
      case 'not-interested': out.push(NOT_INTERESTED); break;
      case 'have': out.push(encodeHave(a as number)); break;
      case 'bitfield': out.push(encodeBitfield(Buffer.from(a as string, 'hex'))); break;
      case 'request': out.push(encodeRequest(a as number, b as number, c as number)); break;
      case 'cancel': out.push(encodeCancel(a as number, b as number, c as number)); break;
      case 'piece': out.push(encodePiece(a as number, b as number, Buffer.from(c as string, 'hex'))); break;
      case 'extended': out.push(encodeExtended(a as number, Buffer.from(b as string, 'hex'))); break;
      default: throw new FuzzFailure(`unknown event ${k}`);
    }
  }
  return Buffer.concat(out);
}

const isWireError = (e: unknown): boolean => e instanceof ProtocolError || e instanceof FrameTooLargeError;

/**
 * Decodes `stream` for geometry `g`, in chunks cut by `rng` (or whole when rng is null), checking
 * after every chunk that the bytes held stay under one capped frame. Returns the events and the
 * error that ended decoding, if any; anything but a wire error is a failure.
 */
function decodeStream(g: Geometry, stream: Buffer, rng: Rng | null): { events: Event[]; error: string | null } {
  const rec = new Recorder();
  const dec = new WireDecoder(rec, { geometry: g });
  const rb = new ReadBuffer(dec);
  const bound = Math.max(68, maxFrameLength(g) + 4);
  try {
    let off = 0;
    while (off < stream.length) {
      const n = rng === null ? stream.length : 1 + rng.int(Math.min(stream.length - off, rng.int(3) === 0 ? 7 : 20_000));
      rb.push(stream.subarray(off, off + n));
      off += n;
      if (rb.held > bound) throw new FuzzFailure(`read buffer holds ${rb.held} bytes, over one capped frame (${bound})`);
    }
    return { events: rec.events, error: null };
  } catch (e) {
    if (e instanceof FuzzFailure) throw e;
    if (!isWireError(e)) throw new FuzzFailure(`decoder threw ${e instanceof Error ? e.stack : String(e)}`);
    return { events: rec.events, error: (e as Error).name };
  } finally {
    rb.release();
  }
}

/** A valid stream: a handshake and up to 12 well-formed messages for geometry `g`. */
function validStream(rng: Rng, g: Geometry): Buffer {
  const parts: Buffer[] = [encodeHandshake(rng.bytes(20), rng.bytes(20), rng.bytes(8))];
  const pieceSize = (p: number) => (p === g.pieceCount - 1 ? g.totalLength - p * g.pieceLength : g.pieceLength);
  for (let i = rng.int(13); i > 0; i--) {
    const p = g.pieceCount > 0 ? rng.int(g.pieceCount) : 0;
    const size = g.pieceCount > 0 ? pieceSize(p) : 0;
    const begin = size > 0 ? rng.int(size) : 0;
    const len = Math.max(1, Math.min(16384, size - begin, 1 + rng.int(16384)));
    switch (rng.int(11)) {
      case 0: parts.push(KEEP_ALIVE); break;
      case 1: parts.push(rng.pick([CHOKE, UNCHOKE, INTERESTED, NOT_INTERESTED])); break;
      case 2: if (g.pieceCount > 0) parts.push(encodeHave(p)); break;
      case 3: parts.push(encodeBitfield(rng.bytes((g.pieceCount + 7) >>> 3))); break;
      case 4: if (size > 0) parts.push(encodeRequest(p, begin, len)); break;
      case 5: if (size > 0) parts.push(encodeCancel(p, begin, len)); break;
      case 6: if (size > 0) parts.push(encodePiece(p, begin, rng.bytes(Math.min(len, 64)))); break;
      case 7: parts.push(encodeExtended(rng.int(3), encode(randomValue(rng)))); break;
      case 8: { const b = Buffer.alloc(7); b.writeUInt32BE(3, 0); b[4] = 9; b.writeUInt16BE(rng.int(65536), 5); parts.push(b); break; } // PORT
      case 9: { const b = Buffer.alloc(5 + rng.int(9)); b.writeUInt32BE(b.length - 4, 0); b[4] = 21 + rng.int(200); parts.push(b); break; } // unknown id
      default: parts.push(encodeExtended(0, encode({ m: { ut_x: 1 }, v: 'x', ticket: rng.bytes(rng.int(40)).toString('base64url'), group: 'g' }))); break;
    }
  }
  return Buffer.concat(parts);
}

/** Length prefixes that lie: negative as int32, just over the cap, far over it, or promising more than follows. */
function lyingStream(rng: Rng, g: Geometry): Buffer {
  const hs = encodeHandshake(rng.bytes(20), rng.bytes(20), Buffer.alloc(8));
  const len = rng.pick([0xffffffff, 0x80000000, 0x7fffffff, maxFrameLength(g) + 1, maxFrameLength(g), 1 << 24, 13, 2, 1]);
  const head = Buffer.alloc(5);
  head.writeUInt32BE(len >>> 0, 0);
  head[4] = rng.int(22);
  return Buffer.concat([hs, head, rng.bytes(rng.int(64))]);
}

export function wireTarget(): FuzzTarget {
  const seed = new Rng(11);
  const corpus: Buffer[] = [];
  for (let i = 0; i < 48; i++) {
    const gi = seed.int(GEOMETRIES.length);
    corpus.push(Buffer.concat([Buffer.from([gi]), validStream(seed, GEOMETRIES[gi]!)]));
  }
  return {
    name: 'wire',
    generate(rng) {
      const gi = rng.int(GEOMETRIES.length);
      const r = rng.int(10);
      if (r === 0) return Buffer.concat([Buffer.from([gi]), rng.bytes(rng.int(200))]);
      if (r === 1) return Buffer.concat([Buffer.from([gi]), lyingStream(rng, GEOMETRIES[gi]!)]);
      if (r < 4) return Buffer.concat([Buffer.from([gi]), validStream(rng, GEOMETRIES[gi]!)]);
      // Mutate after the geometry byte, so that mutations hit the stream, not the torrent choice.
      const src = rng.pick(corpus);
      return Buffer.concat([src.subarray(0, 1), mutate(rng, src.subarray(1), corpus)]);
    },
    check(input) {
      const buf = input as Buffer;
      if (buf.length === 0) return 'rejected';
      const g = GEOMETRIES[buf[0]! % GEOMETRIES.length]!;
      const stream = buf.subarray(1);
      const whole = decodeStream(g, stream, null);
      const split = decodeStream(g, stream, new Rng(createHash('sha1').update(buf).digest().readUInt32BE(0)));
      if (JSON.stringify(whole) !== JSON.stringify(split)) {
        throw new FuzzFailure(`chunking changed the outcome: ${whole.events.length} events/${whole.error} whole, ${split.events.length}/${split.error} split`);
      }
      if (whole.events.length > 0) {
        const again = decodeStream(g, reencode(whole.events), null);
        if (again.error !== null || JSON.stringify(again.events) !== JSON.stringify(whole.events)) {
          throw new FuzzFailure('decoded messages do not survive encode + decode');
        }
      }
      return whole.error === null ? 'accepted' : 'rejected';
    },
  };
}

// ------------------------------------------------------------------------------ ext-handshake

export function extHandshakeTarget(): FuzzTarget {
  const seed = new Rng(12);
  const corpus = Array.from({ length: 32 }, () => encode({
    m: { ut_metadata: seed.int(3), ut_pex: 2 }, v: 'libtorrent/2.0', p: seed.int(65536), reqq: 500,
    ...(seed.int(2) ? { ticket: seed.bytes(300).toString('base64url'), group: 'friends' } : {}),
  }));
  return {
    name: 'ext-handshake',
    generate(rng) {
      const r = rng.int(10);
      if (r === 0) return rng.bytes(rng.int(300));
      if (r === 1) return encode(randomValue(rng));
      if (r === 2) return encode({ m: {}, ticket: rng.bytes(rng.pick([0, 100, 4096, 4097, 9000])) });
      return mutate(rng, rng.pick(corpus), corpus);
    },
    check(input) {
      let h;
      try { h = decodeExtHandshake(input as Buffer); } catch (e) {
        if (!(e instanceof ProtocolError)) throw new FuzzFailure(`decodeExtHandshake threw ${e instanceof Error ? e.stack : String(e)}`);
        return 'rejected';
      }
      if ((input as Buffer).length > MAX_EXT_HANDSHAKE) throw new FuzzFailure('accepted an oversized extended handshake');
      const within = (s: string | undefined) => s === undefined || Buffer.byteLength(s) <= 3 * 4096;
      if (!within(h.ticket) || !within(h.group) || !within(h.v)) throw new FuzzFailure('a string field is over its bound');
      if (h.p !== undefined && (h.p < 0 || h.p > 65535)) throw new FuzzFailure('port out of range');
      if (h.reqq !== undefined && (h.reqq < 0 || h.reqq > 1_000_000)) throw new FuzzFailure('reqq out of range');
      for (const v of Object.values(h.m)) if (!(Number.isInteger(v) && v >= 0 && v <= 255)) throw new FuzzFailure('bad m id');
      return 'accepted';
    },
  };
}

// --------------------------------------------------------------------------------- rpc-stream

/** A small line cap, so the fuzzer reaches it often. */
const LINE_CAP = 2048;

function splitLines(input: Buffer, rng: Rng | null): { lines: string[]; error: string | null } {
  const d = new LineDecoder(LINE_CAP);
  const lines: string[] = [];
  try {
    let off = 0;
    while (off < input.length) {
      const n = rng === null ? input.length : 1 + rng.int(input.length - off);
      lines.push(...d.push(input.subarray(off, off + n)));
      off += n;
      if (d.pending > LINE_CAP) throw new FuzzFailure(`line decoder holds ${d.pending} bytes, over its cap`);
    }
    return { lines, error: null };
  } catch (e) {
    if (e instanceof FuzzFailure) throw e;
    if (!(e instanceof FrameTooLargeError)) throw new FuzzFailure(`LineDecoder threw ${e instanceof Error ? e.stack : String(e)}`);
    if (e.size <= LINE_CAP) throw new FuzzFailure(`FrameTooLargeError for ${e.size} bytes, within the cap`);
    return { lines, error: 'TOO_LARGE' };
  }
}

export function rpcStreamTarget(): FuzzTarget {
  const req = (o: unknown) => Buffer.from(JSON.stringify(o) + '\n');
  const corpus = [
    req({ id: 1, op: 'login', args: { user: 'alice', password: 'pw', peer: '127.0.0.1:7000', clientId: '0123456789abcdef' } }),
    req({ id: 2, op: 'get_peers', args: { group: 'g', name: 'f.bin' }, token: 'ab'.repeat(32) }),
    req({ id: 3, op: 'heartbeat', args: { peer: '1.2.3.4:5', clientId: 'ab'.repeat(8), shares: [{ group: 'g', infoHash: 'cd'.repeat(20) }] }, token: 't' }),
    req({ id: 4, op: 'upload_file', args: { group: 'g', info: 'ZGU=', sha256: 'ef'.repeat(32), peer: '1.2.3.4:5', clientId: 'ab'.repeat(8) }, token: 't' }),
    Buffer.from('{"id":5,"op":"status"}\r\n{"id":6,"op":"list_groups","args":{}}\n'),
  ];
  return {
    name: 'rpc-stream',
    generate(rng) {
      const r = rng.int(10);
      if (r === 0) return rng.bytes(rng.int(300));
      if (r === 1) return Buffer.alloc(LINE_CAP + rng.int(3), 0x61); // at and just over the cap, no newline
      if (r === 2) return Buffer.concat(Array.from({ length: 1 + rng.int(4) }, () => rng.pick(corpus)));
      return mutate(rng, Buffer.concat([rng.pick(corpus), rng.pick(corpus)]), corpus);
    },
    check(input) {
      const buf = input as Buffer;
      const whole = splitLines(buf, null);
      const split = splitLines(buf, new Rng(createHash('sha1').update(buf).digest().readUInt32BE(0)));
      if (JSON.stringify(whole) !== JSON.stringify(split)) throw new FuzzFailure('chunking changed the lines');
      let ok = 0;
      for (const line of whole.lines) {
        let p;
        try {
          p = parseRequest(line);
          if (p.ok && isOpName(p.req.op)) { const a = parseArgs(p.req.op, p.req.args); if (a.ok) ok++; else if (typeof a.error.code !== 'string') throw new Error('no code'); }
          else if (!p.ok && typeof p.error.code !== 'string') throw new Error('no code');
        } catch (e) {
          throw new FuzzFailure(`request validation threw: ${e instanceof Error ? e.stack : String(e)}`);
        }
      }
      return whole.error === null && ok > 0 ? 'accepted' : 'rejected';
    },
  };
}

/** Every target of this file. */
export function wireTargets(): FuzzTarget[] {
  return [wireTarget(), extHandshakeTarget(), rpcStreamTarget()];
}
