/**
 * The whole-file SHA-256 of a download, computed during the transfer: a worker thread follows
 * the verified prefix of the `.part` file (pieces 0..k-1 all verified and written) with
 * positional reads from the page cache and hashes it, so that at completion only the tail the
 * worker has not reached yet remains.
 *
 * Why a worker and not the download's thread: the download's thread is the bottleneck of a
 * transfer (SHA-1 per piece, decoding, page-cache writes), and SHA-256 on it cost 0.66-0.7 s per
 * GiB after the last piece (1 GiB 3 -> 1: 1.4-1.7 s to every piece verified, 2.2-2.4 s to
 * complete). The seeders on this 2-core machine leave part of the other core idle, which the
 * worker uses; the worker thread runs at nice 19, so it takes only idle CPU time (without that,
 * under load, it slowed the transfer by 0.5 s per GiB and gained only 7 %). Measured, 1 GiB,
 * 3 seeders -> 1, engine level, 3 runs each interleaved, load average ~2.8 from other work:
 * 2.48-2.58 s before, 1.91-2.04 s after (last piece verified to complete: 0.75-0.8 s before,
 * 0.03-0.08 s after). Reading back costs little: the pieces were just written, so the reads are
 * page-cache copies. The picker fetches pieces in index order when every connected peer is a
 * seeder (see picker NOTES.md), so the prefix grows steadily.
 */
import { Worker } from 'node:worker_threads';

/** Files below this size are hashed at the end on the download's thread (a worker costs 30-90 ms to start). */
export const PREFIX_HASH_MIN_BYTES = 32 * 1024 * 1024;
/** The worker starts once the verified prefix holds this much (see PartFile.advancePrefix). */
export const PREFIX_START_BYTES = 16 * 1024 * 1024;
/** The worker is told about the prefix at most once per this many new bytes (and at the end). */
const POST_EVERY = 4 * 1024 * 1024;

const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const fs = require('node:fs');
const CHUNK = 4 * 1024 * 1024;
const h = createHash('sha256');
const buf = Buffer.allocUnsafeSlow(CHUNK);
let fd = -1, pos = 0, failed = null;
// Lowest CPU priority for this thread only (Linux: a thread's kernel id is a valid target of
// setpriority), so the hash takes idle CPU time and does not slow the transfer; it catches up
// at the end, when the transfer no longer needs the CPU.
// At the end the download waits on this thread, so it goes back to normal priority (allowed when
// the process may raise priority; else it stays at 19 and may finish later on a busy machine).
function nice(n) { try { require('node:os').setPriority(Number(fs.readlinkSync('/proc/thread-self').split('/').pop()), n); } catch {} }
nice(19);
try { fd = fs.openSync(workerData.path, 'r'); } catch (e) { failed = String(e); }
function upto(end) {
  while (failed === null && pos < end) {
    const want = Math.min(CHUNK, end - pos);
    let got = 0;
    while (got < want) {
      const n = fs.readSync(fd, buf, got, want - got, pos + got);
      if (n === 0) { failed = 'short read at ' + (pos + got); return; }
      got += n;
    }
    h.update(buf.subarray(0, want));
    pos += want;
  }
}
parentPort.on('message', (m) => {
  if (m.final) nice(0);
  try { upto(m.upto); } catch (e) { failed = String((e && e.stack) || e); }
  if (m.final) {
    try { if (fd >= 0) fs.closeSync(fd); } catch {}
    parentPort.postMessage(failed === null ? { sha256: h.digest('hex') } : { error: failed });
  }
});
`;

/** One download's prefix hash. Not reusable after {@link digest} or {@link stop}. */
export class PrefixHasher {
  private readonly worker: Worker;
  private posted = 0;
  private broken: Error | null = null;
  private result: Promise<string> | null = null;

  constructor(path: string, private readonly length: number) {
    this.worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { path } });
    this.worker.on('error', (e) => { this.broken = e; });
    // Idle until told: must not keep the process alive.
    this.worker.unref();
  }

  /** Bytes [0, end) are verified and written. Cheap: posts at most once per POST_EVERY bytes. */
  advance(end: number): void {
    if (this.result !== null || this.broken !== null) return;
    if (end - this.posted < POST_EVERY && end < this.length) return;
    this.posted = end;
    this.worker.postMessage({ upto: end });
  }

  /** The whole file is written: the SHA-256 (hex) of all of it. Rejects if the worker failed. */
  digest(): Promise<string> {
    if (this.result !== null) return this.result;
    const w = this.worker;
    this.result = new Promise<string>((resolve, reject) => {
      if (this.broken !== null) { reject(this.broken); return; }
      const done = (): void => { w.off('message', onMsg); w.off('error', onErr); w.off('exit', onExit); void w.terminate(); };
      const onMsg = (m: { sha256?: string; error?: string }): void => {
        done();
        if (typeof m.sha256 === 'string') resolve(m.sha256); else reject(new Error(`prefix hash: ${m.error ?? 'no result'}`));
      };
      const onErr = (e: Error): void => { done(); reject(e); };
      const onExit = (code: number): void => { done(); reject(new Error(`prefix hash worker exited with code ${code}`)); };
      w.on('message', onMsg);
      w.on('error', onErr);
      w.on('exit', onExit);
      w.ref();
      w.postMessage({ upto: this.length, final: true });
    });
    return this.result;
  }

  /** Stops the worker (pause, failure). */
  stop(): void {
    if (this.result === null) this.result = Promise.reject(new Error('prefix hash stopped'));
    this.result.catch(() => { /* nobody may wait */ });
    void this.worker.terminate();
  }
}
