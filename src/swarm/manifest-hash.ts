/**
 * The hashing pipeline behind buildManifest: SHA-1 of every piece plus SHA-256 of the whole file,
 * read with a small fixed set of reused buffers so memory stays flat in file size.
 *
 * Why two threads. Both hashes run at about the same speed here (SHA-NI: ~1.65 GB/s each per
 * core), so doing both on one thread halves throughput. The SHA-256 is one sequential stream, so
 * it runs in a worker on the second core (nothing else runs during upload_file) while the main
 * thread reads and hashes pieces. Reading costs the main thread extra, so the worker, whenever it
 * has caught up with the SHA-256, takes pieces from the newest chunk: the threads balance
 * themselves through one atomic claim counter per chunk rather than a fixed split (which the load
 * of a shared machine would upset). The main thread keeps one chunk published ahead of the one it
 * hashes, so the worker has pieces to take while the main thread is reading.
 *
 * Measured on this 2-core VM, 1 GiB page-cached file, 256 KiB pieces, quiet machine (MB/s):
 *   raw SHA-1, in memory (the reference)                          1,580-1,720
 *   raw SHA-1 + SHA-256 on one thread, in memory                    820-850
 *   one thread: sync reads + SHA-1 only (reading costs ~0.2 s/GiB)   1,240-1,280
 *   one thread: async reads + SHA-1 only                           1,135-1,155
 *   one thread: double-buffered async reads + SHA-1 only           1,280-1,570
 *   one thread build: sync reads, SHA-1 + SHA-256                    700-780
 *   one thread build: double-buffered async reads, both              680-830
 *   two threads, worker does SHA-256 only                          1,190-1,250
 *   two threads, worker also takes pieces, look-ahead (this)       1,220-1,320
 * The last is 0.75-0.86 of raw SHA-1 measured in the same round (median 0.77): as fast as
 * reading and SHA-1 alone, so the SHA-256 comes for free. Chunks of 1, 2 or 4 MiB made no
 * measurable difference. What is left goes to memory traffic: two cores hashing out-of-cache data
 * at once each slow down on this VM. Async reads would add a third thread to two busy cores, and
 * gained nothing measurable on one thread once both hashes run, so reads stay synchronous.
 * bench/hash-speed.ts reproduces the main figures.
 *
 * Small files are hashed on the calling thread: a worker's start and hand-overs cost more than
 * they save there. The worker is started once per process and kept (idle, unreferenced).
 */
import { createHash } from 'node:crypto';
import { readSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { CoterieError } from '../common/errors.js';

/** Bytes per chunk: the unit of reading and of hand-over to the worker. */
export const CHUNK_BYTES = 4 * 1024 * 1024;
/** Chunk buffers in the ring: enough to absorb jitter between the threads, 16 MiB in all. */
const SLOTS = 4;
/** Files below this size are hashed on one thread. */
export const PARALLEL_MIN_BYTES = 64 * 1024 * 1024;

/** The hashes of one file. */
export interface FileHashes {
  pieces: Buffer;
  sha256: string;
  /** Pieces whose SHA-1 the worker computed (0 on one thread): how the load balanced. */
  workerPieces: number;
}

export interface HashOptions {
  /** Use the worker thread (default: for files of PARALLEL_MIN_BYTES or more). */
  parallel?: boolean;
  onProgress?: (done: number, total: number) => void;
}

/**
 * Hashes `length` bytes of the open file `fd`. `pieceLength` must be a power of two; chunks are
 * max(CHUNK_BYTES, pieceLength) so every chunk holds whole pieces. Throws CoterieError IO on a
 * read error or if the file is shorter than `length`.
 */
export async function hashFile(fd: number, length: number, pieceLength: number, opts: HashOptions = {}): Promise<FileHashes> {
  const parallel = opts.parallel ?? length >= PARALLEL_MIN_BYTES;
  return parallel ? hashParallel(fd, length, pieceLength, opts.onProgress) : hashInline(fd, length, pieceLength, opts.onProgress);
}

function readFully(fd: number, buf: Buffer, len: number, pos: number): void {
  let got = 0;
  while (got < len) {
    let n: number;
    try { n = readSync(fd, buf, got, len - got, pos + got); } catch (e) {
      const code = (e as { code?: string })?.code;
      throw new CoterieError('IO', `cannot read the file${code ? ` (${code})` : ''}`, { cause: e });
    }
    if (n === 0) throw new CoterieError('IO', 'the file shrank while it was being hashed');
    got += n;
  }
}

// Atomics.waitAsync exists in Node 20 (V8) but not in the ES2023 lib typings this project builds with.
type WaitAsync = (a: Int32Array, i: number, v: number, timeoutMs: number) =>
  { async: false; value: 'not-equal' | 'timed-out' } | { async: true; value: Promise<'ok' | 'timed-out'> };
const waitAsync = (Atomics as unknown as { waitAsync: WaitAsync }).waitAsync;

const yieldToLoop = (): Promise<void> => new Promise((r) => setImmediate(r));

async function hashInline(fd: number, length: number, pieceLength: number, onProgress?: (d: number, t: number) => void): Promise<FileHashes> {
  const chunk = Math.max(CHUNK_BYTES, pieceLength);
  const pieces = Buffer.alloc(Math.ceil(length / pieceLength) * 20);
  const sha256 = createHash('sha256');
  const buf = Buffer.allocUnsafe(Math.min(chunk, Math.max(length, 1)));
  let piece = 0;
  for (let done = 0; done < length;) {
    const len = Math.min(buf.length, length - done);
    readFully(fd, buf, len, done);
    const c = buf.subarray(0, len);
    sha256.update(c);
    for (let off = 0; off < len; off += pieceLength) {
      createHash('sha1').update(c.subarray(off, Math.min(off + pieceLength, len))).digest().copy(pieces, 20 * piece++);
    }
    done += len;
    onProgress?.(done, length);
    // Let the shell and peers run between chunks.
    await yieldToLoop();
  }
  return { pieces, sha256: sha256.digest('hex'), workerPieces: 0 };
}

// Control block (Int32Array over a SharedArrayBuffer). Per slot, stride 4:
const CLAIM = 0;  // next piece of the slot's chunk to hand out (both threads Atomics.add it)
const DONE = 1;   // pieces of the chunk hashed
const COUNT = 2;  // pieces in the chunk
const CHUNK = 3;  // which chunk the slot holds
// Globals after the slots:
const G_POSTED = SLOTS * 4;     // chunks read and published by the main thread
const G_SHA_DONE = G_POSTED + 1; // chunks fed to SHA-256 by the worker
const G_STOP = G_POSTED + 2;     // main asks the worker to quit (error path)
const CTL_INTS = G_POSTED + 3;
const EXHAUSTED = 1 << 30;

// The worker: for each job, SHA-256 over the chunks in order; when it has caught up, SHA-1 of
// unclaimed pieces of the newest chunk. During a job it blocks on Atomics.wait (it has nothing
// else to do), then posts the result and goes back to its event loop for the next job.
// Ordering: the main thread writes a chunk's bytes, then CHUNK/COUNT, then DONE = 0, then
// CLAIM = 0, then POSTED; every one of these is a sequentially consistent atomic, so a claim the
// worker wins always sees the chunk's bytes and fields, even if the slot was reused meanwhile.
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
function run({ ctlBuf, slotBufs, piecesBuf, length, pieceLength, chunkBytes, chunks }) {
  const ctl = new Int32Array(ctlBuf);
  const slots = slotBufs.map((b) => Buffer.from(b));
  const pieces = Buffer.from(piecesBuf);
  const S = slots.length, G_POSTED = S * 4, G_SHA_DONE = G_POSTED + 1, G_STOP = G_POSTED + 2;
  const sha = createHash('sha256');
  let next = 0, stolen = 0;
  for (;;) {
    if (Atomics.load(ctl, G_STOP)) return null;
    const posted = Atomics.load(ctl, G_POSTED);
    if (next < posted) {
      const s = next % S;
      sha.update(slots[s].subarray(0, Math.min(chunkBytes, length - next * chunkBytes)));
      next++;
      Atomics.store(ctl, G_SHA_DONE, next);
      Atomics.notify(ctl, G_SHA_DONE);
      continue;
    }
    if (posted > 0) {
      const s = (posted - 1) % S, base = s * 4;
      const i = Atomics.add(ctl, base, 1);
      const chunk = Atomics.load(ctl, base + 3), count = Atomics.load(ctl, base + 2);
      if (i < count) {
        const off = i * pieceLength, end = Math.min(off + pieceLength, length - chunk * chunkBytes);
        createHash('sha1').update(slots[s].subarray(off, end)).digest()
          .copy(pieces, 20 * (chunk * (chunkBytes / pieceLength) + i));
        stolen++;
        Atomics.add(ctl, base + 1, 1);
        Atomics.notify(ctl, base + 1);
        continue;
      }
    }
    if (next >= chunks) return { sha256: sha.digest('hex'), stolen };
    Atomics.wait(ctl, G_POSTED, posted, 200);
  }
}
parentPort.on('message', (job) => {
  let result;
  try { result = run(job); } catch (e) { result = { error: String((e && e.stack) || e) }; }
  parentPort.postMessage(result);
});
`;

type WorkerResult = { sha256: string; stolen: number } | { error: string } | null;

// One hashing worker per process, started on first use and kept (unreferenced, idle on its event
// loop) for later uploads: starting one costs 30-90 ms of CPU, 5-10% of hashing a whole GiB.
// Jobs run one at a time; `queue` chains them.
let shared: Worker | null = null;
let queue: Promise<unknown> = Promise.resolve();

function hashWorker(): Worker {
  if (shared) return shared;
  const w = new Worker(WORKER_SOURCE, { eval: true });
  const drop = (): void => { if (shared === w) shared = null; };
  w.on('error', drop);
  w.on('exit', drop);
  w.unref();
  shared = w;
  return w;
}

/** Runs one job on the shared worker; resolves with its result, rejects if the worker dies. */
function runJob(job: object): Promise<WorkerResult> {
  const w = hashWorker();
  return new Promise<WorkerResult>((resolve, reject) => {
    const done = (): void => { w.off('message', onMessage); w.off('error', onError); w.off('exit', onExit); w.unref(); };
    const onMessage = (m: WorkerResult): void => { done(); resolve(m); };
    const onError = (e: Error): void => { done(); reject(e); };
    const onExit = (code: number): void => { done(); reject(new Error(`hash worker exited with code ${code}`)); };
    w.on('message', onMessage);
    w.on('error', onError);
    w.on('exit', onExit);
    // Referenced while a job runs, so the process cannot exit under a pending upload.
    w.ref();
    w.postMessage(job);
  });
}

async function hashParallel(fd: number, length: number, pieceLength: number, onProgress?: (d: number, t: number) => void): Promise<FileHashes> {
  const prev = queue;
  let release!: () => void;
  queue = new Promise<void>((r) => { release = r; });
  try {
    await prev;
    return await hashParallelJob(fd, length, pieceLength, onProgress);
  } finally {
    release();
  }
}

async function hashParallelJob(fd: number, length: number, pieceLength: number, onProgress?: (d: number, t: number) => void): Promise<FileHashes> {
  const chunkBytes = Math.max(CHUNK_BYTES, pieceLength);
  const chunks = Math.ceil(length / chunkBytes);
  const perChunk = chunkBytes / pieceLength;
  const ctlBuf = new SharedArrayBuffer(CTL_INTS * 4);
  const ctl = new Int32Array(ctlBuf);
  const slotBufs = Array.from({ length: SLOTS }, () => new SharedArrayBuffer(chunkBytes));
  const slots = slotBufs.map((b) => Buffer.from(b));
  const piecesBuf = new SharedArrayBuffer(Math.ceil(length / pieceLength) * 20);
  const pieces = Buffer.from(piecesBuf);
  // Claim counters start exhausted. A claim the worker makes on a slot's old counter just as the
  // main thread refills the slot returns at least the old count, which is `perChunk` (only the
  // last chunk is short, and no chunk follows it), so it can never be mistaken for a piece of
  // the new chunk: no piece is hashed twice and DONE never overcounts.
  for (let s = 0; s < SLOTS; s++) { ctl[s * 4 + CLAIM] = EXHAUSTED; ctl[s * 4 + COUNT] = 0; ctl[s * 4 + CHUNK] = -1; }

  let failure: Error | null = null;
  const result = runJob({ ctlBuf, slotBufs, piecesBuf, length, pieceLength, chunkBytes, chunks });
  result.catch((e: Error) => { failure = e; });
  const failed = (): CoterieError => new CoterieError('IO', 'hashing failed', { cause: failure });

  // Waits (without blocking the event loop, so a dead worker is noticed) until ctl[i] != v.
  const waitChange = async (i: number, v: number): Promise<void> => {
    const r = waitAsync(ctl, i, v, 100);
    if (r.async) await r.value;
    if (failure) throw failed();
  };

  // Reads the next chunk into its slot (once the slot's previous chunk is fully hashed) and
  // publishes it to the worker.
  let nextRead = 0;
  const readAndPost = async (): Promise<void> => {
    const c = nextRead++;
    const s = c % SLOTS, base = s * 4;
    if (c >= SLOTS) {
      for (let v; (v = Atomics.load(ctl, G_SHA_DONE)) < c - SLOTS + 1;) await waitChange(G_SHA_DONE, v);
      for (let v; (v = Atomics.load(ctl, base + DONE)) < Atomics.load(ctl, base + COUNT);) await waitChange(base + DONE, v);
    }
    const start = c * chunkBytes;
    const len = Math.min(chunkBytes, length - start);
    readFully(fd, slots[s]!, len, start);
    Atomics.store(ctl, base + CHUNK, c);
    Atomics.store(ctl, base + COUNT, Math.ceil(len / pieceLength));
    Atomics.store(ctl, base + DONE, 0);
    Atomics.store(ctl, base + CLAIM, 0);
    Atomics.store(ctl, G_POSTED, c + 1);
    Atomics.notify(ctl, G_POSTED);
  };

  try {
    for (let c = 0; c < chunks; c++) {
      // Keep one chunk published ahead of the one this thread hashes: while this thread reads,
      // the worker (done with its SHA-256) has pieces of that chunk to take, instead of idling.
      // Measured: without the look-ahead the worker sat idle ~0.24 s per GiB during reads.
      while (nextRead < chunks && nextRead <= c + 1) await readAndPost();
      const s = c % SLOTS, base = s * 4;
      const len = Math.min(chunkBytes, length - c * chunkBytes);
      const count = Math.ceil(len / pieceLength);
      const slot = slots[s]!;
      for (let i; (i = Atomics.add(ctl, base + CLAIM, 1)) < count;) {
        const off = i * pieceLength;
        createHash('sha1').update(slot.subarray(off, Math.min(off + pieceLength, len)))
          .digest().copy(pieces, 20 * (c * perChunk + i));
        Atomics.add(ctl, base + DONE, 1);
      }
      onProgress?.(c * chunkBytes + len, length);
      await yieldToLoop();
      if (failure) throw failed();
    }
    const r = await result.catch(() => { throw failed(); });
    if (r === null) throw new CoterieError('IO', 'hashing was stopped');
    if ('error' in r) throw new CoterieError('IO', 'hashing failed in the worker', { cause: new Error(r.error) });
    // The worker reports only after its last steal, but check rather than trust.
    for (let s = 0; s < SLOTS; s++) {
      for (let v; (v = Atomics.load(ctl, s * 4 + DONE)) < Atomics.load(ctl, s * 4 + COUNT);) await waitChange(s * 4 + DONE, v);
    }
    return { pieces: Buffer.from(pieces), sha256: r.sha256, workerPieces: r.stolen };
  } catch (e) {
    // Make the worker abandon this job (it checks STOP on every turn, and wakes within 200 ms),
    // and wait for it, so the next job never shares the worker with a stale one.
    Atomics.store(ctl, G_STOP, 1);
    Atomics.notify(ctl, G_POSTED);
    await result.catch(() => undefined);
    throw e;
  }
}
