/**
 * Access tickets: a tracker's Ed25519 signature binding a user, a group, a file (info-hash) and an
 * expiry time. A downloader presents one to a seeder (BEP 10 extended handshake); the seeder checks
 * it against the trackers' public keys and that it shares that file in that group.
 *
 * Wire form: `base64url(payload JSON) + '.' + base64url(64-byte signature)`, at most 1 KiB. The
 * signature covers a fixed context prefix plus the payload segment exactly as transmitted, so a
 * signature made for something else can never pass as a ticket, and the verifier checks the very
 * bytes it then parses (no re-serialisation ambiguity). Pure: no sockets, timers or fs; the
 * caller passes `now`.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { CoterieError } from '../common/errors.js';
import { idProblem } from '../common/names.js';

/** What a ticket grants. `infoHash` is 40 lower-case hex digits; `expiresAt` is ms since the epoch. */
export interface Ticket {
  user: string;
  group: string;
  infoHash: string;
  expiresAt: number;
  /** Which tracker signed it: the key under which the verifier finds that tracker's public key. */
  origin: string;
}

/** Longest ticket accepted or produced, characters (a real one is ~300). */
export const MAX_TICKET_LENGTH = 1024;
/** Longest origin name. */
export const MAX_ORIGIN_LENGTH = 128;

/** Why a ticket was refused; every reason has code ACCESS_DENIED. */
export type TicketRejection = 'malformed' | 'oversized' | 'unknown-origin' | 'bad-signature' | 'expired';

/** A refused ticket. Code ACCESS_DENIED; `reason` tells which check failed (for logs and tests). */
export class TicketError extends CoterieError {
  override name = 'TicketError';
  constructor(readonly reason: TicketRejection, message: string) { super('ACCESS_DENIED', `access ticket refused: ${message}`); }
}

// Domain separation: these bytes never start any other message a tracker key signs.
const CONTEXT = Buffer.from('coterie access ticket v1\n', 'ascii');
const B64URL_RE = /^[A-Za-z0-9_-]+$/;
const HEX40_RE = /^[0-9a-f]{40}$/;
// eslint-disable-next-line no-control-regex
const ORIGIN_RE = /^[\x21-\x7e]+$/;
const FIELDS = ['expiresAt', 'group', 'infoHash', 'origin', 'user'];

/** Why `t` is not a well-formed ticket payload, or null. */
function payloadProblem(t: Record<string, unknown>): string | null {
  const keys = Object.keys(t).sort();
  if (keys.length !== FIELDS.length || keys.some((k, i) => k !== FIELDS[i])) return 'unexpected fields';
  if (typeof t['user'] !== 'string' || idProblem(t['user'])) return 'bad user';
  if (typeof t['group'] !== 'string' || idProblem(t['group'])) return 'bad group';
  if (typeof t['infoHash'] !== 'string' || !HEX40_RE.test(t['infoHash'])) return 'bad info-hash';
  if (typeof t['expiresAt'] !== 'number' || !Number.isSafeInteger(t['expiresAt']) || t['expiresAt'] < 0) return 'bad expiry';
  const o = t['origin'];
  if (typeof o !== 'string' || o.length === 0 || o.length > MAX_ORIGIN_LENGTH || !ORIGIN_RE.test(o)) return 'bad origin';
  return null;
}

/**
 * Signs a ticket with a tracker's Ed25519 private key. Throws CoterieError BAD_REQUEST if a field
 * is invalid (the same rules verifyTicket applies) or the key is not Ed25519.
 */
export function signTicket(t: Ticket, privateKey: KeyObject): string {
  const payload: Ticket = { user: t.user, group: t.group, infoHash: t.infoHash, expiresAt: t.expiresAt, origin: t.origin };
  const problem = payloadProblem(payload as unknown as Record<string, unknown>);
  if (problem) throw new CoterieError('BAD_REQUEST', `cannot sign ticket: ${problem}`);
  if (privateKey.type !== 'private' || privateKey.asymmetricKeyType !== 'ed25519') throw new CoterieError('BAD_REQUEST', 'ticket key must be an Ed25519 private key');
  const body = Buffer.from(JSON.stringify(payload), 'utf8').toString('base64url');
  const sig = sign(null, Buffer.concat([CONTEXT, Buffer.from(body, 'ascii')]), privateKey);
  const out = `${body}.${sig.toString('base64url')}`;
  if (out.length > MAX_TICKET_LENGTH) throw new CoterieError('BAD_REQUEST', 'ticket too long');
  return out;
}

/** Strict base64url: only the alphabet, no padding, and canonical (re-encodes to the same text). */
function b64url(s: string): Buffer | null {
  if (!B64URL_RE.test(s)) return null;
  const b = Buffer.from(s, 'base64url');
  return b.toString('base64url') === s ? b : null;
}

/**
 * Checks a ticket (hostile input) and returns what it grants. `keys` maps each trusted tracker's
 * origin name to its public key; `now` is ms since the epoch. Throws {@link TicketError} (code
 * ACCESS_DENIED) if it is oversized, malformed, from an unknown origin, badly signed, or expired
 * (`now >= expiresAt`). Never throws anything else, whatever `ticket` is.
 */
export function verifyTicket(ticket: unknown, keys: ReadonlyMap<string, KeyObject>, now: number): Ticket {
  if (typeof ticket !== 'string') throw new TicketError('malformed', 'not a string');
  if (ticket.length > MAX_TICKET_LENGTH) throw new TicketError('oversized', `longer than ${MAX_TICKET_LENGTH} characters`);
  const dot = ticket.indexOf('.');
  if (dot < 0 || ticket.indexOf('.', dot + 1) >= 0) throw new TicketError('malformed', 'not two dot-separated parts');
  const bodyText = ticket.slice(0, dot);
  const body = b64url(bodyText);
  const sig = b64url(ticket.slice(dot + 1));
  if (!body || !sig) throw new TicketError('malformed', 'not base64url');
  if (sig.length !== 64) throw new TicketError('malformed', 'bad signature length');
  let parsed: unknown;
  try { parsed = JSON.parse(body.toString('utf8')); } catch { throw new TicketError('malformed', 'payload is not JSON'); }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new TicketError('malformed', 'payload is not an object');
  const problem = payloadProblem(parsed as Record<string, unknown>);
  if (problem) throw new TicketError('malformed', problem);
  const t = parsed as Ticket;
  const key = keys.get(t.origin);
  if (!key) throw new TicketError('unknown-origin', `signed by unknown tracker ${JSON.stringify(t.origin)}`);
  let ok = false;
  try { ok = verify(null, Buffer.concat([CONTEXT, Buffer.from(bodyText, 'ascii')]), key, sig); } catch { ok = false; }
  if (!ok) throw new TicketError('bad-signature', 'signature does not verify');
  if (!(now < t.expiresAt)) throw new TicketError('expired', 'expired');
  return { user: t.user, group: t.group, infoHash: t.infoHash, expiresAt: t.expiresAt, origin: t.origin };
}

/** Whether a verified ticket grants access to `infoHash` (hex or 20 bytes) in `group`. */
export function ticketAllows(t: Ticket, group: string, infoHash: string | Uint8Array): boolean {
  const hex = typeof infoHash === 'string' ? infoHash.toLowerCase() : Buffer.from(infoHash).toString('hex');
  return t.group === group && t.infoHash === hex;
}

/** A fresh Ed25519 key pair for a tracker. */
export function generateKeyPair(): { publicKey: KeyObject; privateKey: KeyObject } {
  return generateKeyPairSync('ed25519');
}

/** A public key as base64 of its SPKI DER form (what trackers publish). */
export function exportPublicKey(key: KeyObject): string {
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  return pub.export({ type: 'spki', format: 'der' }).toString('base64');
}

/** The inverse of exportPublicKey. Throws CoterieError BAD_REQUEST unless it is an Ed25519 public key. */
export function importPublicKey(b64: string): KeyObject {
  let key: KeyObject;
  try { key = createPublicKey({ key: strictBase64(b64), format: 'der', type: 'spki' }); } catch (e) {
    throw new CoterieError('BAD_REQUEST', 'not a valid public key', { cause: e });
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new CoterieError('BAD_REQUEST', 'public key is not Ed25519');
  return key;
}

/** A private key as base64 of its PKCS#8 DER form, for the tracker's own storage (keep it secret). */
export function exportPrivateKey(key: KeyObject): string {
  if (key.type !== 'private') throw new CoterieError('BAD_REQUEST', 'not a private key');
  return key.export({ type: 'pkcs8', format: 'der' }).toString('base64');
}

/** The inverse of exportPrivateKey. Throws CoterieError BAD_REQUEST unless it is an Ed25519 private key. */
export function importPrivateKey(b64: string): KeyObject {
  let key: KeyObject;
  try { key = createPrivateKey({ key: strictBase64(b64), format: 'der', type: 'pkcs8' }); } catch (e) {
    throw new CoterieError('BAD_REQUEST', 'not a valid private key', { cause: e });
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new CoterieError('BAD_REQUEST', 'private key is not Ed25519');
  return key;
}

function strictBase64(s: string): Buffer {
  const t = s.trim();
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(t) || t.length % 4 !== 0) throw new Error('not base64');
  return Buffer.from(t, 'base64');
}
