/**
 * One tracker, wired: store -> domain -> handlers -> RPC server, plus presence. `main.ts` builds
 * one from the command line; tests build one in-process with a MemoryStore, a fake clock and port 0.
 * A later replication layer attaches here: it subscribes to the store's commits, gossips presence,
 * and adds its link state to `status` through {@link TrackerNode.addStatus}.
 */
import type { Logger } from '../common/log.js';
import { describe } from '../common/errors.js';
import { type OpName, type OpArgs } from '../protocol/rpc.js';
import { signTicket as realSignTicket } from '../protocol/ticket.js';
import { parseManifest as realParseManifest } from '../swarm/manifest.js';
import { createDomain, loadIdentity, type Domain, type ManifestParser, type ScryptParams, type TicketSigner } from './domain/index.js';
import { createHandlers, dispatch, type Handlers } from './handlers.js';
import { Presence, LEASE_MS } from './presence.js';
import { RpcServer, type ServerLimits } from './server.js';
import type { Store } from './store/store.js';

export const TRACKER_VERSION = '0.1.0';

/** Everything a tracker is made of; only `store`, `logger`, `host` and `port` are required. */
export interface TrackerNodeOptions {
  store: Store;
  logger: Logger;
  /** Address to bind; port 0 picks a free port. */
  host: string;
  port: number;
  /** 1-based line of the tracker_info file, for status. */
  trackerNo?: number;
  /** Physical clock, ms (defaults to Date.now); the store's HLC has its own injected clock. */
  now?: () => number;
  parseManifest?: ManifestParser;
  /** null: answer get_peers without tickets. */
  signTicket?: TicketSigner | null;
  scrypt?: ScryptParams;
  loginLimits?: { perUser: number; perAddress: number; windowMs: number };
  /** Trackers in the network (lines of tracker_info): login budgets are split among them. */
  trackerCount?: number;
  limits?: Partial<ServerLimits>;
  leaseMs?: number;
}

export class TrackerNode {
  private readonly extraStatus = new Map<string, () => unknown>();
  private sweeper: NodeJS.Timeout | null = null;
  private closed = false;

  private constructor(
    readonly store: Store,
    readonly presence: Presence,
    readonly domain: Domain,
    readonly server: RpcServer,
    readonly logger: Logger,
    private readonly info: { trackerNo?: number; startedAt: number; now: () => number },
    public address: { host: string; port: number },
  ) {}

  /** Builds the tracker and starts listening. The store stays owned by the caller until {@link close}. */
  static async start(o: TrackerNodeOptions): Promise<TrackerNode> {
    const now = o.now ?? Date.now;
    const presence = new Presence({ now, origin: o.store.origin, leaseMs: o.leaseMs ?? LEASE_MS });
    const identity = loadIdentity(o.store);
    const signTicket = o.signTicket === null ? undefined : (o.signTicket ?? realSignTicket);
    const domain = createDomain({
      store: o.store, now, presence, identity,
      parseManifest: o.parseManifest ?? realParseManifest,
      ...(signTicket ? { signTicket } : {}),
      ...(o.scrypt ? { scrypt: o.scrypt } : {}),
      ...(o.loginLimits ? { loginLimits: o.loginLimits } : {}),
      ...(o.trackerCount !== undefined ? { trackerCount: o.trackerCount } : {}),
    });
    let node: TrackerNode | null = null;
    const handlers: Handlers = createHandlers(domain, () => node?.status() ?? {});
    const server = new RpcServer({
      logger: o.logger,
      ...(o.limits ? { limits: o.limits } : {}),
      dispatch: (op: OpName, args, token, conn) => dispatch(handlers, domain, op, args as OpArgs<typeof op>, token, conn),
      onClose: (conn) => { presence.dropConnection(conn.connId); },
    });
    const address = await server.listen(o.host, o.port);
    node = new TrackerNode(o.store, presence, domain, server, o.logger,
      { ...(o.trackerNo !== undefined ? { trackerNo: o.trackerNo } : {}), startedAt: now(), now }, address);
    node.sweeper = setInterval(() => presence.sweep(), 5_000);
    node.sweeper.unref();
    return node;
  }

  /** Adds a section to the `status` answer (replication: peers, lag). */
  addStatus(name: string, provider: () => unknown): void {
    this.extraStatus.set(name, provider);
  }

  private digestMemo: { vector: string; digest: string } | null = null;

  /**
   * The store's digest, memoized by version vector: every row change appends to the log, so an
   * unchanged vector means unchanged rows, and polling `status` (operators, convergence waits)
   * costs one full-table digest per change instead of one per call.
   */
  private digest(): string {
    const vector = JSON.stringify(Object.entries(this.store.versionVector()).sort());
    if (this.digestMemo?.vector !== vector) this.digestMemo = { vector, digest: this.store.digest() };
    return this.digestMemo.digest;
  }

  /** What the `status` op answers: identity, versions, digest, row counts, connections, presence. */
  status(): Record<string, unknown> {
    const out: Record<string, unknown> = {
      version: TRACKER_VERSION,
      origin: this.store.origin,
      ...(this.info.trackerNo !== undefined ? { trackerNo: this.info.trackerNo } : {}),
      address: `${this.address.host}:${this.address.port}`,
      uptimeMs: this.info.now() - this.info.startedAt,
      versionVector: this.store.versionVector(),
      digest: this.digest(),
      counts: this.store.counts(),
      connections: this.server.connectionCount,
      online: this.presence.size,
      peers: [],
    };
    for (const [name, p] of this.extraStatus) {
      try { out[name] = p(); }
      catch (err) { out[name] = { error: describe(err) }; }
    }
    return out;
  }

  /** Stops listening, drops connections, closes the store. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.sweeper) clearInterval(this.sweeper);
    await this.server.close();
    this.store.close();
  }
}
