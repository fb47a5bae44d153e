/**
 * What the tracker link may do when a call's tracker fails after the request was written to its
 * socket: the tracker may or may not have applied it, and another tracker is about to get the
 * same request. One entry per op, so adding an op to the RPC table without deciding this is a
 * type error.
 *
 * - `always`: the call is a read, or a write whose repetition changes nothing (heartbeat,
 *   announce, logout, upload_file of the same bytes, stop_share). A login retried this way may
 *   leave the first session orphaned on a tracker; it is never used and expires, which is harmless.
 * - `reconcile`: repeat it, and if the repetition is refused with an error that the first attempt
 *   itself would explain, ask the state whether the outcome is ours and then report success.
 * - `unwritten-only`: never repeat once written; the caller gets UNAVAILABLE and is told the
 *   outcome is unknown. (No op needs it today; it is the safe default for a future one.)
 */
import { CoterieError } from '../common/errors.js';
import type { OpArgs, OpName, OpResult } from '../protocol/rpc.js';

/** What a reconcile step may ask of the link. */
export interface ReconcileContext {
  /** Calls an op through the normal failover path (no reconcile of its own). */
  call<K extends OpName>(op: K, args: OpArgs<K>, token?: string): Promise<OpResult<K>>;
  /** The user of the current session, if any. */
  sessionUser(): string | undefined;
  peer: string;
  clientId: string;
}

export type RetryPolicy<K extends OpName> =
  | { retry: 'always' }
  | { retry: 'unwritten-only' }
  | {
    retry: 'reconcile';
    /** Given the refusal of a repeated call, the result to report if the first attempt succeeded, else undefined. */
    reconcile: (err: CoterieError, args: OpArgs<K>, link: ReconcileContext) => Promise<OpResult<K> | undefined>;
  };

const always = { retry: 'always' } as const;

/** Success when the repetition was refused with one of `codes`: the state is what our first attempt made it. */
function okOn<K extends OpName>(result: OpResult<K>, ...codes: string[]): RetryPolicy<K> {
  return { retry: 'reconcile', reconcile: async (err) => (codes.includes(err.code) ? result : undefined) };
}

export const RETRY_POLICIES: { [K in OpName]: RetryPolicy<K> } = {
  status: always,
  list_groups: always,
  list_requests: always,
  list_files: always,
  get_peers: always,
  heartbeat: always,
  announce: always,
  logout: always,
  login: always,
  // The same bytes in the same group: the repetition answers `seeder` instead of `added`, which
  // only changes the wording of the command's output.
  upload_file: always,
  // A repetition answers NOT_SHARING; the stop_share command resolves that from local state.
  stop_share: always,
  create_user: {
    retry: 'reconcile',
    // USER_EXISTS after a lost answer: the account is ours if the password we chose opens it.
    // Someone else creating the same id with the same password at the same moment is
    // indistinguishable and equally fine for the user. The check's session is closed at once.
    reconcile: async (err, args, link) => {
      if (err.code !== 'USER_EXISTS') return undefined;
      try {
        const r = await link.call('login', { user: args.user, password: args.password, peer: link.peer, clientId: link.clientId });
        await link.call('logout', {}, r.token).catch(() => undefined);
        return {};
      } catch {
        return undefined;
      }
    },
  },
  create_group: {
    retry: 'reconcile',
    // GROUP_EXISTS after a lost answer: ours if we own it.
    reconcile: async (err, args, link) => {
      if (err.code !== 'GROUP_EXISTS') return undefined;
      const me = link.sessionUser();
      const { groups } = await link.call('list_groups', {});
      return groups.some((g) => g.group === args.group && g.owner === me) ? {} : undefined;
    },
  },
  // A pending request of this user is the one we just sent (requests are keyed by group and user).
  join_group: okOn<'join_group'>({}, 'REQUEST_PENDING'),
  // Not a member any more: the first attempt left (the new owner's name is lost with its answer).
  leave_group: okOn<'leave_group'>({}, 'NOT_MEMBER'),
  // Only owners accept or reject, and the first attempt closed the request.
  accept_request: okOn<'accept_request'>({}, 'NO_REQUEST', 'ALREADY_MEMBER'),
  reject_request: okOn<'reject_request'>({}, 'NO_REQUEST'),
};
