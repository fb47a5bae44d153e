/**
 * Client <-> tracker RPC: one JSON object per line (NDJSON) over TCP.
 *
 *   request   {"id": 7, "op": "login", "args": {...}, "token": "..."}
 *   response  {"id": 7, "ok": true, "result": {...}}
 *             {"id": 7, "ok": false, "error": {"code": "WRONG_PASSWORD", "message": "..."}}
 *
 * Lines are capped at {@link MAX_LINE_BYTES}; a longer line is grounds for disconnecting. Every
 * message is validated with zod and unknown fields are rejected (`.strict()`), so a handler only
 * ever sees well-formed, bounded arguments. This module is pure: no sockets, no timers.
 */
import { z } from 'zod';
import { FrameTooLargeError, type WireError } from '../common/errors.js';
import { MAX_FILE_NAME_LENGTH, MAX_ID_LENGTH, MAX_PASSWORD_LENGTH } from '../common/names.js';

/** Cap on one RPC line, newline excluded. An info dictionary of 2,000 pieces is ~55 KiB in base64. */
export const MAX_LINE_BYTES = 1 << 20;

// ---------------------------------------------------------------- field schemas
const userId = z.string().min(1).max(MAX_ID_LENGTH);
const groupId = z.string().min(1).max(MAX_ID_LENGTH);
const fileName = z.string().min(1).max(MAX_FILE_NAME_LENGTH);
const password = z.string().min(1).max(MAX_PASSWORD_LENGTH);
const hex40 = z.string().regex(/^[0-9a-f]{40}$/);
const hex64 = z.string().regex(/^[0-9a-f]{64}$/);
/** A peer address "IP:PORT" as the client was started with. */
const peerAddr = z.string().min(3).max(64);
/** A stable random id of one client's data dir, so presence can tell two clients of one user apart. */
const clientId = z.string().regex(/^[0-9a-f]{16,64}$/);
const base64 = (max: number) => z.string().max(max).regex(/^[A-Za-z0-9+/]*={0,2}$/);
const empty = z.object({}).strict();

/** One share as a client announces it: "I serve this info-hash in this group". */
export const shareRef = z.object({ group: groupId, infoHash: hex40 }).strict();
export type ShareRef = z.infer<typeof shareRef>;

/**
 * Every operation: its argument schema, its result schema, and whether it needs a session token.
 * Adding an op here is what makes it exist: the server dispatches on this table and the client
 * link types its calls from it.
 */
export const ops = {
  create_user: { auth: false, args: z.object({ user: userId, password }).strict(), result: empty },
  login: {
    auth: false,
    args: z.object({ user: userId, password, peer: peerAddr, clientId }).strict(),
    result: z.object({
      token: z.string(), user: userId,
      /** Ed25519 public keys (SPKI DER, base64) of every tracker known, for checking access tickets. */
      trackerKeys: z.array(z.object({ origin: z.string(), publicKey: z.string() }).strict()),
    }).strict(),
  },
  /** Presence: renews this client's lease and states what it serves right now (replaces the previous set). */
  heartbeat: {
    auth: true,
    args: z.object({ peer: peerAddr, clientId, shares: z.array(shareRef).max(100_000) }).strict(),
    result: z.object({ user: userId }).strict(),
  },
  logout: { auth: true, args: z.object({ clientId: clientId.optional() }).strict(), result: empty },
  create_group: { auth: true, args: z.object({ group: groupId }).strict(), result: empty },
  join_group: { auth: true, args: z.object({ group: groupId }).strict(), result: empty },
  leave_group: {
    auth: true, args: z.object({ group: groupId }).strict(),
    result: z.object({ newOwner: userId.optional() }).strict(),
  },
  list_requests: {
    auth: true, args: z.object({ group: groupId }).strict(),
    result: z.object({ users: z.array(userId) }).strict(),
  },
  accept_request: { auth: true, args: z.object({ group: groupId, user: userId }).strict(), result: empty },
  reject_request: { auth: true, args: z.object({ group: groupId, user: userId }).strict(), result: empty },
  list_groups: {
    auth: true, args: empty,
    result: z.object({
      groups: z.array(z.object({ group: groupId, owner: userId, members: z.number().int() }).strict()),
    }).strict(),
  },
  list_files: {
    auth: true, args: z.object({ group: groupId }).strict(),
    result: z.object({
      files: z.array(z.object({
        name: fileName, size: z.number().int().nonnegative(), infoHash: hex40,
        /** Users sharing it (durable records), and how many of their clients are online now. */
        seeders: z.number().int().nonnegative(), online: z.number().int().nonnegative(),
      }).strict()),
    }).strict(),
  },
  /**
   * Registers a file in a group and the caller (at `peer`) as a seeder of it. `info` is the
   * bencoded BitTorrent v1 info dictionary, base64; the tracker checks it (name, length, pieces)
   * and derives the info-hash itself. The same name with other content is NAME_CONFLICT.
   */
  upload_file: {
    auth: true,
    args: z.object({ group: groupId, info: base64(1 << 19), sha256: hex64, peer: peerAddr, clientId }).strict(),
    result: z.object({ infoHash: hex40, status: z.enum(['added', 'seeder']) }).strict(),
  },
  /** Adds the caller as a seeder of a file already in the group (re-share at login, partial download). */
  announce: {
    auth: true,
    args: z.object({ group: groupId, infoHash: hex40, peer: peerAddr, clientId }).strict(),
    result: empty,
  },
  stop_share: {
    auth: true, args: z.object({ group: groupId, name: fileName, peer: peerAddr, clientId }).strict(),
    result: z.object({ infoHash: hex40 }).strict(),
  },
  /** Members only: the file's manifest and the online members sharing it, plus an access ticket. */
  get_peers: {
    auth: true, args: z.object({ group: groupId, name: fileName }).strict(),
    result: z.object({
      infoHash: hex40, info: z.string(), sha256: hex64, size: z.number().int().nonnegative(),
      peers: z.array(z.object({ addr: peerAddr, user: userId, clientId }).strict()),
      ticket: z.string().optional(),
    }).strict(),
  },
  /** Operators: version vector, peers' link state and lag, digest of the replicated state. */
  status: { auth: false, args: empty, result: z.record(z.unknown()) },
} as const;

export type OpName = keyof typeof ops;
export type OpArgs<K extends OpName> = z.infer<(typeof ops)[K]['args']>;
export type OpResult<K extends OpName> = z.infer<(typeof ops)[K]['result']>;

export const requestSchema = z.object({
  id: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
  op: z.string().max(64),
  args: z.unknown().optional(),
  token: z.string().max(128).optional(),
}).strict();
export type Request = z.infer<typeof requestSchema>;

export const responseSchema = z.union([
  z.object({ id: z.number().int(), ok: z.literal(true), result: z.unknown() }).strict(),
  z.object({
    id: z.number().int(), ok: z.literal(false),
    error: z.object({ code: z.string().max(64), message: z.string().max(4096) }).strict(),
  }).strict(),
]);
export type Response =
  | { id: number; ok: true; result: unknown }
  | { id: number; ok: false; error: WireError };

export function isOpName(op: string): op is OpName {
  return Object.prototype.hasOwnProperty.call(ops, op);
}

/** Encodes a message as one line, newline included. */
export function encodeLine(msg: unknown): string {
  return JSON.stringify(msg) + '\n';
}

/**
 * Splits a byte stream into lines, refusing any line over `cap` bytes before buffering it whole
 * (the check runs on the partial line, so a peer cannot make us hold more than `cap` bytes).
 * Returns complete lines; throws {@link FrameTooLargeError} on an oversized one.
 */
export class LineDecoder {
  private parts: Buffer[] = [];
  private partLen = 0;
  constructor(private readonly cap = MAX_LINE_BYTES) {}

  push(chunk: Buffer): string[] {
    const lines: string[] = [];
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(0x0a, start);
      if (nl === -1) break;
      const piece = chunk.subarray(start, nl);
      const total = this.partLen + piece.length;
      if (total > this.cap) throw new FrameTooLargeError(total, this.cap);
      let line: Buffer;
      if (this.partLen === 0) line = piece;
      else { this.parts.push(piece); line = Buffer.concat(this.parts, total); this.parts = []; this.partLen = 0; }
      let text = line.toString('utf8');
      if (text.endsWith('\r')) text = text.slice(0, -1);
      lines.push(text);
      start = nl + 1;
    }
    if (start < chunk.length) {
      const rest = chunk.subarray(start);
      if (this.partLen + rest.length > this.cap) throw new FrameTooLargeError(this.partLen + rest.length, this.cap);
      this.parts.push(Buffer.from(rest));
      this.partLen += rest.length;
    }
    return lines;
  }

  /** Bytes held for an incomplete line. */
  get pending(): number { return this.partLen; }
}

// ---------------------------------------------------------------- fast paths
// zod's safeParse of the envelope and of the hot ops' args was ~4 % of the tracker's CPU under the
// bench (200 clients, list_files + get_peers). These hand-written checks accept exactly what the
// schemas accept (same bounds, no unknown keys) and return the input as is; anything they do not
// accept goes to zod, which then refuses it with its message (or, if a check here were ever
// stricter than the schema, accepts it: the schema stays the authority).

const hasOwn = (o: object, k: string): boolean => Object.prototype.hasOwnProperty.call(o, k);
const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === 'object' && !Array.isArray(v) && Object.getPrototypeOf(v) === Object.prototype;
const strIn = (v: unknown, min: number, max: number): boolean => typeof v === 'string' && v.length >= min && v.length <= max;

/** The envelope as {@link requestSchema} accepts it. */
function fastRequest(raw: unknown): raw is Request {
  if (!isPlainObject(raw)) return false;
  let n = 0;
  for (const k in raw) {
    if (!hasOwn(raw, k)) continue;
    n++;
    if (k !== 'id' && k !== 'op' && k !== 'args' && k !== 'token') return false;
  }
  const id = raw['id'];
  if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 0) return false;
  if (!strIn(raw['op'], 0, 64)) return false;
  if (hasOwn(raw, 'token') && !strIn(raw['token'], 0, 128)) return false;
  return n >= 2;
}

/** Exactly the string keys given, each within its [min, max] length. */
function fastStrings(args: unknown, fields: Record<string, readonly [number, number]>, count: number): boolean {
  if (!isPlainObject(args)) return false;
  let n = 0;
  for (const k in args) {
    if (!hasOwn(args, k)) continue;
    const f = fields[k];
    if (!f || !hasOwn(fields, k) || !strIn(args[k], f[0], f[1])) return false;
    n++;
  }
  return n === count;
}

const FAST_ARGS: Partial<Record<OpName, (args: unknown) => boolean>> = {
  list_files: (a) => fastStrings(a, { group: [1, MAX_ID_LENGTH] }, 1),
  get_peers: (a) => fastStrings(a, { group: [1, MAX_ID_LENGTH], name: [1, MAX_FILE_NAME_LENGTH] }, 2),
};

/** Parses and validates one request line. Returns the request or a wire error with the id if known. */
export function parseRequest(line: string): { ok: true; req: Request } | { ok: false; id: number | null; error: WireError } {
  let raw: unknown;
  try { raw = JSON.parse(line); } catch { return { ok: false, id: null, error: { code: 'BAD_REQUEST', message: 'not valid JSON' } }; }
  if (fastRequest(raw)) return { ok: true, req: raw };
  const parsed = requestSchema.safeParse(raw);
  if (!parsed.success) {
    const id = typeof (raw as { id?: unknown })?.id === 'number' ? (raw as { id: number }).id : null;
    return { ok: false, id, error: { code: 'BAD_REQUEST', message: 'malformed request: ' + parsed.error.issues[0]?.message } };
  }
  return { ok: true, req: parsed.data };
}

/** Validates a request's args against its op's schema. */
export function parseArgs<K extends OpName>(op: K, args: unknown): { ok: true; args: OpArgs<K> } | { ok: false; error: WireError } {
  const fast = FAST_ARGS[op];
  if (fast?.(args)) return { ok: true, args: args as OpArgs<K> };
  const parsed = ops[op].args.safeParse(args ?? {});
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue?.path.length ? ` (${issue.path.join('.')})` : '';
    return { ok: false, error: { code: 'BAD_REQUEST', message: `bad arguments for ${op}${where}: ${issue?.message}` } };
  }
  return { ok: true, args: parsed.data as OpArgs<K> };
}
