/**
 * The swarm engine of one client process (see {@link SwarmEngine} in api.ts): one peer server,
 * the files we seed, the downloads in progress, one 1-second timer for every timeout, stall
 * check, unchoke round and peer refresh, and the global upload/download rate limits.
 *
 * What is served can change at once: `unseed`/`unseedAll` disconnect the peers of those files.
 * A download serves its verified pieces while it runs and, once complete, is seeded in its group
 * (its connected peers are handed over to the seed without reconnecting).
 */
import type { Logger } from 'pino';
import { describe } from '../common/errors.js';
import type { Endpoint } from '../common/config.js';
import type { DownloadSpec, DownloadStatus, ResumeStore, SeedSpec, SwarmEngine } from './api.js';
import { Download, type DownloadContext } from './download.js';
import { PeerServer, type AuthorizeHook, type TorrentHost } from './peer-server.js';
import { bucketFor, monotonicMs, type Clock } from './rate-limit.js';
import { SeedHost } from './seed-host.js';
import { makePeerId, type PeerSession } from './session.js';
import { FdCache } from './seed-files.js';
import { MAX_OPEN_SEED_FILES } from './limits.js';

export type { AuthorizeHook, AuthorizeRequest, AuthorizeResult } from './peer-server.js';

export interface SwarmEngineOptions {
  listen: Endpoint;
  resume: ResumeStore;
  logger: Logger;
  /** Bytes per second, all uploads together; unset or 0 = unlimited. */
  maxUploadRate?: number;
  /** Bytes per second, all downloads together; unset or 0 = unlimited. */
  maxDownloadRate?: number;
  /** Access check for incoming peers; default allows everyone (open access). */
  authorize?: AuthorizeHook;
  /** Injected clock (tests). */
  clock?: Clock;
  /** Override of the per-peer pipeline depth cap, in blocks (benchmarks). */
  maxPipeline?: number;
  /** How verified pieces are written: on the event loop ('sync', default) or the thread pool ('async'). */
  writeMode?: 'sync' | 'async';
}

/** The engine plus what tests and the client shell's status view may inspect. */
export interface SwarmEngineExt extends SwarmEngine {
  /** The bound peer server address (port 0 resolved), after listen(). */
  readonly address: Endpoint;
  /** Payload bytes served to peers so far (seeds and downloads). */
  uploaded(): number;
  /** Pieces fetched by a download in this run and the peers it banned. */
  downloadStats(id: string): { piecesFetched: number; banned: string[]; verifiedAt: number; stalls: number } | undefined;
}

export function createSwarmEngine(opts: SwarmEngineOptions): SwarmEngineExt {
  const clock = opts.clock ?? monotonicMs;
  const log = opts.logger;
  const peerId = makePeerId();
  const fdCache = new FdCache(MAX_OPEN_SEED_FILES);
  const upLimiter = bucketFor(opts.maxUploadRate, clock);
  const downLimiter = bucketFor(opts.maxDownloadRate, clock);
  const seeds = new Map<string, SeedHost>();
  const downloads = new Map<string, Download>();
  /** Running downloads by info-hash: they host incoming peers for that file. */
  const hostingDownloads = new Map<string, Download>();
  let timer: NodeJS.Timeout | null = null;
  let uploadedClosed = 0;
  let idleWaiters: Array<() => void> = [];

  const server = new PeerServer({
    listen: opts.listen,
    logger: log,
    clock,
    lookup: (hex): TorrentHost | undefined => seeds.get(hex) ?? hostingDownloads.get(hex),
    ...(opts.authorize ? { authorize: opts.authorize } : {}),
  });

  const hostCtx = { peerId, listenPort: () => server.address.port, logger: log, upLimiter, fdCache };

  function seedInternal(spec: SeedSpec): SeedHost {
    const hex = spec.manifest.infoHashHex;
    let host = seeds.get(hex);
    if (host && host.path !== spec.path) {
      // Same content at a new path: serve from the new one.
      host.close();
      uploadedClosed += host.uploaded;
      seeds.delete(hex);
      host = undefined;
    }
    if (!host) {
      host = new SeedHost(spec.manifest, spec.path, hostCtx);
      seeds.set(hex, host);
    }
    host.addGroup(spec.group);
    return host;
  }

  const dlCtx: DownloadContext = {
    ...hostCtx,
    clock,
    resume: opts.resume,
    downLimiter,
    self: () => server.address,
    register: (d) => { hostingDownloads.set(d.manifest.infoHashHex, d); },
    unregister: (d) => {
      if (hostingDownloads.get(d.manifest.infoHashHex) === d) hostingDownloads.delete(d.manifest.infoHashHex);
      checkIdle();
    },
    completed: (d, sessions: PeerSession[]) => {
      const host = seedInternal({ group: d.spec.group, manifest: d.manifest, path: d.spec.destPath });
      for (const s of sessions) {
        if (s.peerHas?.full) s.close();
        else host.takeOver(s);
      }
    },
    ...(opts.maxPipeline !== undefined ? { maxPipeline: opts.maxPipeline } : {}),
    ...(opts.writeMode !== undefined ? { writeMode: opts.writeMode } : {}),
  };

  function checkIdle(): void {
    for (const d of downloads.values()) if (d.running) return;
    const w = idleWaiters;
    idleWaiters = [];
    for (const f of w) f();
  }

  function tick(): void {
    const now = clock();
    try {
      server.tick();
      for (const h of seeds.values()) h.tick(now);
      for (const d of downloads.values()) d.tick(now);
    } catch (err) {
      log.error({ err: describe(err) }, 'swarm tick failed');
    }
  }

  const engine: SwarmEngineExt = {
    get address() { return server.address; },

    async listen() {
      await server.listen();
      if (timer === null) {
        timer = setInterval(tick, 1000);
        timer.unref();
      }
      log.info({ addr: server.address }, 'peer server listening');
    },

    seed(spec) { seedInternal(spec); },

    unseed(group, infoHashHex) {
      const host = seeds.get(infoHashHex);
      if (!host) return;
      if (host.removeGroup(group)) return;
      seeds.delete(infoHashHex);
      uploadedClosed += host.uploaded;
      host.close();
    },

    unseedAll() {
      for (const host of seeds.values()) { uploadedClosed += host.uploaded; host.close(); }
      seeds.clear();
    },

    download(spec: DownloadSpec) {
      const cur = downloads.get(spec.id);
      if (cur && cur.running) return;
      const d = new Download(spec, dlCtx);
      downloads.set(spec.id, d);
      void d.start().catch((err: unknown) => log.error({ err: describe(err), download: spec.id }, 'download crashed'));
      void d.finished.then(checkIdle);
    },

    status(): DownloadStatus[] {
      return [...downloads.values()].map((d) => d.status());
    },

    whenIdle() {
      return new Promise<void>((resolve) => {
        idleWaiters.push(resolve);
        checkIdle();
      });
    },

    async pauseAll() {
      for (const d of downloads.values()) d.pause();
      checkIdle();
    },

    async close() {
      if (timer !== null) { clearInterval(timer); timer = null; }
      for (const d of downloads.values()) d.pause();
      engine.unseedAll();
      await server.close();
      fdCache.closeAll();
      checkIdle();
    },

    uploaded() {
      let n = uploadedClosed;
      for (const d of downloads.values()) n += d.uploaded;
      for (const h of seeds.values()) {
        n += h.uploaded;
        for (const s of h.sessions) n += s.uploader?.served ?? 0;
      }
      return n;
    },

    downloadStats(id) {
      const d = downloads.get(id);
      return d ? { piecesFetched: d.piecesFetched, banned: d.bannedPeers, verifiedAt: d.verifiedAt, stalls: d.stalls } : undefined;
    },
  };
  return engine;
}
