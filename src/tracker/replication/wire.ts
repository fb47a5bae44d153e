/**
 * Tracker <-> tracker replication wire: NDJSON frames over the tracker's client port.
 *
 * A connection whose first line is a {@link HelloFrame} (`"t":"hello"`) is a replication link, any
 * other first line is client RPC. Frames share the RPC line cap ({@link MAX_LINE_BYTES}); every
 * frame is validated with zod and unknown fields are rejected, so a frame that does not parse is
 * grounds for closing the link (another tracker is as hostile as any remote).
 *
 *   dialer                          acceptor
 *   hello {origin, addr, nonce, key}  ->
 *                                   <-  welcome {origin, addr, nonce, key, sig}
 *   auth {sig}                        ->
 *   vector / changes / ack / presence / bye, both ways
 *
 * This module is pure: schemas and encoders, no sockets, no timers.
 */
import { z } from 'zod';
import { MAX_LINE_BYTES } from '../../protocol/rpc.js';
import { MAX_ID_LENGTH } from '../../common/names.js';
import { ORIGIN_RE } from '../store/hlc.js';
import { MAX_KEY_LENGTH } from '../store/merge.js';

/** Protocol version spoken on replication links; a hello with another version is refused. */
export const REPLICATION_VERSION = 1;
/** Line cap of a replication frame: the same as client RPC. */
export const MAX_FRAME_BYTES = MAX_LINE_BYTES;
/**
 * Byte budget for the changes of one `changes` frame. A single change is at most ~0.75 MiB (a file
 * row carries an info dictionary of up to 512 KiB base64), so one change always fits in a frame.
 */
export const CHANGES_FRAME_BUDGET = 900 * 1024;
/** Most changes in one frame (bounds the work one frame can cause on the receiver). */
export const MAX_CHANGES_PER_FRAME = 1024;
/** Most origins in a version vector: a cluster has a handful of trackers, each wipe adds one. */
export const MAX_ORIGINS = 4096;
/** Most presence entries in one frame. */
export const MAX_PRESENCE_PER_FRAME = 2048;
/** Most shares of one client carried by gossip (a larger set is truncated; ~130 bytes per share). */
export const MAX_GOSSIP_SHARES = 4000;

const origin = z.string().regex(ORIGIN_RE);
const addr = z.string().min(3).max(64);
const b64 = (max: number) => z.string().max(max).regex(/^[A-Za-z0-9+/]*={0,2}$/);
/** `wall(13 digits)-logical(6 digits)`, see docs/replicated-state.md. */
export const hlcSchema = z.string().regex(/^\d{13}-\d{6}$/);
const seq = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);

/** `{origin: maxSeq}`: the highest contiguous seq a tracker holds of every origin. */
export const vectorSchema = z.record(origin, seq).refine((v) => Object.keys(v).length <= MAX_ORIGINS, {
  message: `more than ${MAX_ORIGINS} origins`,
});

/** One entry of an origin's change log as it travels between trackers. */
export const changeSchema = z.object({
  origin,
  seq: seq.min(1),
  kind: z.string().regex(/^[a-z]{1,16}$/),
  /** Parts joined by NUL; the store checks the layout of each kind's key. */
  key: z.string().min(1).max(MAX_KEY_LENGTH * 2),
  /** Kind-specific; the store validates it with the kind's schema before merging. */
  delta: z.unknown(),
  hlc: hlcSchema,
}).strict();
export type WireChange = z.infer<typeof changeSchema>;

const peerAddr = z.string().min(3).max(64);
const user = z.string().min(1).max(MAX_ID_LENGTH);
const clientId = z.string().regex(/^[0-9a-f]{16,64}$/);

/**
 * A client online via some tracker, as gossip carries it. `ttlMs` is relative (clocks differ
 * between trackers): the receiver expires the entry `ttlMs` after it arrives; 0 means "gone now".
 * `gen` orders updates of one entry (the holder's wall clock at the renewal), so a stale copy that
 * took a longer path never overwrites a newer one.
 */
export const presenceEntrySchema = z.object({
  holder: origin,
  user,
  clientId,
  peer: peerAddr,
  shares: z.array(z.object({ group: z.string().min(1).max(MAX_ID_LENGTH), infoHash: z.string().regex(/^[0-9a-f]{40}$/) }).strict())
    .max(MAX_GOSSIP_SHARES),
  gen: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
  ttlMs: z.number().int().nonnegative().max(120_000),
}).strict();
export type PresenceEntry = z.infer<typeof presenceEntrySchema>;

export const helloSchema = z.object({
  t: z.literal('hello'),
  v: z.number().int(),
  origin,
  /** The dialer's own listening address as listed in tracker_info. */
  addr,
  nonce: b64(64),
  /** Ed25519 public key, SPKI DER, base64. */
  key: b64(256),
}).strict();
export type HelloFrame = z.infer<typeof helloSchema>;

export const welcomeSchema = z.object({
  t: z.literal('welcome'), v: z.number().int(), origin, addr, nonce: b64(64), key: b64(256), sig: b64(256),
}).strict();
export type WelcomeFrame = z.infer<typeof welcomeSchema>;

export const authSchema = z.object({ t: z.literal('auth'), sig: b64(256) }).strict();
export type AuthFrame = z.infer<typeof authSchema>;

/** Anti-entropy: "this is what I hold". Sent on connect and periodically (also a keepalive). */
export const vectorFrameSchema = z.object({ t: z.literal('vector'), vector: vectorSchema }).strict();
export type VectorFrame = z.infer<typeof vectorFrameSchema>;

/** A batch of changes; `n` numbers the frames of one link so that acks can name them. */
export const changesFrameSchema = z.object({
  t: z.literal('changes'), n: z.number().int().positive().max(Number.MAX_SAFE_INTEGER),
  changes: z.array(changeSchema).max(MAX_CHANGES_PER_FRAME),
}).strict();
export type ChangesFrame = z.infer<typeof changesFrameSchema>;

/** "Frames up to `n` are processed, and this is what I hold now." Drives the send window and repair. */
export const ackFrameSchema = z.object({
  t: z.literal('ack'), n: z.number().int().positive().max(Number.MAX_SAFE_INTEGER), vector: vectorSchema,
}).strict();
export type AckFrame = z.infer<typeof ackFrameSchema>;

export const presenceFrameSchema = z.object({
  t: z.literal('presence'), entries: z.array(presenceEntrySchema).max(MAX_PRESENCE_PER_FRAME),
}).strict();
export type PresenceFrame = z.infer<typeof presenceFrameSchema>;

/** Polite close with a reason; the sender closes the socket right after. */
export const byeFrameSchema = z.object({ t: z.literal('bye'), code: z.string().max(64), reason: z.string().max(512) }).strict();
export type ByeFrame = z.infer<typeof byeFrameSchema>;

/** Frames valid once a link is authenticated. */
export const linkFrameSchema = z.discriminatedUnion('t', [
  vectorFrameSchema, changesFrameSchema, ackFrameSchema, presenceFrameSchema, byeFrameSchema,
]);
export type LinkFrame = z.infer<typeof linkFrameSchema>;
export type SyncFrame = VectorFrame | ChangesFrame | AckFrame;

/** Parses one line as JSON and validates it against `schema`; null if either fails. */
export function parseFrame<T>(schema: z.ZodType<T>, line: string): T | null {
  let raw: unknown;
  try { raw = JSON.parse(line); } catch { return null; }
  const r = schema.safeParse(raw);
  return r.success ? r.data : null;
}

/**
 * True when a connection's first line is a replication hello. Cheap on purpose: the RPC server
 * calls it on every new connection's first line; the full validation happens in the link.
 */
export function isReplicationHello(line: string): boolean {
  if (!line.includes('"hello"')) return false;
  try {
    const raw = JSON.parse(line) as { t?: unknown } | null;
    return typeof raw === 'object' && raw !== null && raw.t === 'hello';
  } catch { return false; }
}
