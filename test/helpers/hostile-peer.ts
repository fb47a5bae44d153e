/**
 * A raw BitTorrent peer for hostile-input tests: it speaks the wire by hand so a test can send
 * exactly the bytes it wants (crafted handshakes, forged tickets, oversized or negative lengths,
 * floods, garbage, silence) and observe what comes back and when the other side hangs up.
 *
 *   const p = await HostilePeer.connect(port, { localAddress: '127.0.0.9' });
 *   p.handshake(infoHash, { extended: true });
 *   p.extHandshake({ ticket, group: 'g' });
 *   const closedIn = await p.closedWithin(5_000);   // ms until the remote closed, or null
 *   assert.equal(p.count(MsgId.PIECE), 0);
 *
 * {@link HostileSeeder} is the other direction: a listening "seeder" that answers a downloader's
 * requests with wrong data. {@link rssKiB} reads a process's resident memory from /proc.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { encode, type BEncodable } from '../../src/protocol/bencode.js';
import {
  MsgId, encodeBitfield, encodeExtended, encodeHandshake, encodePiece, encodeRequest, HANDSHAKE_LENGTH,
} from '../../src/swarm/wire/codec.js';

/** One message received from the remote. `payload` excludes the id byte. */
export interface WireMessage { id: number; payload: Buffer; at: number }

/** Largest frame this test peer parses from the remote (a bitfield of a huge torrent fits). */
const PARSE_CAP = 4 * 1024 * 1024;

/** Options of a handshake we send. */
export interface HandshakeOptions {
  /** Set the BEP 10 bit (default true). */
  extended?: boolean;
  peerId?: Buffer;
  /** Exact reserved bytes (overrides `extended`). */
  reserved?: Buffer;
}

/** A frame `<len><id><payload>` with an honest length. */
export function frame(id: number, payload: Uint8Array = Buffer.alloc(0)): Buffer {
  const b = Buffer.allocUnsafe(5 + payload.length);
  b.writeUInt32BE(1 + payload.length, 0);
  b[4] = id;
  b.set(payload, 5);
  return b;
}

/** A length prefix claiming `len` bytes, followed by `body` (which may be shorter: a lie). */
export function lyingFrame(len: number, body: Uint8Array = Buffer.alloc(0)): Buffer {
  const b = Buffer.allocUnsafe(4 + body.length);
  b.writeUInt32BE(len >>> 0, 0);
  b.set(body, 4);
  return b;
}

/** Resident set size of a process now and its peak, KiB, from /proc/<pid>/status. */
export function rssKiB(pid: number): { rss: number; peak: number } {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  const get = (k: string) => Number((new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s) ?? [0, 0])[1]);
  return { rss: get('VmRSS'), peak: get('VmHWM') };
}

/**
 * Parses the remote's handshake and frames from a byte stream; collects the messages. Shared by
 * the dialling peer and the hostile seeder.
 */
class WireReader {
  private buf: Buffer = Buffer.alloc(0);
  handshake: Buffer | null = null;
  readonly messages: WireMessage[] = [];
  /** The remote sent something this reader could not parse (it is not the thing under test). */
  garbled = false;
  onMessage: ((m: WireMessage) => void) | null = null;

  push(chunk: Buffer): void {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    if (this.handshake === null) {
      if (this.buf.length < HANDSHAKE_LENGTH) return;
      this.handshake = Buffer.from(this.buf.subarray(0, HANDSHAKE_LENGTH));
      this.buf = this.buf.subarray(HANDSHAKE_LENGTH);
    }
    for (;;) {
      if (this.buf.length < 4) return;
      const len = this.buf.readUInt32BE(0);
      if (len > PARSE_CAP) { this.garbled = true; this.buf = Buffer.alloc(0); return; }
      if (this.buf.length < 4 + len) return;
      if (len > 0) {
        const m = { id: this.buf[4]!, payload: Buffer.from(this.buf.subarray(5, 4 + len)), at: Date.now() };
        this.messages.push(m);
        this.onMessage?.(m);
      }
      this.buf = this.buf.subarray(4 + len);
    }
  }
}

/** A dialling raw peer. */
export class HostilePeer {
  readonly reader = new WireReader();
  readonly openedAt = Date.now();
  /** When the remote closed the connection (ms since epoch), or null while open. */
  closedAt: number | null = null;
  /** Whether the close came as an error (reset) rather than a FIN. */
  reset = false;
  private readonly closedP: Promise<void>;
  private waiters: Array<() => void> = [];

  private constructor(readonly socket: Socket) {
    socket.on('data', (c: Buffer) => { this.reader.push(c); this.wake(); });
    socket.on('error', () => { this.reset = true; });
    this.closedP = new Promise((r) => {
      const done = () => { if (this.closedAt === null) this.closedAt = Date.now(); this.wake(); r(); };
      // The remote's FIN ('end') counts as closed: it will not read or send any more.
      socket.once('end', done);
      socket.once('close', done);
    });
  }

  /** Connects (bounded by 5 s). `localAddress` picks the source IP, e.g. 127.0.0.9, so per-address caps hit the attacker only. */
  static connect(port: number, opts: { host?: string; localAddress?: string } = {}): Promise<HostilePeer> {
    return new Promise((resolve, reject) => {
      const s = connect({ port, host: opts.host ?? '127.0.0.1', ...(opts.localAddress ? { localAddress: opts.localAddress } : {}), allowHalfOpen: true });
      const t = setTimeout(() => { s.destroy(); reject(new Error('connect timed out')); }, 5_000);
      s.once('connect', () => { clearTimeout(t); s.setNoDelay(true); resolve(new HostilePeer(s)); });
      s.once('error', (e) => { clearTimeout(t); reject(e); });
    });
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  get closed(): boolean { return this.closedAt !== null; }

  /** Writes raw bytes; false once the socket is gone. A write to a closed socket is not an error here. */
  send(b: Uint8Array | string): boolean {
    if (this.socket.destroyed) return false;
    try { return this.socket.write(b); } catch { return false; }
  }

  handshake(infoHash: Buffer, o: HandshakeOptions = {}): void {
    const reserved = o.reserved ?? Buffer.alloc(8);
    if (!o.reserved && o.extended !== false) reserved[5] = 0x10;
    this.send(encodeHandshake(infoHash, o.peerId ?? Buffer.concat([Buffer.from('-XX0001-'), randomBytes(12)]), reserved));
  }

  /** Sends a BEP 10 extended handshake carrying `fields` (e.g. ticket, group), plus an empty `m`. */
  extHandshake(fields: Record<string, BEncodable | undefined>): void {
    this.send(encodeExtended(0, encode({ m: {}, ...fields })));
  }

  interested(): void { this.send(frame(MsgId.INTERESTED)); }

  request(piece: number, begin: number, length: number): void { this.send(encodeRequest(piece, begin, length)); }

  bitfield(bytes: Uint8Array): void { this.send(encodeBitfield(bytes)); }

  /** Messages of one id received so far. */
  messagesOf(id: number): WireMessage[] { return this.reader.messages.filter((m) => m.id === id); }

  count(id: number): number { return this.messagesOf(id).length; }

  /** The remote's handshake arrived. */
  get gotHandshake(): boolean { return this.reader.handshake !== null; }

  /** Waits until `pred` holds or the connection closes or `ms` pass; returns whether `pred` holds. */
  async until(pred: () => boolean, ms: number): Promise<boolean> {
    const deadline = Date.now() + ms;
    while (!pred()) {
      const left = deadline - Date.now();
      if (left <= 0 || this.closed) return pred();
      await new Promise<void>((r) => {
        const t = setTimeout(r, Math.min(left, 100));
        this.waiters.push(() => { clearTimeout(t); r(); });
      });
    }
    return true;
  }

  /** Milliseconds from connect until the remote closed, if it did within `ms` from now; else null. */
  async closedWithin(ms: number): Promise<number | null> {
    let t: NodeJS.Timeout | undefined;
    await Promise.race([this.closedP, new Promise<void>((r) => { t = setTimeout(r, ms); })]);
    clearTimeout(t);
    return this.closedAt === null ? null : this.closedAt - this.openedAt;
  }

  destroy(): void { this.socket.destroy(); }
}

/** How a {@link HostileSeeder} answers REQUESTs. */
export interface SeederOptions {
  /** The real file: answer with its bytes (an honest seeder). Absent: random bytes (a malicious one). */
  data?: Buffer;
  pieceLength?: number;
  /** Keep requests unanswered until {@link HostileSeeder.release} (to script what arrives first). */
  hold?: boolean;
}

/**
 * A listening peer that seeds `infoHash` with `pieceCount` pieces: by default it answers every
 * REQUEST with the right length of wrong bytes (a malicious seeder); with `data` it answers
 * honestly, and with `hold` it keeps requests until told to answer. Records the downloaders that
 * connected, when each hung up, and the requests it received.
 */
export class HostileSeeder {
  private server: Server | null = null;
  port = 0;
  /** One entry per connection: when it opened and closed, how many blocks we sent. */
  readonly conns: Array<{ openedAt: number; closedAt: number | null; blocksSent: number; socket: Socket }> = [];
  /** Requests received and not answered yet (with `hold`). */
  readonly held: Array<{ piece: number; begin: number; length: number; socket: Socket }> = [];
  private holding: boolean;

  constructor(private readonly infoHash: Buffer, private readonly pieceCount: number, private readonly opts: SeederOptions = {}) {
    this.holding = opts.hold ?? false;
  }

  async listen(host = '127.0.0.1'): Promise<number> {
    const server = createServer((s) => this.accept(s));
    this.server = server;
    await new Promise<void>((r) => server.listen(0, host, r));
    this.port = (server.address() as { port: number }).port;
    return this.port;
  }

  private block(piece: number, begin: number, len: number): Buffer {
    const d = this.opts.data;
    if (!d) return randomBytes(len);
    const at = piece * (this.opts.pieceLength ?? 0) + begin;
    return d.subarray(at, at + len);
  }

  private answer(s: Socket, piece: number, begin: number, len: number): void {
    const c = this.conns.find((x) => x.socket === s);
    if (c) c.blocksSent++;
    if (!s.destroyed) s.write(encodePiece(piece, begin, this.block(piece, begin, len)));
  }

  /** Answers every held request; stops holding unless `keepHolding`. */
  release(keepHolding = false): void {
    this.holding = keepHolding;
    for (const r of this.held.splice(0)) this.answer(r.socket, r.piece, r.begin, r.length);
  }

  private accept(s: Socket): void {
    const c = { openedAt: Date.now(), closedAt: null as number | null, blocksSent: 0, socket: s };
    this.conns.push(c);
    s.setNoDelay(true);
    s.on('error', () => { /* reset by the downloader: recorded by 'close' */ });
    s.once('close', () => { c.closedAt = Date.now(); });
    const r = new WireReader();
    r.onMessage = (m) => {
      if (m.id !== MsgId.REQUEST || m.payload.length !== 12) return;
      const piece = m.payload.readUInt32BE(0), begin = m.payload.readUInt32BE(4), len = m.payload.readUInt32BE(8);
      if (len > 16384) return;
      if (this.holding) this.held.push({ piece, begin, length: len, socket: s });
      else this.answer(s, piece, begin, len);
    };
    let greeted = false;
    s.on('data', (chunk: Buffer) => {
      r.push(chunk);
      if (!greeted && r.handshake !== null) {
        greeted = true;
        // No BEP 10 bit: the downloader goes straight to the wire messages.
        s.write(encodeHandshake(this.infoHash, Buffer.concat([Buffer.from('-EV0001-'), randomBytes(12)]), Buffer.alloc(8)));
        const bf = Buffer.alloc((this.pieceCount + 7) >>> 3, 0xff);
        const spare = bf.length * 8 - this.pieceCount;
        if (spare > 0) bf[bf.length - 1] = (0xff << spare) & 0xff;
        s.write(encodeBitfield(bf));
        s.write(frame(MsgId.UNCHOKE));
      }
    });
  }

  close(): void {
    for (const c of this.conns) c.socket.destroy();
    this.server?.close();
    this.server = null;
  }
}
