/**
 * Wires replication into a running tracker: the replicator over the tracker's store, its Ed25519
 * identity as the link key, key pins in the data dir, presence gossip through the presence table,
 * replication hellos taken over from the RPC server, and peer link state in `status`.
 *
 * The tracker is seen through the narrow {@link ReplicationHost} so this module depends on what
 * it uses, not on how the tracker is assembled.
 */
import { sign, type KeyObject } from 'node:crypto';
import type { Socket } from 'node:net';
import { parseEndpoint, type Endpoint } from '../../common/config.js';
import type { Logger } from '../../common/log.js';
import type { LineDecoder } from '../../protocol/rpc.js';
import { FilePinStore, MemoryPinStore, type PinStore } from './pins.js';
import { PresenceBridge, type PresenceTable } from './presence-bridge.js';
import { parseDialOverride, Replicator, type ReplicatorOptions } from './replicator.js';
import type { TrackerNode } from '../node.js';
import { systemClock, type Clock, type ReplicaStore } from './types.js';

/** Takes over a connection whose first line is a replication hello. */
export type LinkHandler = (socket: Socket, lines: string[], decoder: LineDecoder) => void;

/** What replication needs from a tracker. */
export interface ReplicationHost {
  store: ReplicaStore & { get(kind: 'tkey', key: string): { publicKey: string } | undefined };
  identity: { origin: string; privateKey: KeyObject; publicKeyB64: string };
  presence: Omit<PresenceTable, 'dropRemote'> & { setChangeListener(fn: (() => void) | null): void };
  server: { setLinkHandler(h: LinkHandler | null): void };
  addStatus(name: string, provider: () => unknown): void;
}

export interface AttachOptions {
  /** This tracker's line of tracker_info. */
  self: Endpoint;
  /** Every line of tracker_info. */
  trackers: readonly Endpoint[];
  /** Where key pins are kept (null: in memory, for in-process tests). */
  dataDir: string | null;
  log: Logger;
  clock?: Clock;
  /** Test hook, see {@link ReplicatorOptions.dialOverride}. */
  dialOverride?: ReadonlyMap<string, Endpoint>;
  tuning?: Pick<ReplicatorOptions, 'tickMs' | 'presencePollMs' | 'idleTimeoutMs' | 'backoffMinMs' | 'backoffMaxMs' | 'sync'>;
}

/** A running replication service; `stop()` it before closing the tracker. */
export interface ReplicationHandle { replicator: Replicator; stop(): void }

/** Starts replication for `host`. */
export function attachReplication(host: ReplicationHost, o: AttachOptions): ReplicationHandle {
  const clock = o.clock ?? systemClock;
  let pins: PinStore;
  if (o.dataDir) {
    const f = new FilePinStore(o.dataDir);
    if (f.loadError) o.log.warn({ err: f.loadError }, 'replication: key pins unreadable, starting with none');
    pins = f;
  } else pins = new MemoryPinStore();
  const p = host.presence;
  const table: PresenceTable = {
    exportLocal: () => p.exportLocal(),
    importRemote: (e) => p.importRemote(e),
    // A remote lease that ends now: the table forgets the copy and keeps a local lease if any.
    dropRemote: (user, clientId) => p.importRemote([{ user, clientId, peer: '', shares: [], ttlMs: 0, origin: '' }]),
  };
  const bridge = new PresenceBridge(table, host.identity.origin, clock);
  const key = host.identity.privateKey;
  const rep = new Replicator({
    self: o.self, trackers: o.trackers, store: host.store, pins, log: o.log, clock, presence: bridge,
    signer: { publicKey: host.identity.publicKeyB64, sign: (data) => sign(null, data, key) },
    knownKey: (origin) => host.store.get('tkey', origin)?.publicKey,
    ...(o.dialOverride ? { dialOverride: o.dialOverride } : {}),
    ...o.tuning,
  });
  host.server.setLinkHandler((s, lines, d) => rep.accept(s, lines, d));
  host.presence.setChangeListener(() => rep.presenceChanged());
  host.addStatus('peers', () => rep.peerStatus());
  host.addStatus('replication', () => ({ links: rep.links.size, of: rep.dir.peers.length, presenceCopies: bridge.copies.size }));
  rep.start();
  return {
    replicator: rep,
    stop() {
      host.server.setLinkHandler(null);
      host.presence.setChangeListener(null);
      rep.stop();
    },
  };
}

/**
 * Test hook: `COTERIE_PEER_ADDR_OVERRIDE=listed=dial,...` makes this tracker dial other trackers
 * at other addresses (tests put proxies there to cut and heal links). Unset in production.
 */
export const DIAL_OVERRIDE_ENV = 'COTERIE_PEER_ADDR_OVERRIDE';

/** Starts replication for a running {@link TrackerNode} (what `main.ts` calls). */
export function replicateNode(
  node: TrackerNode,
  o: Omit<AttachOptions, 'dialOverride'> & { env?: NodeJS.ProcessEnv },
): ReplicationHandle {
  const override = parseDialOverride((o.env ?? process.env)[DIAL_OVERRIDE_ENV], parseEndpoint);
  if (override.size > 0) o.log.warn({ override: [...override].map(([k, v]) => `${k}=${v.host}:${v.port}`) }, 'test hook: dialing peers at overridden addresses');
  return attachReplication({
    store: node.store, identity: node.domain.deps.identity, presence: node.presence, server: node.server,
    addStatus: (name, p) => node.addStatus(name, p),
  }, { ...o, dialOverride: override });
}
