/**
 * What the tracker's domain layer (accounts, groups, files) is built from. The domain is pure
 * logic over a {@link Store}: no sockets, no timers; the physical clock, randomness, manifest
 * parser and ticket signer are injected so tests can run it with a MemoryStore and a fake clock.
 */
import type { KeyObject } from 'node:crypto';
import type { Manifest } from '../../swarm/api.js';
import type { Presence } from '../presence.js';
import type { Store } from '../store/store.js';
import { rowKey } from '../store/merge.js';

/** What an access ticket binds (see src/protocol/ticket.ts). */
export interface TicketClaims { user: string; group: string; infoHash: string; expiresAt: number; origin: string }
/** Signs a ticket with this tracker's Ed25519 private key. */
export type TicketSigner = (claims: TicketClaims, privateKey: KeyObject) => string;
/** Parses and validates a bencoded info dictionary; throws on anything malformed. */
export type ManifestParser = (infoBytes: Buffer) => Manifest;

/** This tracker's signing identity; the public half is also a replicated `tkey` row. */
export interface TrackerIdentity { origin: string; privateKey: KeyObject; publicKeyB64: string }

/** scrypt cost parameters; stored with each hash so they can change later. */
export interface ScryptParams { N: number; r: number; p: number }

/** Everything the domain needs. */
export interface DomainDeps {
  store: Store;
  /** Physical clock in ms (session expiry, rate limits, ticket expiry). */
  now: () => number;
  presence: Presence;
  identity: TrackerIdentity;
  parseManifest: ManifestParser;
  /** Absent: get_peers answers without a ticket. */
  signTicket?: TicketSigner;
  random?: (n: number) => Buffer;
  scrypt?: ScryptParams;
  /**
   * Login failures allowed per window per user and per remote address, across the whole network
   * of trackers (see `trackerCount`).
   */
  loginLimits?: { perUser: number; perAddress: number; windowMs: number };
  /**
   * How many trackers share the login budgets above (the lines of tracker_info). Each tracker
   * allows ceil(limit / trackerCount) failures per window, so that all of them together allow at
   * most limit + trackerCount - 1, with no message between them: a guesser gains nothing by
   * spreading attempts over trackers (docs/hardening.md). Default 1.
   */
  trackerCount?: number;
}

/** An authenticated caller, as established from its session token. */
export interface Caller {
  user: string;
  /** The client that logged in with this token. */
  clientId: string;
  /** sha256(token), hex: the session row's key. */
  tokenHash: string;
}

/** Where a call came from: the transport's view, passed down for leases and rate limits. */
export interface CallOrigin {
  /** Remote IP address of the connection. */
  remote: string;
  /** Connection id: leases renewed through it are dropped when it closes. */
  connId: number | null;
}

export const SESSION_MS = 7 * 24 * 3600_000;
/**
 * How long an access ticket is good for. Downloads ask for peers (and a fresh ticket) every few
 * seconds, so a short life costs nothing; it bounds how long someone who left or was removed from
 * a group can still fetch with a ticket obtained before (seeders also close a connection whose
 * ticket expires; the downloader re-dials with a fresh one).
 */
export const TICKET_MS = 10 * 60_000;
/** Most peers one get_peers answer lists. */
export const MAX_PEERS_ANSWERED = 200;

/** Row keys, one helper per kind, so key layouts live in one place. */
export const keys = {
  user: (user: string) => user,
  group: (group: string) => group,
  member: (group: string, user: string) => rowKey(group, user),
  membersOf: (group: string) => rowKey(group, ''),
  request: (group: string, user: string) => rowKey(group, user),
  requestsOf: (group: string) => rowKey(group, ''),
  file: (group: string, name: string) => rowKey(group, name),
  filesOf: (group: string) => rowKey(group, ''),
  share: (group: string, infoHash: string, user: string, clientId: string) => rowKey(group, infoHash, user, clientId),
  sharesOfFile: (group: string, infoHash: string) => rowKey(group, infoHash, ''),
  sharesOf: (group: string) => rowKey(group, ''),
  session: (tokenHash: string) => tokenHash,
  tkey: (origin: string) => origin,
};
