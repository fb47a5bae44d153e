/**
 * A small in-process stand-in for a cluster of trackers, for the client's unit tests: real TCP
 * servers on 127.0.0.1 port 0 speaking the NDJSON RPC, sharing one in-memory state (as replicated
 * trackers would), each with a switch that makes it misbehave in the ways the link must survive.
 * It implements only the rules the client's tests rely on; the real tracker has its own tests.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import { LineDecoder, encodeLine } from '../../../src/protocol/rpc.js';

/** How a fake tracker answers a request. */
export type Mode =
  | 'ok'
  /** accept connections, never answer */
  | 'silent'
  /** apply the request, then drop the connection without answering */
  | 'apply-then-close'
  /** drop the connection on the first request, doing nothing */
  | 'close'
  /** answer with a line that is not JSON */
  | 'garbage'
  /** answer with a result that does not match the op's schema */
  | 'malformed'
  /** refuse every call with UNAVAILABLE */
  | 'unavailable';

export interface Seen { tracker: number; op: string; args: Record<string, unknown>; token?: string }

export interface FakeState {
  users: Map<string, string>;
  groups: Map<string, { owner: string; members: Set<string>; requests: Set<string> }>;
  /** token -> user; tokens are replicated, as the real ones are. */
  sessions: Map<string, string>;
  /** Every request any tracker received, in order. */
  seen: Seen[];
}

export interface FakeTracker { index: number; port: number; mode: Mode; server: Server; sockets: Set<Socket> }

export interface FakeCluster {
  trackers: FakeTracker[];
  state: FakeState;
  endpoints: Array<{ host: string; port: number }>;
  /** Stops one tracker for good (its port is closed). */
  kill(i: number): Promise<void>;
  close(): Promise<void>;
}

class Refusal { constructor(readonly code: string, readonly message: string) {} }

function apply(state: FakeState, op: string, args: Record<string, unknown>, token: string | undefined): unknown {
  const me = token !== undefined ? state.sessions.get(token) : undefined;
  const needAuth = !['create_user', 'login', 'status'].includes(op);
  if (needAuth && me === undefined) throw new Refusal('UNAUTHENTICATED', 'log in first');
  const group = args['group'] as string | undefined;
  const g = group !== undefined ? state.groups.get(group) : undefined;
  switch (op) {
    case 'status': return {};
    case 'create_user': {
      const user = args['user'] as string;
      if (state.users.has(user)) throw new Refusal('USER_EXISTS', `user ${user} exists`);
      state.users.set(user, args['password'] as string);
      return {};
    }
    case 'login': {
      const user = args['user'] as string;
      const pw = state.users.get(user);
      if (pw === undefined) throw new Refusal('NO_SUCH_USER', 'no such user');
      if (pw !== args['password']) throw new Refusal('WRONG_PASSWORD', 'wrong password');
      const t = randomBytes(16).toString('hex');
      state.sessions.set(t, user);
      return { token: t, user, trackerKeys: [] };
    }
    case 'logout': state.sessions.delete(token!); return {};
    case 'heartbeat': return { user: me };
    case 'create_group': {
      if (g) throw new Refusal('GROUP_EXISTS', `group ${group} exists`);
      state.groups.set(group!, { owner: me!, members: new Set([me!]), requests: new Set() });
      return {};
    }
    case 'join_group': {
      if (!g) throw new Refusal('NO_SUCH_GROUP', 'no such group');
      if (g.members.has(me!)) throw new Refusal('ALREADY_MEMBER', 'already a member');
      if (g.requests.has(me!)) throw new Refusal('REQUEST_PENDING', 'already asked');
      g.requests.add(me!);
      return {};
    }
    case 'list_groups':
      return { groups: [...state.groups].map(([k, v]) => ({ group: k, owner: v.owner, members: v.members.size })) };
    default: throw new Refusal('UNKNOWN_OP', `no op ${op}`);
  }
}

function serve(t: FakeTracker, state: FakeState, socket: Socket): void {
  t.sockets.add(socket);
  socket.on('close', () => t.sockets.delete(socket));
  socket.on('error', () => undefined);
  const dec = new LineDecoder();
  socket.on('data', (chunk: Buffer) => {
    for (const line of dec.push(chunk)) {
      const req = JSON.parse(line) as { id: number; op: string; args: Record<string, unknown>; token?: string };
      const seen: Seen = { tracker: t.index, op: req.op, args: req.args };
      if (req.token !== undefined) seen.token = req.token;
      state.seen.push(seen);
      switch (t.mode) {
        case 'silent': continue;
        case 'close': socket.destroy(); return;
        case 'garbage': socket.write('this is not json\n'); continue;
        case 'unavailable':
          socket.write(encodeLine({ id: req.id, ok: false, error: { code: 'UNAVAILABLE', message: 'shutting down' } }));
          continue;
        case 'malformed': socket.write(encodeLine({ id: req.id, ok: true, result: { surprise: 1 } })); continue;
        default: break;
      }
      let reply: unknown;
      try { reply = { id: req.id, ok: true, result: apply(state, req.op, req.args ?? {}, req.token) }; }
      catch (e) {
        if (!(e instanceof Refusal)) throw e;
        reply = { id: req.id, ok: false, error: { code: e.code, message: e.message } };
      }
      if (t.mode === 'apply-then-close') { socket.destroy(); return; }
      socket.write(encodeLine(reply));
    }
  });
}

/** Starts `n` fake trackers sharing one state. */
export async function startFakeCluster(n: number): Promise<FakeCluster> {
  const state: FakeState = { users: new Map(), groups: new Map(), sessions: new Map(), seen: [] };
  const trackers: FakeTracker[] = [];
  for (let i = 0; i < n; i++) {
    const server = createServer();
    const t: FakeTracker = { index: i, port: 0, mode: 'ok', server, sockets: new Set() };
    server.on('connection', (s) => serve(t, state, s));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    t.port = (server.address() as { port: number }).port;
    trackers.push(t);
  }
  const kill = async (i: number): Promise<void> => {
    const t = trackers[i]!;
    for (const s of t.sockets) s.destroy();
    await new Promise<void>((r) => t.server.close(() => r()));
  };
  return {
    trackers, state,
    endpoints: trackers.map((t) => ({ host: '127.0.0.1', port: t.port })),
    kill,
    close: async () => {
      await Promise.all(trackers.map((t) => (t.server.listening ? kill(t.index) : Promise.resolve())));
    },
  };
}
