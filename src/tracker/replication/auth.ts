/**
 * Who may open a replication link, and how each side proves it holds its tracker's key.
 *
 * Admission, checked by the acceptor before anything is replicated:
 *  1. the remote IP of the TCP connection is one of the IPs listed in tracker_info;
 *  2. the address the dialer claims as its own is a line of tracker_info, not the acceptor's, and
 *     its IP is the connection's remote IP;
 *  3. both sides sign a transcript binding both fresh nonces, both listed addresses, both origins
 *     and both public keys with their Ed25519 keys (a signed nonce challenge, so a recorded
 *     handshake cannot be replayed);
 *  4. each key is pinned to its listed address on first use (see {@link PinStore}); later links
 *     from that address must present the same key. A different key is accepted only together with
 *     a new origin id (a wiped data dir has both a new key and a new origin) and only while no link
 *     with the pinned key is up; it is re-pinned and logged as a warning.
 *
 * What this protects against: hosts not listed in tracker_info; a process on a listed host that
 * does not hold the tracker's key, once that tracker's key is pinned (it can neither take over the
 * address's origin nor a live link); replayed handshakes.
 * What it does not protect against: an attacker on the network path (links are neither encrypted
 * nor integrity-protected after the handshake, so an on-path attacker can read and alter frames);
 * an impostor on a listed host before the first genuine contact, or while the genuine tracker is
 * down and claiming to be a wiped incarnation (trust on first use); a compromised tracker, which
 * can write anything under any origin. Closing those needs keys distributed out of band (e.g. a
 * public key column in tracker_info) and TLS; tracker_info's format is fixed by the interface.
 *
 * Pure apart from node:crypto: no sockets.
 */
import { createPublicKey, randomBytes, verify } from 'node:crypto';
import { isIP } from 'node:net';
import { formatEndpoint, type Endpoint } from '../../common/config.js';

/** Bytes of a handshake nonce. */
export const NONCE_BYTES = 32;

export function newNonce(): string {
  return randomBytes(NONCE_BYTES).toString('base64');
}

/** The fields both signatures cover; any change to one of them invalidates both. */
export interface Transcript {
  dialerAddr: string; acceptorAddr: string;
  dialerOrigin: string; acceptorOrigin: string;
  dialerNonce: string; acceptorNonce: string;
  dialerKey: string; acceptorKey: string;
}

/** Bytes a side signs; `role` separates the two signatures so one cannot stand in for the other. */
export function transcriptBytes(role: 'dialer' | 'acceptor', t: Transcript): Buffer {
  return Buffer.from(JSON.stringify([
    'coterie-replication-v1', role,
    t.dialerAddr, t.acceptorAddr, t.dialerOrigin, t.acceptorOrigin,
    t.dialerNonce, t.acceptorNonce, t.dialerKey, t.acceptorKey,
  ]));
}

/** Verifies an Ed25519 signature by a base64 SPKI key; false on any malformed input. */
export function verifySignature(publicKeyB64: string, data: Buffer, sigB64: string): boolean {
  try {
    const key = createPublicKey({ key: Buffer.from(publicKeyB64, 'base64'), format: 'der', type: 'spki' });
    if (key.asymmetricKeyType !== 'ed25519') return false;
    return verify(null, data, key, Buffer.from(sigB64, 'base64'));
  } catch {
    return false;
  }
}

/** `::ffff:1.2.3.4` -> `1.2.3.4`, so that v4 peers on a dual-stack socket match the listed IP. */
export function normalizeIp(ip: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  return m ? m[1]! : ip.toLowerCase();
}

function hostOf(addr: string): string {
  const m = /^\[([^\]]+)\]:\d+$/.exec(addr);
  return normalizeIp(m ? m[1]! : addr.slice(0, addr.lastIndexOf(':')));
}

/** The tracker_info list seen from one tracker: who it is, whom it syncs with, who may dial in. */
export class PeerDirectory {
  readonly selfAddr: string;
  /** Listed addresses of every other tracker (formatted `IP:PORT`). */
  readonly peers: readonly string[];
  private readonly peerSet: Set<string>;
  private readonly ips: Set<string>;

  constructor(readonly self: Endpoint, trackers: readonly Endpoint[]) {
    this.selfAddr = formatEndpoint(self);
    const all = trackers.map(formatEndpoint);
    this.peers = [...new Set(all.filter((a) => a !== this.selfAddr))];
    this.peerSet = new Set(this.peers);
    this.ips = new Set(trackers.map((t) => normalizeIp(t.host)));
  }

  /** Why a connection from `remoteIp` claiming listed address `claimed` is refused, or null. */
  admissionProblem(remoteIp: string | undefined, claimed: string): string | null {
    if (remoteIp === undefined || isIP(normalizeIp(remoteIp)) === 0) return 'no remote address';
    if (!this.ips.has(normalizeIp(remoteIp))) return `remote IP ${remoteIp} is not listed in tracker_info`;
    if (claimed === this.selfAddr) return `claims this tracker's own address ${claimed}`;
    if (!this.peerSet.has(claimed)) return `claimed address ${claimed} is not listed in tracker_info`;
    // A tracker dials from its listed IP; requiring it stops a process on one listed host from
    // posing as the tracker of another (a multi-homed host must route peers from its listed IP).
    if (hostOf(claimed) !== normalizeIp(remoteIp)) return `claims ${claimed} but connects from ${remoteIp}`;
    return null;
  }
}
