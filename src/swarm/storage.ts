/**
 * A download's data on disk: the `<dest>.part` file (one synchronous positional write per
 * verified piece, resume state, the final whole-file SHA-256 check and rename). Seeded files are
 * read through seed-files.ts; piece buffers come from buffer-pool.ts.
 *
 * Why synchronous I/O on the event loop: PERF-NOTES measured one `writeSync` per verified piece
 * at 850 MB/s against 754 MB/s for asynchronous writes through the thread pool and 388 MB/s for
 * per-block writes; page-cache reads for seeding are memory copies. The cost is that a disk that
 * blocks (writeback throttling) stalls the loop for that long; the write is one piece at most.
 */
import { createHash } from 'node:crypto';
import * as nodeFs from 'node:fs';
import { CoterieError, IntegrityError } from '../common/errors.js';
import { ioError, readvExact } from './file-io.js';
import type { Manifest, ResumeStore } from './api.js';
import { Bitfield } from './bitfield.js';
import type { BlockSource } from './uploader.js';
import { monotonicMs, type Clock } from './rate-limit.js';
import { PREFIX_HASH_MIN_BYTES, PREFIX_START_BYTES, PrefixHasher } from './prefix-hash.js';

/** Reads per chunk when streaming a whole file (SHA-256 check, resume re-hash). */
const STREAM_CHUNK = 4 * 1024 * 1024;

// ------------------------------------------------------------------------------ part file

/** Positional write used by {@link PartFile}; injectable so tests can simulate a full disk. */
export type WriteFn = (fd: number, buf: Buffer, off: number, len: number, position: number) => number;
/** The asynchronous form (libuv thread pool), same contract. */
export type AsyncWriteFn = (fd: number, buf: Buffer, off: number, len: number, position: number,
  cb: (err: NodeJS.ErrnoException | null, written: number) => void) => void;

/** Most asynchronous piece writes in flight; beyond, writes are done synchronously (backpressure). */
export const MAX_ASYNC_WRITES = 32;

export interface PartFileOptions {
  /** Resume key. */
  id: string;
  manifest: Manifest;
  /** Final path; data goes to `${destPath}.part`. */
  destPath: string;
  resume: ResumeStore;
  clock?: Clock;
  /** Resume state is saved at most this often while pieces arrive. Default 250 ms. */
  saveEveryMs?: number;
  write?: WriteFn;
  writeAsync?: AsyncWriteFn;
  /** Called with (pieces checked, total) while an untrusted .part is re-hashed. */
  onRehash?: (done: number, total: number) => void;
  /**
   * Hash the verified prefix for the whole-file SHA-256 in a worker during the transfer
   * ({@link PrefixHasher}). Default: for files of PREFIX_HASH_MIN_BYTES or more.
   */
  prefixHash?: boolean;
  /** The prefix worker starts once the verified prefix holds this many bytes. Default PREFIX_START_BYTES. */
  prefixStartBytes?: number;
}

/** How the verified set was obtained when the .part was opened. */
export type ResumeMode = 'fresh' | 'trusted' | 'rehashed';

const defaultWrite: WriteFn = (fd, buf, off, len, position) => nodeFs.writeSync(fd, buf, off, len, position);
const defaultWriteAsync: AsyncWriteFn = (fd, buf, off, len, position, cb) => nodeFs.write(fd, buf, off, len, position, cb);

/**
 * A download's data on disk, written in place to `<dest>.part`. Invariants: `have` marks exactly
 * the pieces whose verified bytes were written (or found on disk with the right hash); the file is
 * `manifest.length` bytes long from open on; it is renamed to `destPath` only after the whole-file
 * SHA-256 matched. Serves its verified pieces to other peers ({@link BlockSource}).
 */
export class PartFile implements BlockSource {
  readonly partPath: string;
  readonly pieceLength: number;
  readonly have: Bitfield;
  mode: ResumeMode = 'fresh';
  private fd: number;
  private dirty = false;
  private saveTimer: NodeJS.Timeout | null = null;
  private lastSave = 0;
  private readonly clock: Clock;
  private readonly saveEvery: number;
  private readonly write: WriteFn;
  private readonly writeAsync: AsyncWriteFn;
  /** Asynchronous writes not yet completed; the descriptor is closed only when this is 0. */
  private pending = 0;
  private closeWanted = false;
  private idleWaiters: Array<() => void> = [];
  /** Follows the verified prefix with the whole-file SHA-256, or null (hashed in finish()). */
  private prefix: PrefixHasher | null = null;
  /** A prefix hasher is wanted, but starts only once the prefix reaches PREFIX_START_BYTES. */
  private prefixWanted = false;
  /** Pieces 0..prefixPieces-1 are all recorded. */
  private prefixPieces = 0;

  private constructor(private readonly opts: PartFileOptions, fd: number, have: Bitfield) {
    this.partPath = `${opts.destPath}.part`;
    this.pieceLength = opts.manifest.pieceLength;
    this.fd = fd;
    this.have = have;
    this.clock = opts.clock ?? monotonicMs;
    this.saveEvery = opts.saveEveryMs ?? 250;
    this.write = opts.write ?? defaultWrite;
    this.writeAsync = opts.writeAsync ?? defaultWriteAsync;
  }

  /**
   * Opens (or creates) the .part file and works out which pieces it already holds: the saved
   * resume record if the file's size and mtime still match it, else a re-hash of every piece.
   * Throws CoterieError IO when the destination cannot be created.
   */
  static async open(opts: PartFileOptions): Promise<PartFile> {
    const m = opts.manifest;
    const partPath = `${opts.destPath}.part`;
    let fd: number;
    let existed = true;
    try {
      fd = nodeFs.openSync(partPath, 'r+');
    } catch (e) {
      if ((e as { code?: string }).code !== 'ENOENT') throw ioError(`cannot open ${partPath}`, e);
      existed = false;
      try { fd = nodeFs.openSync(partPath, 'w+'); } catch (e2) { throw ioError(`cannot create ${partPath}`, e2); }
    }
    try {
      const st = nodeFs.fstatSync(fd);
      const rec = existed ? opts.resume.load(opts.id) : undefined;
      let have = new Bitfield(m.pieceCount);
      let mode: ResumeMode = 'fresh';
      if (rec && rec.partSize === st.size && rec.partMtimeMs === st.mtimeMs && rec.bitfield.length === ((m.pieceCount + 7) >>> 3)) {
        try { have = new Bitfield(m.pieceCount, rec.bitfield); mode = 'trusted'; } catch { /* malformed record: re-hash */ }
      }
      if (mode === 'fresh' && existed && st.size > 0) {
        have = await rehash(fd, m, Math.min(st.size, m.length), opts.onRehash);
        mode = 'rehashed';
      }
      if (st.size !== m.length) {
        try { nodeFs.ftruncateSync(fd, m.length); } catch (e) { throw ioError(`cannot size ${partPath}`, e); }
      }
      const pf = new PartFile(opts, fd, have);
      pf.mode = mode;
      if (opts.prefixHash ?? m.length >= PREFIX_HASH_MIN_BYTES) {
        pf.prefixWanted = true;
        pf.advancePrefix();
      }
      if (mode === 'rehashed') pf.saveNow();
      return pf;
    } catch (e) {
      try { nodeFs.closeSync(fd); } catch { /* ignore */ }
      throw e;
    }
  }

  has(piece: number): boolean { return piece >= 0 && piece < this.have.length && this.have.get(piece); }

  readBlocks(views: Buffer[], position: number, total: number): void {
    readvExact(this.fd, views, position, total, this.partPath);
  }

  /**
   * Writes a verified piece with one positional write and records it. Throws CoterieError IO
   * (disk full, I/O error): the download cannot go on.
   */
  writePiece(index: number, buf: Buffer, length: number): void {
    if (this.fd < 0) throw new CoterieError('IO', `${this.partPath} is closed`);
    let off = 0;
    const pos = index * this.pieceLength;
    while (off < length) {
      let n: number;
      try { n = this.write(this.fd, buf, off, length - off, pos + off); } catch (e) { throw ioError(`cannot write ${this.partPath}`, e); }
      if (n <= 0) throw new CoterieError('IO', `cannot write ${this.partPath}: no progress`);
      off += n;
    }
    this.recorded(index);
  }

  /** Asynchronous writes in flight. */
  get writesInFlight(): number { return this.pending; }

  /**
   * Writes a verified piece on the thread pool; `done` runs when it is on disk (page cache) and
   * recorded, or with a CoterieError IO. `buf` must stay untouched until then. Why: on this VM
   * the first touch of fresh page-cache memory costs about 1 s per GiB (pages the guest gave back
   * to the host), which a thread-pool write takes off the event loop's core.
   */
  writePieceAsync(index: number, buf: Buffer, length: number, done: (err: CoterieError | null) => void): void {
    if (this.fd < 0 || this.closeWanted) { done(new CoterieError('IO', `${this.partPath} is closed`)); return; }
    const pos = index * this.pieceLength;
    this.pending++;
    const step = (off: number): void => {
      this.writeAsync(this.fd, buf, off, length - off, pos + off, (err, n) => {
        if (err || n <= 0) {
          this.settle();
          done(err ? ioError(`cannot write ${this.partPath}`, err) : new CoterieError('IO', `cannot write ${this.partPath}: no progress`));
          return;
        }
        if (off + n < length) { step(off + n); return; }
        this.settle();
        // A pause may have closed the file meanwhile: the piece is on disk but not recorded, so
        // a resume re-hashes rather than trusting a record that lacks it.
        if (this.fd >= 0 && !this.closeWanted) this.recorded(index);
        done(null);
      });
    };
    step(0);
  }

  private settle(): void {
    this.pending--;
    if (this.pending > 0) return;
    if (this.closeWanted) this.reallyClose();
    const w = this.idleWaiters;
    this.idleWaiters = [];
    for (const f of w) f();
  }

  /** Resolves when no asynchronous write is in flight. */
  whenWritten(): Promise<void> {
    if (this.pending === 0) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  private recorded(index: number): void {
    this.have.set(index);
    this.dirty = true;
    this.scheduleSave();
    if (index === this.prefixPieces && (this.prefix !== null || this.prefixWanted)) this.advancePrefix();
  }

  /** The whole-file SHA-256 is being computed by a prefix worker (started, not yet finished). */
  get prefixHashing(): boolean { return this.prefix !== null; }

  /**
   * Extends the verified prefix and tells the hasher. The worker starts only once the prefix holds
   * PREFIX_START_BYTES: when pieces come in index order (every peer a seeder) that is within the
   * first few dozen milliseconds; in a swarm, where pieces come rarest-first, a contiguous prefix
   * forms late or never and the whole file is hashed at the end anyway, so starting a worker
   * (30-90 ms of CPU for a new isolate) at the start of each of 8 downloads was CPU the swarm needed.
   */
  private advancePrefix(): void {
    const have = this.have;
    let k = this.prefixPieces;
    while (k < have.length && have.get(k)) k++;
    this.prefixPieces = k;
    const end = Math.min(k * this.pieceLength, this.opts.manifest.length);
    // Not when the prefix is already the whole file: finish() hashes it without a worker's start-up.
    const len = this.opts.manifest.length;
    if (this.prefix === null && this.prefixWanted && end < len && end >= (this.opts.prefixStartBytes ?? PREFIX_START_BYTES)) {
      this.prefixWanted = false;
      try { this.prefix = new PrefixHasher(this.partPath, len); } catch { /* hashed in finish() */ }
    }
    this.prefix?.advance(end);
  }

  private scheduleSave(): void {
    if (this.saveTimer !== null) return;
    const wait = Math.max(0, this.lastSave + this.saveEvery - this.clock());
    this.saveTimer = setTimeout(() => { this.saveTimer = null; if (this.dirty) this.saveNow(); }, wait);
    this.saveTimer.unref();
  }

  /** Saves the verified set with the file's current size and mtime (pause, completion, tests). */
  saveNow(): void {
    if (this.fd < 0) return;
    if (this.saveTimer !== null) { clearTimeout(this.saveTimer); this.saveTimer = null; }
    const st = nodeFs.fstatSync(this.fd);
    this.opts.resume.save(this.opts.id, this.have.toBuffer(), st.size, st.mtimeMs);
    this.dirty = false;
    this.lastSave = this.clock();
  }

  /**
   * Every piece is in: checks the whole-file SHA-256 (streamed with one reused buffer), then
   * renames the .part to its final name and drops the resume record. Throws IntegrityError if
   * the hash differs (nothing is renamed), CoterieError IO on I/O errors.
   */
  async finish(sha256Hex: string): Promise<void> {
    await this.whenWritten();
    if (!this.have.full) throw new Error('finish() before every piece is verified');
    const m = this.opts.manifest;
    let got: string | null = null;
    if (this.prefix !== null) {
      try { got = await this.prefix.digest(); } catch { got = null; /* fall back to hashing here */ }
      this.prefix = null;
    }
    if (got === null) got = await this.hashWhole();
    if (got !== sha256Hex.toLowerCase()) {
      throw new IntegrityError(`${m.name}: whole-file SHA-256 is ${got}, expected ${sha256Hex}; the shared file's metadata is inconsistent`);
    }
    this.close();
    try { nodeFs.renameSync(this.partPath, this.opts.destPath); } catch (e) { throw ioError(`cannot rename ${this.partPath} to ${this.opts.destPath}`, e); }
    this.opts.resume.complete(this.opts.id);
  }

  /** The whole file's SHA-256, streamed with one reused buffer, yielding between chunks. */
  private async hashWhole(): Promise<string> {
    const h = createHash('sha256');
    const m = this.opts.manifest;
    const buf = Buffer.allocUnsafe(Math.min(STREAM_CHUNK, Math.max(1, m.length)));
    let pos = 0;
    while (pos < m.length) {
      const want = Math.min(buf.length, m.length - pos);
      readvExact(this.fd, [buf.subarray(0, want)], pos, want, this.partPath);
      h.update(buf.subarray(0, want));
      pos += want;
      // Keep serving peers and the shell responsive between chunks.
      if (pos < m.length) await new Promise<void>((r) => setImmediate(r));
    }
    return h.digest('hex');
  }

  /**
   * Saves pending resume state and closes the file (pause). With asynchronous writes in flight
   * the descriptor is closed when the last one completes (closing it under them could let a new
   * file reuse the number and receive their bytes).
   */
  close(): void {
    if (this.fd < 0 || this.closeWanted) return;
    if (this.pending > 0) { this.closeWanted = true; return; }
    this.reallyClose();
  }

  private reallyClose(): void {
    if (this.prefix !== null) { this.prefix.stop(); this.prefix = null; }
    if (this.fd < 0) return;
    if (this.dirty) {
      try { this.saveNow(); } catch { /* the fd may be broken; nothing more to do */ }
    }
    if (this.saveTimer !== null) { clearTimeout(this.saveTimer); this.saveTimer = null; }
    try { nodeFs.closeSync(this.fd); } catch { /* ignore */ }
    this.fd = -1;
  }

  get isOpen(): boolean { return this.fd >= 0; }
}

/** SHA-1 of every piece present in the first `size` bytes of `fd`; the matching ones. */
async function rehash(fd: number, m: Manifest, size: number, onProgress?: (done: number, total: number) => void): Promise<Bitfield> {
  const have = new Bitfield(m.pieceCount);
  const full = Math.floor(size / m.pieceLength);
  const lastLen = m.length - (m.pieceCount - 1) * m.pieceLength;
  // Only pieces wholly inside the file can match (the last one may be short).
  const checkable = size >= m.length ? m.pieceCount : full;
  const buf = Buffer.allocUnsafe(m.pieceLength);
  for (let p = 0; p < checkable; p++) {
    const len = p === m.pieceCount - 1 ? lastLen : m.pieceLength;
    let got = 0;
    while (got < len) {
      const n = nodeFs.readSync(fd, buf, got, len - got, p * m.pieceLength + got);
      if (n === 0) break;
      got += n;
    }
    if (got !== len) break;
    const d = createHash('sha1').update(buf.subarray(0, len)).digest();
    if (d.equals(m.pieces.subarray(p * 20, p * 20 + 20))) have.set(p);
    if ((p & 15) === 15) {
      onProgress?.(p + 1, m.pieceCount);
      await new Promise<void>((r) => setImmediate(r));
    }
  }
  onProgress?.(checkable, m.pieceCount);
  return have;
}
