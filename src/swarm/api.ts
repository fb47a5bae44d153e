/**
 * The contract between the client shell (src/client) and the swarm engine (src/swarm): what the
 * commands ask of the engine, and what the engine needs from the client's local state. Types only.
 */

/** A parsed, validated BitTorrent v1 single-file info dictionary (see manifest.ts). */
export interface Manifest {
  /** SHA-1 of `infoBytes`, 20 bytes. */
  infoHash: Buffer;
  /** Lower-case hex of `infoHash`. */
  infoHashHex: string;
  /** The exact bencoded info dictionary. */
  infoBytes: Buffer;
  name: string;
  length: number;
  pieceLength: number;
  pieceCount: number;
  /** Concatenated 20-byte SHA-1 digests, `pieceCount * 20` bytes. */
  pieces: Buffer;
}

/** A peer the tracker handed out. */
export interface PeerInfo { addr: string; user?: string; clientId?: string }

/** A complete file this client serves in a group. */
export interface SeedSpec { group: string; manifest: Manifest; path: string }

/** Where a download gets (fresh) peers and an access ticket from; called every few seconds and on starvation. */
export type PeerSource = () => Promise<{ peers: PeerInfo[]; ticket?: string }>;

export interface DownloadSpec {
  /** Stable id of this download in local state (resume key). */
  id: string;
  group: string;
  manifest: Manifest;
  /** Whole-file SHA-256, hex, checked when every piece is in. */
  sha256: string;
  /** Final path; the data is written to `${destPath}.part` and renamed when complete and verified. */
  destPath: string;
  peers: PeerInfo[];
  ticket?: string;
  refreshPeers: PeerSource;
  /** Called once, when the first piece is verified: the client announces itself as a seeder. */
  onFirstPiece?: () => void;
  /** Called when the download completes (verified, renamed) or fails for good. */
  onDone?: (result: { ok: true } | { ok: false; error: Error }) => void;
}

export type DownloadState = 'downloading' | 'complete' | 'failed' | 'paused';

export interface DownloadStatus {
  id: string;
  group: string;
  name: string;
  destPath: string;
  state: DownloadState;
  bytesDone: number;
  length: number;
  /** Payload bytes per second over the last few seconds. */
  rate: number;
  /** Seconds to completion at the current rate, or null if unknown. */
  etaSeconds: number | null;
  peers: number;
  error?: string;
}

/** Persistence of verified pieces, implemented by the client's local state (SQLite). */
export interface ResumeStore {
  /** The verified-piece bitfield saved for a download, with the .part file's size and mtime then. */
  load(id: string): { bitfield: Uint8Array; partSize: number; partMtimeMs: number } | undefined;
  /** Records verified pieces. Called after each piece write (cheap: batches are fine). */
  save(id: string, bitfield: Uint8Array, partSize: number, partMtimeMs: number): void;
  /** The download finished: its resume record can go. */
  complete(id: string): void;
}

/**
 * The swarm engine of one client process: a peer server that seeds, and downloads that fetch
 * from many peers at once. The client shell drives it; it never talks to trackers itself (it gets
 * peers through `DownloadSpec.refreshPeers`).
 */
export interface SwarmEngine {
  /** Starts the peer server on the client's IP:PORT. */
  listen(): Promise<void>;
  /** Serves a complete file in a group (until `unseed`). */
  seed(spec: SeedSpec): void;
  unseed(group: string, infoHashHex: string): void;
  /** Stops serving everything (logout); downloads are paused separately. */
  unseedAll(): void;
  /** Starts (or resumes) a download in the background. */
  download(spec: DownloadSpec): void;
  status(): DownloadStatus[];
  /** Resolves when no download is running. */
  whenIdle(): Promise<void>;
  /** Stops every running download, keeping its verified pieces for resume. */
  pauseAll(): Promise<void>;
  close(): Promise<void>;
}
