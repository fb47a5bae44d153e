/**
 * The op table: one handler per RPC op (protocol/rpc.ts `ops`), each a thin adapter from
 * validated arguments to the domain layer. Authentication happens here, once, for every op the
 * contract marks `auth: true`. The transport (server.ts) parses and validates; this only dispatches.
 */
import type { OpArgs, OpName, OpResult } from '../protocol/rpc.js';
import { ops } from '../protocol/rpc.js';
import type { Domain } from './domain/index.js';
import type { Caller, CallOrigin } from './domain/types.js';

/** What a handler knows about the connection a call came in on. */
export interface ConnContext extends CallOrigin {
  connId: number;
  /** Set when the connection has a live session (its idle timeout is then waived). */
  hasSession: boolean;
}

/** A handler: validated args in, result out (or a thrown CoterieError). */
type Handler<K extends OpName> = (args: OpArgs<K>, caller: Caller | null, conn: ConnContext) => Promise<OpResult<K>> | OpResult<K>;
export type Handlers = { [K in OpName]: Handler<K> };

/** Extra status fields (replication adds its peers and lag here). */
export type StatusProvider = () => Record<string, unknown>;

export function createHandlers(domain: Domain, status: StatusProvider): Handlers {
  const { accounts, groups, files } = domain;
  const me = (c: Caller | null): Caller => {
    // Unreachable when dispatch honours the table's `auth` flag; kept as a guard against a mistake there.
    if (!c) throw new Error('handler for an authenticated op called without a caller');
    return c;
  };
  return {
    create_user: async (a) => { await accounts.createUser(a.user, a.password); return {}; },
    login: async (a, _c, conn) => {
      const r = await accounts.login(a.user, a.password, a.peer, a.clientId, conn);
      conn.hasSession = true;
      return r;
    },
    heartbeat: (a, c, conn) => accounts.heartbeat(me(c), a.peer, a.clientId, a.shares, conn),
    logout: (a, c, conn) => { accounts.logout(me(c), a.clientId); conn.hasSession = false; return {}; },
    create_group: (a, c) => { groups.createGroup(me(c), a.group); return {}; },
    join_group: (a, c) => { groups.joinGroup(me(c), a.group); return {}; },
    leave_group: (a, c) => groups.leaveGroup(me(c), a.group),
    list_requests: (a, c) => ({ users: groups.listRequests(me(c), a.group) }),
    accept_request: (a, c) => { groups.acceptRequest(me(c), a.group, a.user); return {}; },
    reject_request: (a, c) => { groups.rejectRequest(me(c), a.group, a.user); return {}; },
    list_groups: (_a, c) => { me(c); return { groups: groups.listGroups() }; },
    list_files: (a, c) => files.listFiles(me(c), a.group),
    upload_file: (a, c, conn) => files.uploadFile(me(c), a, conn),
    announce: (a, c, conn) => files.announce(me(c), a, conn),
    stop_share: (a, c) => files.stopShare(me(c), a),
    get_peers: (a, c) => files.getPeers(me(c), a.group, a.name),
    status: () => status(),
  };
}

/**
 * Runs one validated call: authenticates if the op needs it, then calls its handler. Throws what
 * the handler throws (the transport turns it into a wire error).
 */
export async function dispatch<K extends OpName>(
  handlers: Handlers, domain: Domain, op: K, args: OpArgs<K>, token: string | undefined, conn: ConnContext,
): Promise<OpResult<K>> {
  let caller: Caller | null = null;
  if (ops[op].auth) {
    try { caller = domain.accounts.authenticate(token); }
    catch (err) { conn.hasSession = false; throw err; }
    conn.hasSession = true;
  }
  return (handlers[op] as Handler<K>)(args, caller, conn);
}
