/**
 * Fuzz targets for the codecs that read hostile input: the bencode decoder, parseManifest,
 * verifyTicket and the RPC request parser. Each target draws inputs from a seeded generator
 * (random bytes, structure-aware random values, and mutations of a corpus of valid inputs) and
 * checks a property, not just "did not crash":
 *  - only the module's own named error may escape, and nothing may take longer than a bound;
 *  - bencode: whatever the strict decoder accepts re-encodes to exactly the same bytes
 *    (one value, one encoding), and the lenient decoder agrees with it;
 *  - parseManifest: whatever it accepts satisfies the manifest invariants;
 *  - verifyTicket: nothing but the genuine ticket verifies;
 *  - parseRequest: never throws; every refusal carries a wire error code.
 * Shared by the long runner (run.ts) and the short run in the unit suite.
 */
import { createHash } from 'node:crypto';
import { BencodeError, decode, decodeDictWithSpans, encode, type BEncodable } from '../../src/protocol/bencode.js';
import { ManifestError, parseManifest } from '../../src/swarm/manifest.js';
import { generateKeyPair, signTicket, TicketError, verifyTicket } from '../../src/protocol/ticket.js';
import { fileNameProblem } from '../../src/common/names.js';

/** A small, fast, seedable PRNG (mulberry32) so that every failure can be replayed by seed. */
export class Rng {
  private s: number;
  constructor(seed: number) { this.s = seed >>> 0; }
  next(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number { return Math.floor(this.next() * n); }
  pick<T>(xs: readonly T[]): T { return xs[this.int(xs.length)]!; }
  bytes(n: number): Buffer { const b = Buffer.allocUnsafe(n); for (let i = 0; i < n; i++) b[i] = this.int(256); return b; }
}

/** One fuzz target. `check` throws (anything) when the property is broken. */
export interface FuzzTarget {
  name: string;
  generate(rng: Rng): Buffer | string;
  check(input: Buffer | string): 'accepted' | 'rejected';
}

/** A property violation found by a target (as opposed to an expected rejection). */
export class FuzzFailure extends Error {
  override name = 'FuzzFailure';
}

// Tokens that steer mutations toward the decoder's edge cases.
const INTERESTING = [
  'i-0e', 'i00e', 'i9007199254740992e', 'i-9007199254740992e', 'i9007199254740991e', '0:', '1:', '99999999999:',
  '-1:', 'le', 'de', 'e', 'l', 'd', '4:name', '6:length', '12:piece length', '6:pieces', '7:private', '5:files',
  'i1e', 'i0e', '01:', 'i', ':', '-', '9', '0',
].map((s) => Buffer.from(s, 'latin1'));

/** Applies 1..4 random mutations: bit flips, byte sets, deletions, duplications, insertions, truncation, splices. */
export function mutate(rng: Rng, src: Buffer, corpus: readonly Buffer[]): Buffer {
  let b = Buffer.from(src);
  const n = 1 + rng.int(4);
  for (let k = 0; k < n; k++) {
    const at = b.length ? rng.int(b.length) : 0;
    switch (rng.int(8)) {
      case 0: if (b.length) b[at]! ^= 1 << rng.int(8); break;
      case 1: if (b.length) b[at] = rng.pick([0x30, 0x39, 0x3a, 0x2d, 0x65, 0x69, 0x6c, 0x64, 0x00, 0xff, rng.int(256)]); break;
      case 2: { const len = 1 + rng.int(Math.min(16, b.length || 1)); b = Buffer.concat([b.subarray(0, at), b.subarray(at + len)]); break; }
      case 3: { const len = 1 + rng.int(16); b = Buffer.concat([b.subarray(0, at), b.subarray(at, at + len), b.subarray(at)]); break; }
      case 4: b = Buffer.concat([b.subarray(0, at), rng.pick(INTERESTING), b.subarray(at)]); break;
      case 5: b = b.subarray(0, at); break;
      case 6: { const other = rng.pick(corpus); const o = rng.int(other.length + 1); b = Buffer.concat([b.subarray(0, at), other.subarray(o)]); break; }
      default: b = Buffer.concat([b.subarray(0, at), rng.bytes(1 + rng.int(8)), b.subarray(at)]); break;
    }
  }
  return b;
}

/** A random bencodable value of bounded size, biased toward info-dict-like shapes. */
export function randomValue(rng: Rng, depth = 0): BEncodable {
  const r = rng.int(depth > 4 ? 3 : 6);
  if (r === 0) return rng.bytes(rng.int(24));
  if (r === 1) return rng.pick([0, 1, -1, 16384, 262144, Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER, rng.int(1e9) - 5e8]);
  if (r === 2) return rng.pick(['name', 'length', 'x', '', 'piece length', 'a\u00e9']);
  if (r === 3) return Array.from({ length: rng.int(5) }, () => randomValue(rng, depth + 1));
  const o: Record<string, BEncodable> = {};
  const keys = ['length', 'name', 'piece length', 'pieces', 'private', 'files', 'a', 'zz', '\u00ff'];
  for (let i = rng.int(6); i > 0; i--) o[rng.pick(keys)] = randomValue(rng, depth + 1);
  return o;
}

function expectError(e: unknown, cls: new (...a: never[]) => Error, code: string, what: string): void {
  if (!(e instanceof cls) || (e as unknown as { code?: string }).code !== code) {
    throw new FuzzFailure(`${what} threw something other than ${cls.name}/${code}: ${e instanceof Error ? e.stack : String(e)}`);
  }
}

function validInfo(rng: Rng): Buffer {
  const pieceLength = 16384 << rng.int(4);
  const length = rng.int(pieceLength * 6);
  const count = Math.ceil(length / pieceLength);
  const extra: Record<string, BEncodable> = rng.int(3) === 0 ? { source: 'x', 'name.utf-8': 'f' } : {};
  return encode({ ...extra, length, name: rng.pick(['f.bin', 'a b', 'ü.txt', 'x']), 'piece length': pieceLength, pieces: rng.bytes(count * 20), private: 1 });
}

// ------------------------------------------------------------------------------------ bencode

export function bencodeTarget(): FuzzTarget {
  const corpus: Buffer[] = [];
  const seed = new Rng(1);
  for (let i = 0; i < 64; i++) corpus.push(encode(randomValue(seed)));
  for (let i = 0; i < 16; i++) corpus.push(validInfo(seed));
  return {
    name: 'bencode',
    generate(rng) {
      const r = rng.int(10);
      if (r === 0) return rng.bytes(rng.int(64));
      if (r < 3) return encode(randomValue(rng));
      return mutate(rng, rng.pick(corpus), corpus);
    },
    check(input) {
      const buf = input as Buffer;
      let v;
      try { v = decode(buf); } catch (e) {
        expectError(e, BencodeError, 'BAD_BENCODE', 'decode');
        // Lenient mode must fail too or succeed; it may only throw the same named error.
        try { decode(buf, { lenient: true }); } catch (e2) { expectError(e2, BencodeError, 'BAD_BENCODE', 'lenient decode'); }
        return 'rejected';
      }
      const again = encode(v);
      if (!again.equals(buf)) throw new FuzzFailure('strict decode accepted a non-canonical encoding (re-encoding differs)');
      if (!encode(decode(buf, { lenient: true })).equals(buf)) throw new FuzzFailure('lenient decode disagrees with strict decode');
      if (buf[0] === 0x64) {
        const { spans } = decodeDictWithSpans(buf);
        for (const [k, s] of spans) {
          if (!encode((v as Record<string, BEncodable>)[k]!).equals(buf.subarray(s.start, s.end))) throw new FuzzFailure(`span of ${k} is wrong`);
        }
      }
      return 'accepted';
    },
  };
}

// ------------------------------------------------------------------------------ parseManifest

export function manifestTarget(): FuzzTarget {
  const seed = new Rng(2);
  const corpus = Array.from({ length: 32 }, () => validInfo(seed));
  return {
    name: 'parseManifest',
    generate(rng) {
      const r = rng.int(10);
      if (r === 0) return encode(randomValue(rng));
      if (r === 1) return validInfo(rng);
      return mutate(rng, rng.pick(corpus), corpus);
    },
    check(input) {
      const buf = input as Buffer;
      let m;
      try { m = parseManifest(buf); } catch (e) { expectError(e, ManifestError, 'BAD_MANIFEST', 'parseManifest'); return 'rejected'; }
      const ok = m.infoBytes.equals(buf)
        && m.infoHash.equals(createHash('sha1').update(buf).digest())
        && m.pieces.length === 20 * m.pieceCount
        && m.pieceCount === Math.ceil(m.length / m.pieceLength)
        && Number.isSafeInteger(m.length) && m.length >= 0
        && (m.pieceLength & (m.pieceLength - 1)) === 0 && m.pieceLength >= 16384 && m.pieceLength <= 16 * 1024 * 1024
        && fileNameProblem(m.name) === null;
      if (!ok) throw new FuzzFailure('parseManifest accepted a dict that breaks an invariant');
      return 'accepted';
    },
  };
}

// ------------------------------------------------------------------------------- verifyTicket

export function ticketTarget(): FuzzTarget {
  const t1 = generateKeyPair();
  const t2 = generateKeyPair();
  const keys = new Map([['t1', t1.publicKey], ['t2', t2.publicKey]]);
  const now = 1_700_000_000_000;
  const genuine = signTicket({ user: 'alice', group: 'g', infoHash: 'ab'.repeat(20), expiresAt: now + 1000, origin: 't1' }, t1.privateKey);
  const others = [
    signTicket({ user: 'alice', group: 'g', infoHash: 'ab'.repeat(20), expiresAt: now - 1, origin: 't1' }, t1.privateKey),
    signTicket({ user: 'bob', group: 'g', infoHash: 'cd'.repeat(20), expiresAt: now + 1000, origin: 't2' }, t1.privateKey),
    signTicket({ user: 'eve', group: 'g', infoHash: 'ef'.repeat(20), expiresAt: now + 1000, origin: 't9' }, t2.privateKey),
  ];
  const corpus = [genuine, ...others].map((s) => Buffer.from(s, 'latin1'));
  return {
    name: 'verifyTicket',
    generate(rng) {
      const r = rng.int(10);
      if (r === 0) return rng.bytes(rng.int(1200)).toString('latin1');
      if (r === 1) {
        // A well-formed payload under a random or borrowed signature.
        const body = Buffer.from(JSON.stringify({ user: 'alice', group: 'g', infoHash: 'ab'.repeat(20), expiresAt: now + rng.int(1e6), origin: rng.pick(['t1', 't2']) })).toString('base64url');
        return `${body}.${rng.pick([rng.bytes(64).toString('base64url'), genuine.split('.')[1]!])}`;
      }
      if (r === 2) return rng.pick(corpus).toString('latin1'); // unmutated: the genuine one must pass
      return mutate(rng, rng.pick(corpus), corpus).toString('latin1');
    },
    check(input) {
      const s = input as string;
      try { verifyTicket(s, keys, now); } catch (e) { expectError(e, TicketError, 'ACCESS_DENIED', 'verifyTicket'); return 'rejected'; }
      if (s !== genuine) throw new FuzzFailure('a ticket other than the genuine one verified');
      return 'accepted';
    },
  };
}

// ------------------------------------------------------------------------------- parseRequest

type ParseRequest = (line: string) => { ok: boolean; error?: { code?: unknown } };

/** The RPC request parser target, if src/protocol/rpc.ts exports parseRequest. */
export async function rpcTarget(): Promise<FuzzTarget | null> {
  let parseRequest: ParseRequest;
  try {
    const mod = (await import('../../src/protocol/rpc.js')) as { parseRequest?: ParseRequest; ops?: Record<string, unknown> };
    if (typeof mod.parseRequest !== 'function') return null;
    parseRequest = mod.parseRequest;
    const opNames = Object.keys(mod.ops ?? { login: 1 });
    const seed = new Rng(3);
    const corpus = opNames.map((op, i) => Buffer.from(JSON.stringify({ id: i, op, args: { user: 'alice', group: 'g', infoHash: 'ab'.repeat(20) }, token: seed.bytes(8).toString('hex') })));
    corpus.push(Buffer.from('{"id":1,"op":"login","args":{"user":"a","password":"p","peer":"127.0.0.1:1","clientId":"0123456789abcdef"}}'));
    return {
      name: 'parseRequest',
      generate(rng) {
        const r = rng.int(10);
        if (r === 0) return rng.bytes(rng.int(200)).toString('utf8');
        if (r === 1) return JSON.stringify({ id: rng.pick([0, -1, 1.5, 2 ** 60, '1', null]), op: rng.pick(opNames), args: randomJson(rng, 0) });
        return mutate(rng, rng.pick(corpus), corpus).toString('utf8');
      },
      check(input) {
        let r;
        try { r = parseRequest(input as string); } catch (e) {
          throw new FuzzFailure(`parseRequest threw: ${e instanceof Error ? e.stack : String(e)}`);
        }
        if (!r.ok && typeof r.error?.code !== 'string') throw new FuzzFailure('parseRequest refused without a code');
        return r.ok ? 'accepted' : 'rejected';
      },
    };
  } catch {
    return null;
  }
}

function randomJson(rng: Rng, depth: number): unknown {
  const r = rng.int(depth > 3 ? 4 : 6);
  if (r === 0) return rng.pick([0, -1, 1e308, 'x', '', '__proto__', true]);
  if (r === 1) return null;
  if (r === 2) return rng.bytes(rng.int(12)).toString('latin1');
  if (r === 3) return rng.int(1000);
  if (r === 4) return Array.from({ length: rng.int(4) }, () => randomJson(rng, depth + 1));
  const o: Record<string, unknown> = {};
  for (let i = rng.int(4); i > 0; i--) o[rng.pick(['user', 'group', 'password', 'constructor', '__proto__', 'x'])] = randomJson(rng, depth + 1);
  return o;
}

/** Every target available in this build. */
export async function allTargets(): Promise<FuzzTarget[]> {
  const ts = [bencodeTarget(), manifestTarget(), ticketTarget()];
  const rpc = await rpcTarget();
  if (rpc) ts.push(rpc);
  return ts;
}

/** Outcome of fuzzing one target. */
export interface FuzzReport {
  target: string;
  tried: number;
  accepted: number;
  rejected: number;
  failures: Array<{ iteration: number; message: string; input: string }>;
  maxMs: number;
}

/**
 * Runs `iterations` inputs through a target from `seed`. An input that takes longer than
 * `maxMsPerInput` counts as a failure (a hang in the making). Stops collecting after 10 failures.
 */
export function runTarget(t: FuzzTarget, iterations: number, seed: number, maxMsPerInput = 1000): FuzzReport {
  const rng = new Rng(seed);
  const rep: FuzzReport = { target: t.name, tried: 0, accepted: 0, rejected: 0, failures: [], maxMs: 0 };
  for (let i = 0; i < iterations; i++) {
    const input = t.generate(rng);
    const start = performance.now();
    try {
      if (t.check(input) === 'accepted') rep.accepted++; else rep.rejected++;
    } catch (e) {
      const hex = (typeof input === 'string' ? Buffer.from(input, 'latin1') : input).subarray(0, 512).toString('hex');
      if (rep.failures.length < 10) rep.failures.push({ iteration: i, message: e instanceof Error ? e.message : String(e), input: hex });
    }
    const ms = performance.now() - start;
    if (ms > rep.maxMs) rep.maxMs = ms;
    if (ms > maxMsPerInput && rep.failures.length < 10) {
      rep.failures.push({ iteration: i, message: `took ${ms.toFixed(0)} ms`, input: '' });
    }
    rep.tried++;
  }
  return rep;
}
