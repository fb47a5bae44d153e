/**
 * Read-only access to shared files for seeding: a bounded LRU of open descriptors and the
 * {@link BlockSource} of a complete file (positional vectored reads from the page cache).
 */
import * as nodeFs from 'node:fs';
import { CoterieError } from '../common/errors.js';
import type { Manifest } from './api.js';
import { ioError, readvExact } from './file-io.js';
import type { BlockSource } from './uploader.js';

/**
 * A bounded LRU of read-only file descriptors for seeded files, so that sharing thousands of
 * files does not hold thousands of descriptors. All use is synchronous, so an evicted descriptor
 * is never in use.
 */
export class FdCache {
  private readonly fds = new Map<string, number>();

  constructor(private readonly max = 64) {}

  /** An open descriptor for `path`; with `expectSize`, an IO error if the file's size differs. */
  get(path: string, expectSize?: number): number {
    const fd = this.fds.get(path);
    if (fd !== undefined) {
      // Re-insert: Map iteration order is insertion order, so the first key is the LRU one.
      this.fds.delete(path);
      this.fds.set(path, fd);
      return fd;
    }
    let nfd: number;
    try { nfd = nodeFs.openSync(path, 'r'); } catch (e) { throw ioError(`cannot open ${path}`, e); }
    if (expectSize !== undefined) {
      const size = nodeFs.fstatSync(nfd).size;
      if (size !== expectSize) {
        nodeFs.closeSync(nfd);
        throw new CoterieError('IO', `${path} is ${size} bytes, but ${expectSize} were shared: the file changed`);
      }
    }
    this.fds.set(path, nfd);
    while (this.fds.size > this.max) {
      const [k, v] = this.fds.entries().next().value as [string, number];
      this.fds.delete(k);
      try { nodeFs.closeSync(v); } catch { /* ignore */ }
    }
    return nfd;
  }

  drop(path: string): void {
    const fd = this.fds.get(path);
    if (fd === undefined) return;
    this.fds.delete(path);
    try { nodeFs.closeSync(fd); } catch { /* ignore */ }
  }

  closeAll(): void {
    for (const p of [...this.fds.keys()]) this.drop(p);
  }
}

/** A complete shared file, served by positional reads. */
export class SeedSource implements BlockSource {
  readonly pieceLength: number;

  constructor(readonly path: string, readonly manifest: Manifest, private readonly cache: FdCache) {
    this.pieceLength = manifest.pieceLength;
  }

  has(piece: number): boolean { return piece >= 0 && piece < this.manifest.pieceCount; }

  readBlocks(views: Buffer[], position: number, total: number): void {
    const fd = this.cache.get(this.path, this.manifest.length);
    readvExact(fd, views, position, total, this.path);
  }
}
