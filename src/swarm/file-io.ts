/**
 * Small file-I/O helpers shared by the swarm's disk code: errors that say what failed and why
 * (disk full, not writable, missing), and an exact positional vectored read.
 */
import * as nodeFs from 'node:fs';
import { CoterieError } from '../common/errors.js';

/** A CoterieError IO for a failed file operation, with a hint for the common causes. */
export function ioError(what: string, e: unknown): CoterieError {
  const code = (e as { code?: string } | undefined)?.code;
  const hint = code === 'ENOSPC' ? ' (disk full)' : code === 'EACCES' || code === 'EPERM' || code === 'EROFS' ? ' (not writable)'
    : code === 'ENOENT' || code === 'ENOTDIR' ? ' (no such directory)' : '';
  return new CoterieError('IO', `${what}${code ? `: ${code}` : ''}${hint}`, { cause: e });
}

/** Reads exactly `total` bytes into `views` from `position`, or throws. */
export function readvExact(fd: number, views: Buffer[], position: number, total: number, what: string): void {
  let got: number;
  try { got = nodeFs.readvSync(fd, views, position); } catch (e) { throw ioError(`cannot read ${what}`, e); }
  if (got === total) return;
  // A short read from a regular file means it ended early; finish view by view to be sure.
  let pos = position + got;
  let skip = got;
  for (const v of views) {
    if (skip >= v.length) { skip -= v.length; continue; }
    let off = skip;
    skip = 0;
    while (off < v.length) {
      let n: number;
      try { n = nodeFs.readSync(fd, v, off, v.length - off, pos); } catch (e) { throw ioError(`cannot read ${what}`, e); }
      if (n === 0) throw new CoterieError('IO', `${what} is shorter than its manifest says: the file changed`);
      off += n; pos += n;
    }
  }
}
