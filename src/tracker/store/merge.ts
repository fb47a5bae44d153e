/**
 * The replicated row kinds, their value schemas and their merge functions (docs/replicated-state.md).
 *
 * Every kind's merge is a join-semilattice: commutative, associative and idempotent on normalized
 * values (see {@link parseValue}), so any set of deltas applied in any order, duplicated or
 * interleaved, yields the same row everywhere. Most kinds are "pick one of the two by a total
 * order" (min or max of a total order is a semilattice); ties on the stamp (which only a buggy or
 * hostile origin can produce) are broken by the canonical JSON so the result is still unique.
 * `member` is an OR-set (set union of tags).
 *
 * Pure: no I/O, no clocks. Remote input goes through {@link parseValue} before it reaches a merge.
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { CoterieError } from '../../common/errors.js';
import { MAX_FILE_NAME_LENGTH, MAX_ID_LENGTH } from '../../common/names.js';
import { compareStamps, HLC_RE, ORIGIN_RE, type Stamp } from './hlc.js';

export type { Stamp };

/** Every row kind. Adding one here means: a value schema, a merge, and a key layout. */
export const KINDS = ['user', 'group', 'member', 'request', 'file', 'share', 'session', 'tkey'] as const;
export type Kind = (typeof KINDS)[number];

export function isKind(k: unknown): k is Kind {
  return typeof k === 'string' && (KINDS as readonly string[]).includes(k);
}

/** Keys join their parts with NUL (names never contain it, see common/names.ts). */
export const KEY_SEP = '\u0000';
export function rowKey(...parts: string[]): string { return parts.join(KEY_SEP); }
export function splitKey(key: string): string[] { return key.split(KEY_SEP); }
/** Longest key accepted from anywhere (a share key is the longest: group, hash, user, client id). */
export const MAX_KEY_LENGTH = 512;

// ------------------------------------------------------------------ value types

/** A user account. `created` is the claim: the smallest stamp wins the user id everywhere. */
export interface UserValue { salt: string; hash: string; created: Stamp }
/** A group. `created` is the claim; `owner`/`ownerStamp` is LWW within the winning claim (hand-over). */
export interface GroupValue { created: Stamp; owner: string; ownerStamp: Stamp }
/**
 * One OR-set tag of a membership: when it was added (`at`) and under which claim of the group
 * (`claim` = that group row's `created`). Tags made under a claim that lost (two trackers created
 * the same group id concurrently) do not count, so the loser's members never leak into the winner's group.
 */
export interface MemberTag { at: Stamp; claim: Stamp }
/** Membership of one user in one group: an OR-set. Member iff some add (under the winning claim) is not removed. */
export interface MemberValue { adds: MemberTag[]; removes: MemberTag[] }
export interface RequestValue { state: 'pending' | 'closed'; at: Stamp }
/**
 * A file in a group. `claim` is the group claim it was shared under, `created` the file's own
 * claim of its name; the smallest (claim, created) wins the name. Since the winning group claim is
 * the smallest of all claims, a file under it always beats a file under a losing claim.
 */
export interface FileValue {
  infoHash: string; size: number; pieceLength: number; sha256: string; info: string;
  claim: Stamp; created: Stamp;
}
/** A (group, info-hash, user, client) share record; `live: false` after stop_share or leave_group. */
export interface ShareValue { peer: string; live: boolean; at: Stamp }
/**
 * A session, keyed by sha256(token). `claim` is the user row's `created` at login: if another
 * tracker's earlier claim of the user id wins later, the session no longer matches (CLAIM_LOST).
 * `clientId` is the client that logged in (get_peers leaves it out of its answer).
 */
export interface SessionValue { user: string; clientId: string; claim: Stamp; expires: number; live: boolean; at: Stamp }
/** A tracker's Ed25519 public key (SPKI DER, base64), keyed by origin. Keys never change: smallest stamp wins. */
export interface TkeyValue { publicKey: string; created: Stamp }

export interface ValueOf {
  user: UserValue; group: GroupValue; member: MemberValue; request: RequestValue;
  file: FileValue; share: ShareValue; session: SessionValue; tkey: TkeyValue;
}

// ------------------------------------------------------------------ schemas (remote input)

const stamp = z.object({ hlc: z.string().regex(HLC_RE), origin: z.string().regex(ORIGIN_RE) }).strict();
const tag = z.object({ at: stamp, claim: stamp }).strict();
const id = z.string().min(1).max(MAX_ID_LENGTH);
const hex = (n: number) => z.string().regex(new RegExp(`^[0-9a-f]{${n}}$`));
const MAX_TAGS = 100_000;

/** Value schemas; strict (unknown fields refused), every string and list bounded. */
export const valueSchemas = {
  user: z.object({ salt: z.string().min(1).max(128), hash: z.string().min(1).max(512), created: stamp }).strict(),
  group: z.object({ created: stamp, owner: id, ownerStamp: stamp }).strict(),
  member: z.object({ adds: z.array(tag).max(MAX_TAGS), removes: z.array(tag).max(MAX_TAGS) }).strict(),
  request: z.object({ state: z.enum(['pending', 'closed']), at: stamp }).strict(),
  file: z.object({
    infoHash: hex(40), size: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
    pieceLength: z.number().int().positive().max(1 << 30), sha256: hex(64),
    info: z.string().max(1 << 19).regex(/^[A-Za-z0-9+/]*={0,2}$/), claim: stamp, created: stamp,
  }).strict(),
  share: z.object({ peer: z.string().min(1).max(64), live: z.boolean(), at: stamp }).strict(),
  session: z.object({
    user: id, clientId: z.string().regex(/^[0-9a-f]{16,64}$/), claim: stamp,
    expires: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER), live: z.boolean(), at: stamp,
  }).strict(),
  tkey: z.object({ publicKey: z.string().min(1).max(1024), created: stamp }).strict(),
} satisfies { [K in Kind]: z.ZodType<ValueOf[K]> };

/** Number of key parts per kind, with each part's bound; used to validate keys from remotes. */
const keyShapes: Record<Kind, number[]> = {
  user: [MAX_ID_LENGTH], group: [MAX_ID_LENGTH], member: [MAX_ID_LENGTH, MAX_ID_LENGTH],
  request: [MAX_ID_LENGTH, MAX_ID_LENGTH], file: [MAX_ID_LENGTH, MAX_FILE_NAME_LENGTH],
  share: [MAX_ID_LENGTH, 40, MAX_ID_LENGTH, 64], session: [64], tkey: [16],
};

/** Why `key` is not a well-formed key of `kind`, or null. */
export function keyProblem(kind: Kind, key: string): string | null {
  if (typeof key !== 'string' || key.length > MAX_KEY_LENGTH * 2) return 'key too long';
  const parts = splitKey(key);
  const shape = keyShapes[kind];
  if (parts.length !== shape.length) return `a ${kind} key has ${shape.length} part(s)`;
  for (let i = 0; i < parts.length; i++) {
    if (parts[i]!.length === 0 || parts[i]!.length > shape[i]!) return `bad ${kind} key part ${i}`;
  }
  return null;
}

/**
 * Validates a value of `kind` from anywhere untrusted and returns it normalized (lists sorted and
 * deduplicated). Throws a PROTOCOL CoterieError on anything malformed.
 */
export function parseValue<K extends Kind>(kind: K, raw: unknown): ValueOf[K] {
  const parsed = (valueSchemas[kind] as unknown as z.ZodType<ValueOf[K]>).safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new CoterieError('PROTOCOL', `invalid ${kind} value at ${issue?.path.join('.') ?? '?'}: ${issue?.message}`);
  }
  return normalize(kind, parsed.data);
}

/** Puts a (valid) value into canonical form: the form every merge returns. */
export function normalize<K extends Kind>(kind: K, v: ValueOf[K]): ValueOf[K] {
  if (kind === 'member') {
    const m = v as MemberValue;
    return { adds: sortTags(m.adds), removes: sortTags(m.removes) } as ValueOf[K];
  }
  return v;
}

// ------------------------------------------------------------------ merges

function compareTags(a: MemberTag, b: MemberTag): number {
  return compareStamps(a.at, b.at) || compareStamps(a.claim, b.claim);
}

function sortTags(tags: MemberTag[]): MemberTag[] {
  const sorted = [...tags].sort(compareTags);
  const out: MemberTag[] = [];
  for (const t of sorted) if (out.length === 0 || compareTags(out[out.length - 1]!, t) !== 0) out.push(t);
  return out;
}

/** Orders two values that compare equal on their stamps: by canonical JSON, so the pick is unique. */
function tieBreak(a: unknown, b: unknown): number {
  const ja = canonicalJson(a), jb = canonicalJson(b);
  return ja === jb ? 0 : ja < jb ? -1 : 1;
}

/** Keeps the smaller of two values under `cmp` (ties broken by canonical JSON). */
function pickMin<T>(a: T, b: T, cmp: (x: T, y: T) => number): T {
  const c = cmp(a, b) || tieBreak(a, b);
  return c <= 0 ? a : b;
}

const merges: { [K in Kind]: (a: ValueOf[K], b: ValueOf[K]) => ValueOf[K] } = {
  user: (a, b) => pickMin(a, b, (x, y) => compareStamps(x.created, y.created)),
  // Smallest claim first; within one claim the larger ownerStamp (latest hand-over) wins.
  group: (a, b) => pickMin(a, b, (x, y) => compareStamps(x.created, y.created) || compareStamps(y.ownerStamp, x.ownerStamp)),
  member: (a, b) => ({ adds: sortTags([...a.adds, ...b.adds]), removes: sortTags([...a.removes, ...b.removes]) }),
  request: (a, b) => pickMin(a, b, (x, y) => compareStamps(y.at, x.at)),
  file: (a, b) => pickMin(a, b, (x, y) => compareStamps(x.claim, y.claim) || compareStamps(x.created, y.created)),
  share: (a, b) => pickMin(a, b, (x, y) => compareStamps(y.at, x.at)),
  session: (a, b) => pickMin(a, b, (x, y) => compareStamps(y.at, x.at)),
  tkey: (a, b) => pickMin(a, b, (x, y) => compareStamps(x.created, y.created)),
};

/** Merges two normalized values of one kind. Commutative, associative, idempotent. */
export function mergeValues<K extends Kind>(kind: K, a: ValueOf[K], b: ValueOf[K]): ValueOf[K] {
  return (merges[kind] as (x: ValueOf[K], y: ValueOf[K]) => ValueOf[K])(a, b);
}

/** The new value of a row after a delta: the delta itself for a fresh row. */
export function mergeRow<K extends Kind>(kind: K, old: ValueOf[K] | undefined, delta: ValueOf[K]): ValueOf[K] {
  return old === undefined ? normalize(kind, delta) : mergeValues(kind, old, delta);
}

// ------------------------------------------------------------------ OR-set reading

/** Is a tag live: added (under `claim`) and not removed? */
export function liveTags(m: MemberValue, claim: Stamp): MemberTag[] {
  const removed = new Set(m.removes.map((t) => canonicalJson(t)));
  return m.adds.filter((t) => compareStamps(t.claim, claim) === 0 && !removed.has(canonicalJson(t)));
}

export function isMemberValue(m: MemberValue | undefined, claim: Stamp): boolean {
  return m !== undefined && liveTags(m, claim).length > 0;
}

// ------------------------------------------------------------------ canonical JSON and digest

/** JSON with object keys sorted at every level: the same value always gives the same text. */
export function canonicalJson(v: unknown): string {
  return JSON.stringify(sortKeys(v));
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v !== null && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v).sort()) {
      const x = (v as Record<string, unknown>)[k];
      if (x !== undefined) out[k] = sortKeys(x);
    }
    return out;
  }
  return v;
}

/** One stored row as the digest sees it. */
export interface RowText { kind: Kind; key: string; json: string }

/**
 * Orders rows by (kind, key) compared as UTF-8 bytes: the order SQLite's BINARY collation gives
 * BLOB keys, so every store implementation can produce the same order.
 */
export function compareRowKeys(a: { kind: string; key: string }, b: { kind: string; key: string }): number {
  if (a.kind !== b.kind) return a.kind < b.kind ? -1 : 1;
  return Buffer.compare(Buffer.from(a.key, 'utf8'), Buffer.from(b.key, 'utf8'));
}

/** SHA-256 (hex) over all rows in (kind, key) order of `kind \0 key \0 json \n`. */
export function digestRows(rows: Iterable<RowText>): string {
  return digestOrderedRows([...rows].sort(compareRowKeys));
}

/** {@link digestRows} of rows already in (kind, key) order (a store that can read them so, streamed). */
export function digestOrderedRows(rows: Iterable<RowText>): string {
  const h = createHash('sha256');
  for (const r of rows) h.update(`${r.kind}\u0000${r.key}\u0000${r.json}\n`, 'utf8');
  return h.digest('hex');
}
