/**
 * One replication link over one TCP socket: framing, the authenticated handshake (auth.ts), then
 * the delta-sync session (sync-session.ts) and presence gossip frames. The link owns no policy
 * beyond its own socket: which links exist, duplicates, and who pumps when is the
 * {@link LinkContext}'s business (replicator.ts).
 *
 * Grounds for closing a link: a line over the cap, a frame that fails validation or arrives in the
 * wrong state, a failed admission or signature check, silence past the idle timeout.
 */
import type { Socket } from 'node:net';
import { describe } from '../../common/errors.js';
import type { Logger } from '../../common/log.js';
import { LineDecoder } from '../../protocol/rpc.js';
import { newNonce, transcriptBytes, verifySignature, type PeerDirectory, type Transcript } from './auth.js';
import { checkPin, type PinStore } from './pins.js';
import { SyncSession, type Refusal, type SyncOptions } from './sync-session.js';
import type { Clock, ReplicaStore, Signer } from './types.js';
import {
  authSchema, helloSchema, linkFrameSchema, MAX_FRAME_BYTES, parseFrame, REPLICATION_VERSION, welcomeSchema,
  type ByeFrame, type HelloFrame, type LinkFrame, type PresenceEntry, type SyncFrame,
} from './wire.js';

/** What a link needs from the replicator that owns it. */
export interface LinkContext {
  readonly dir: PeerDirectory;
  readonly store: ReplicaStore;
  readonly signer: Signer;
  readonly pins: PinStore;
  readonly clock: Clock;
  readonly log: Logger;
  readonly sync: Omit<SyncOptions, 'clock'>;
  readonly handshakeTimeoutMs: number;
  readonly idleTimeoutMs: number;
  /** The key the replicated state holds for `origin` (its `tkey` row), if any. */
  knownKey(origin: string): string | undefined;
  /** Is a link authenticated with `key` open to `addr` right now? */
  linkUpWithKey(addr: string, key: string): boolean;
  /** An authenticated link wants to open; false refuses it (a duplicate). */
  opened(link: PeerLink): boolean;
  closed(link: PeerLink): void;
  presence(link: PeerLink, entries: PresenceEntry[]): void;
}

export type LinkRole = 'dialer' | 'acceptor';
export type LinkState = 'handshake' | 'open' | 'closed';

/** How often a given refusal is logged at most (per origin and code). */
const REFUSAL_LOG_INTERVAL_MS = 30_000;

export class PeerLink {
  state: LinkState = 'handshake';
  /** The peer's listed address (known up front when dialing, from the hello when accepting). */
  peerAddr: string | null;
  peerOrigin: string | null = null;
  peerKey: string | null = null;
  session: SyncSession | null = null;
  readonly createdAt: number;
  lastHeardAt: number;
  closeCode: string | null = null;
  closeReason: string | null = null;
  private readonly decoder: LineDecoder;
  private readonly nonce = newNonce();
  private transcript: Transcript | null = null;
  private readonly refusalLogged = new Map<string, number>();

  private constructor(
    private readonly ctx: LinkContext,
    readonly socket: Socket,
    readonly role: LinkRole,
    peerAddr: string | null,
    decoder: LineDecoder,
  ) {
    this.peerAddr = peerAddr;
    this.decoder = decoder;
    this.createdAt = this.lastHeardAt = ctx.clock.now();
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err) => this.close('SOCKET', describe(err), false));
    socket.on('close', () => this.close('CLOSED', 'connection closed', false));
    // The RPC server allows half-open sockets; a link whose peer has finished is over.
    socket.on('end', () => this.close('CLOSED', 'the peer closed the connection', false));
  }

  /** A link we dial to the tracker listed at `addr`; the hello goes out once the socket connects. */
  static dial(ctx: LinkContext, socket: Socket, addr: string): PeerLink {
    const link = new PeerLink(ctx, socket, 'dialer', addr, new LineDecoder(MAX_FRAME_BYTES));
    socket.once('connect', () => link.send({
      t: 'hello', v: REPLICATION_VERSION, origin: ctx.store.origin, addr: ctx.dir.selfAddr,
      nonce: link.nonce, key: ctx.signer.publicKey,
    } satisfies HelloFrame));
    return link;
  }

  /**
   * A link accepted on the client port: `lines` are the lines already split off the socket (the
   * first is the hello), `decoder` holds any partial line that followed. The caller has detached
   * its own data listener.
   */
  static accept(ctx: LinkContext, socket: Socket, lines: string[], decoder: LineDecoder): PeerLink {
    const link = new PeerLink(ctx, socket, 'acceptor', null, decoder);
    const [first, ...rest] = lines;
    link.onHello(first ?? '');
    for (const l of rest) { if (link.state === 'closed') break; link.onLine(l); }
    return link;
  }

  send(frame: object): void {
    if (this.state === 'closed' || this.socket.destroyed) return;
    this.socket.write(JSON.stringify(frame) + '\n');
  }

  sendAll(frames: readonly object[]): void {
    for (const f of frames) this.send(f);
  }

  /** Ships what the peer lacks, as far as the send window allows. */
  pump(): void {
    if (this.state === 'open' && this.session) this.sendAll(this.session.pump());
  }

  /** Periodic: handshake and idle timeouts, anti-entropy vector, repair. */
  tick(): void {
    const now = this.ctx.clock.now();
    if (this.state === 'handshake' && now - this.createdAt > this.ctx.handshakeTimeoutMs) {
      this.close('TIMEOUT', 'handshake timed out');
    } else if (this.state === 'open' && this.session) {
      if (now - this.lastHeardAt > this.ctx.idleTimeoutMs) this.close('IDLE', `silent for ${now - this.lastHeardAt} ms`);
      else this.sendAll(this.session.tick());
    }
  }

  /** Closes the link (idempotent); `bye` tells the peer why when the socket still works. */
  close(code: string, reason: string, bye = true): void {
    if (this.state === 'closed') return;
    const wasOpen = this.state === 'open';
    if (bye && !this.socket.destroyed) {
      this.socket.write(JSON.stringify({ t: 'bye', code, reason: reason.slice(0, 500) } satisfies ByeFrame) + '\n');
    }
    this.state = 'closed';
    this.closeCode = code;
    this.closeReason = reason;
    this.socket.end();
    // Give the bye a moment to leave, but never keep a dead socket around.
    setTimeout(() => this.socket.destroy(), 500).unref();
    const level = code === 'DUPLICATE' || (!wasOpen && code === 'SOCKET') || code === 'SHUTDOWN' ? 'debug' : 'info';
    this.ctx.log[level]({ peer: this.peerAddr, origin: this.peerOrigin, role: this.role, code, reason }, wasOpen ? 'replication link down' : 'replication link not established');
    this.ctx.closed(this);
  }

  private onData(chunk: Buffer): void {
    let lines: string[];
    try { lines = this.decoder.push(chunk); } catch (err) { this.close('TOO_LARGE', describe(err)); return; }
    for (const l of lines) {
      if (this.state === 'closed') return;
      this.onLine(l);
    }
  }

  private onLine(line: string): void {
    this.lastHeardAt = this.ctx.clock.now();
    if (this.state === 'open') { this.onFrame(line); return; }
    if (this.role === 'dialer') this.onWelcome(line);
    else this.onAuth(line);
  }

  // ------------------------------------------------------------------ handshake

  private onHello(line: string): void {
    const h = parseFrame(helloSchema, line);
    if (!h) { this.close('PROTOCOL', 'malformed hello'); return; }
    if (h.v !== REPLICATION_VERSION) { this.close('VERSION', `speaks version ${h.v}, this tracker ${REPLICATION_VERSION}`); return; }
    const problem = this.ctx.dir.admissionProblem(this.socket.remoteAddress, h.addr);
    if (problem) { this.close('NOT_A_PEER', problem); return; }
    if (h.origin === this.ctx.store.origin) { this.close('NOT_A_PEER', 'claims this tracker\'s own origin'); return; }
    this.peerAddr = h.addr;
    this.transcript = {
      dialerAddr: h.addr, acceptorAddr: this.ctx.dir.selfAddr,
      dialerOrigin: h.origin, acceptorOrigin: this.ctx.store.origin,
      dialerNonce: h.nonce, acceptorNonce: this.nonce,
      dialerKey: h.key, acceptorKey: this.ctx.signer.publicKey,
    };
    const sig = this.ctx.signer.sign(transcriptBytes('acceptor', this.transcript)).toString('base64');
    this.send({
      t: 'welcome', v: REPLICATION_VERSION, origin: this.ctx.store.origin, addr: this.ctx.dir.selfAddr,
      nonce: this.nonce, key: this.ctx.signer.publicKey, sig,
    });
  }

  private onWelcome(line: string): void {
    const w = parseFrame(welcomeSchema, line);
    if (!w) { this.closeOnBye(line, 'malformed welcome'); return; }
    if (w.v !== REPLICATION_VERSION) { this.close('VERSION', `speaks version ${w.v}, this tracker ${REPLICATION_VERSION}`); return; }
    if (w.addr !== this.peerAddr) { this.close('NOT_A_PEER', `answered as ${w.addr}`); return; }
    if (w.origin === this.ctx.store.origin) { this.close('NOT_A_PEER', 'answered with this tracker\'s own origin'); return; }
    const t: Transcript = {
      dialerAddr: this.ctx.dir.selfAddr, acceptorAddr: w.addr,
      dialerOrigin: this.ctx.store.origin, acceptorOrigin: w.origin,
      dialerNonce: this.nonce, acceptorNonce: w.nonce,
      dialerKey: this.ctx.signer.publicKey, acceptorKey: w.key,
    };
    if (!verifySignature(w.key, transcriptBytes('acceptor', t), w.sig)) { this.close('AUTH', 'bad signature in welcome'); return; }
    if (!this.admitKey(w.addr, w.origin, w.key)) return;
    this.send({ t: 'auth', sig: this.ctx.signer.sign(transcriptBytes('dialer', t)).toString('base64') });
    this.becomeOpen();
  }

  private onAuth(line: string): void {
    const a = parseFrame(authSchema, line);
    const t = this.transcript;
    if (!a || !t) { this.closeOnBye(line, 'expected auth'); return; }
    if (!verifySignature(t.dialerKey, transcriptBytes('dialer', t), a.sig)) { this.close('AUTH', 'bad signature in auth'); return; }
    if (!this.admitKey(t.dialerAddr, t.dialerOrigin, t.dialerKey)) return;
    this.becomeOpen();
  }

  /** Key checks common to both sides: the replicated key of the origin, then the address pin. */
  private admitKey(addr: string, origin: string, key: string): boolean {
    const known = this.ctx.knownKey(origin);
    if (known !== undefined && known !== key) {
      this.close('AUTH', `presents a key that differs from origin ${origin}'s replicated key`);
      return false;
    }
    const pin = this.ctx.pins.get(addr);
    const d = checkPin(pin, key, origin, pin !== undefined && this.ctx.linkUpWithKey(addr, pin.key));
    if (!d.ok) {
      this.ctx.log.warn({ peer: addr, origin }, `replication peer refused: ${d.reason}`);
      this.close('AUTH', d.reason);
      return false;
    }
    if (d.warning) this.ctx.log.warn({ peer: addr, origin, previousOrigin: pin?.origin }, d.warning);
    if (d.pin) this.ctx.pins.set(addr, { key, origin, since: this.ctx.clock.now() });
    this.peerOrigin = origin;
    this.peerKey = key;
    return true;
  }

  private becomeOpen(): void {
    this.state = 'open';
    if (!this.ctx.opened(this)) { this.close('DUPLICATE', 'another link to this tracker is up'); return; }
    this.session = new SyncSession(this.ctx.store, { ...this.ctx.sync, clock: this.ctx.clock });
    this.ctx.log.info({ peer: this.peerAddr, origin: this.peerOrigin, role: this.role }, 'replication link up');
    this.sendAll(this.session.open());
  }

  /** During the handshake a peer may answer with a bye (refused us): log its reason. */
  private closeOnBye(line: string, what: string): void {
    const f = parseFrame(linkFrameSchema, line);
    if (f?.t === 'bye') this.close(`REMOTE_${f.code}`.slice(0, 64), f.reason, false);
    else this.close('PROTOCOL', what);
  }

  // ------------------------------------------------------------------ open link

  private onFrame(line: string): void {
    const f: LinkFrame | null = parseFrame(linkFrameSchema, line);
    if (!f) { this.close('PROTOCOL', 'malformed frame'); return; }
    switch (f.t) {
      case 'bye': this.close(`REMOTE_${f.code}`.slice(0, 64), f.reason, false); return;
      case 'presence': this.ctx.presence(this, f.entries); return;
      default: this.onSync(f);
    }
  }

  private onSync(f: SyncFrame): void {
    const session = this.session!;
    let r;
    try { r = session.receive(f); } catch (err) {
      // A store failure is ours, not the peer's; drop the link and let a fresh one retry.
      this.ctx.log.error({ peer: this.peerAddr, err: describe(err) }, 'replication: applying a frame failed');
      this.close('INTERNAL', 'the receiving tracker failed to apply a frame');
      return;
    }
    this.sendAll(r.out);
    if (r.refused.length > 0) this.logRefusals(r.refused);
  }

  private logRefusals(refused: Refusal[]): void {
    const now = this.ctx.clock.now();
    for (const r of refused) {
      const k = `${r.origin}/${r.code}`;
      const last = this.refusalLogged.get(k);
      if (last !== undefined && now - last < REFUSAL_LOG_INTERVAL_MS) continue;
      this.refusalLogged.set(k, now);
      if (r.code === 'GAP') continue; // normal after a lost frame: repaired at the next tick
      this.ctx.log.warn({ peer: this.peerAddr, origin: r.origin, seq: r.seq, code: r.code }, `replication: refused a change: ${r.message}`);
    }
  }
}
