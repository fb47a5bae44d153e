/**
 * What every command gets: the tracker link, the local state, the swarm engine and the output,
 * plus the few facts of this client process. Commands are plain async functions of
 * (context, args); they print results through `out` and throw CoterieError for refusals, which
 * the shell prints as `error: ` lines.
 */
import { CoterieError } from '../../common/errors.js';
import type { Logger } from '../../common/log.js';
import type { ShareRef } from '../../protocol/rpc.js';
import type { SwarmEngine } from '../../swarm/api.js';
import type { AccessGate } from '../access.js';
import type { LocalState } from '../local-state.js';
import type { RpcCaller } from '../tracker-link.js';

/** The tracker link as commands see it: calls plus the session it carries. */
export interface SessionLink extends RpcCaller {
  /** The logged-in user, or undefined. */
  readonly user: string | undefined;
  startSession(user: string, token: string, password: string): void;
  endSession(): void;
  /** Sends a heartbeat (with the current share list) soon; never rejects. */
  heartbeatNow(): Promise<void>;
}

/** Where commands print. Results go to stdout; warnings to stderr. */
export interface Output {
  /** One result line (stdout). */
  line(text: string): void;
  /** One `warning: ` line (stderr). */
  warn(text: string): void;
  /** Live progress, redrawn in place on a terminal; ignored otherwise. */
  progress(text: string): void;
  /** Something that happened in the background (a download finished); shown on a terminal only. */
  notify(text: string): void;
}

/**
 * The set of files this client serves right now (complete shares and downloads with at least one
 * piece), keyed by group and info-hash: it is what heartbeats announce.
 */
export class Serving {
  private readonly map = new Map<string, ShareRef>();
  add(group: string, infoHash: string): void { this.map.set(`${group}\u0000${infoHash}`, { group, infoHash }); }
  delete(group: string, infoHash: string): void { this.map.delete(`${group}\u0000${infoHash}`); }
  has(group: string, infoHash: string): boolean { return this.map.has(`${group}\u0000${infoHash}`); }
  clear(): void { this.map.clear(); }
  list(): ShareRef[] { return [...this.map.values()]; }
}

export interface ClientContext {
  link: SessionLink;
  state: LocalState;
  engine: SwarmEngine;
  out: Output;
  /** Who may fetch from this client; learns the trackers' keys at login. */
  access: AccessGate;
  logger: Logger;
  /** This client's peer address as given on the command line (`IP:PORT`). */
  peer: string;
  clientId: string;
  /** Relative paths in commands are resolved against this directory. */
  cwd: string;
  serving: Serving;
  /** Group ids seen in the last list_groups, for tab completion. */
  knownGroups: string[];
  /** A fresh download id. */
  newId(): string;
  /** Set by `quit`: the shell stops reading once the command is done. */
  quitRequested: boolean;
  /**
   * Work started in the background by engine callbacks (sharing a completed download). The
   * process waits for it before logging out at exit, so that work is not cut off half way.
   */
  background: Set<Promise<unknown>>;
}

/** Runs `p` as background work of `ctx` (see `ClientContext.background`). */
export function inBackground(ctx: ClientContext, p: Promise<unknown>): void {
  const tracked = p.catch(() => undefined).finally(() => ctx.background.delete(tracked));
  ctx.background.add(tracked);
}

/** The logged-in user, or NOT_LOGGED_IN. */
export function requireUser(ctx: ClientContext): string {
  const u = ctx.link.user;
  if (u === undefined) throw new CoterieError('NOT_LOGGED_IN', 'not logged in');
  return u;
}
