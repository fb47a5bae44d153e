/**
 * The BEP 10 extended handshake (EXTENDED message id 0): a bencoded dict both sides send right
 * after the BitTorrent handshake when both set the extension bit. Besides the standard keys we
 * carry Coterie's access ticket, so a seeder can check that the downloader may have the file
 * before it sends anything about it. Standard clients (libtorrent) ignore keys they do not know,
 * and we ignore theirs.
 */
import { ProtocolError } from '../../common/errors.js';
import { decode, encode, type BDict, type BValue } from '../../protocol/bencode.js';

/** Largest extended handshake we accept (a ticket is a few hundred bytes; libtorrent's dict is ~200). */
export const MAX_EXT_HANDSHAKE = 8 * 1024;
/** Longest string field we keep (client version, ticket, group). */
const MAX_FIELD = 4 * 1024;

/** What we send and what we keep of a peer's extended handshake. */
export interface ExtHandshake {
  /** Extension name -> message id the sender wants to receive it on (0 = disabled). */
  m: Record<string, number>;
  /** Client name and version. */
  v?: string;
  /** The sender's listen port (lets a seeder learn a downloader's server address). */
  p?: number;
  /** How many outstanding requests the sender accepts. */
  reqq?: number;
  /** Coterie access ticket (opaque here; verified by the engine's authorize hook). */
  ticket?: string;
  /** Coterie group the ticket is for. */
  group?: string;
}

export function encodeExtHandshake(h: ExtHandshake): Buffer {
  return encode({ m: h.m, v: h.v, p: h.p, reqq: h.reqq, ticket: h.ticket, group: h.group });
}

function str(v: BValue | undefined, what: string): string | undefined {
  if (v === undefined) return undefined;
  if (!Buffer.isBuffer(v)) throw new ProtocolError(`extended handshake: ${what} is not a string`);
  if (v.length > MAX_FIELD) throw new ProtocolError(`extended handshake: ${what} longer than ${MAX_FIELD} bytes`);
  return v.toString('utf8');
}

function int(v: BValue | undefined, what: string, max: number): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || v < 0 || v > max) throw new ProtocolError(`extended handshake: bad ${what}`);
  return v;
}

/**
 * Parses a peer's extended handshake payload (hostile input). Unknown keys are ignored; known
 * keys of the wrong type are a ProtocolError. Key order is not enforced: some clients do not sort.
 */
export function decodeExtHandshake(payload: Uint8Array): ExtHandshake {
  if (payload.length > MAX_EXT_HANDSHAKE) throw new ProtocolError(`extended handshake of ${payload.length} bytes`);
  let d: BValue;
  try {
    d = decode(payload, { maxBytes: MAX_EXT_HANDSHAKE, maxDepth: 4, maxEntries: 128, maxValues: 1024, lenient: true });
  } catch (e) {
    throw new ProtocolError(`extended handshake is not valid bencode: ${(e as Error).message}`);
  }
  if (typeof d !== 'object' || Array.isArray(d) || Buffer.isBuffer(d)) throw new ProtocolError('extended handshake is not a dict');
  const dict = d as BDict;
  const m: Record<string, number> = Object.create(null) as Record<string, number>;
  const mv = dict['m'];
  if (mv !== undefined) {
    if (typeof mv !== 'object' || Array.isArray(mv) || Buffer.isBuffer(mv)) throw new ProtocolError('extended handshake: m is not a dict');
    for (const [k, v] of Object.entries(mv as BDict)) {
      if (typeof v === 'number' && v >= 0 && v <= 255) m[k] = v;
    }
  }
  const out: ExtHandshake = { m };
  const v = str(dict['v'], 'v'); if (v !== undefined) out.v = v;
  const p = int(dict['p'], 'p', 65535); if (p !== undefined) out.p = p;
  const reqq = int(dict['reqq'], 'reqq', 1_000_000); if (reqq !== undefined) out.reqq = reqq;
  const ticket = str(dict['ticket'], 'ticket'); if (ticket !== undefined) out.ticket = ticket;
  const group = str(dict['group'], 'group'); if (group !== undefined) out.group = group;
  return out;
}
