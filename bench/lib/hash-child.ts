/**
 * Child process of the hashing scenario, so each measurement starts in a fresh process the way
 * `upload_file` hashes in a client process:
 *
 *   node dist/bench/lib/hash-child.js manifest <file> <pieceLength>   buildManifest (upload_file's hashing)
 *   node dist/bench/lib/hash-child.js sha1 <file> <pieceLength>       raw SHA-1, one hash per piece
 *
 * `sha1` reads the same bytes in 64 MiB windows (untimed) and times only the hashing, so it is the
 * machine's raw SHA-1 speed over exactly those bytes. Prints one JSON line: {seconds, bytes}.
 */
import { createHash } from 'node:crypto';
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { buildManifest } from '../../src/swarm/manifest.js';

async function main(): Promise<void> {
  const [mode, path, pl] = process.argv.slice(2);
  const pieceLength = Number(pl);
  if (!path || !(pieceLength > 0)) throw new Error('usage: hash-child.js manifest|sha1 <file> <pieceLength>');
  if (mode === 'manifest') {
    const t0 = process.hrtime.bigint();
    const r = await buildManifest(path, { pieceLength });
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    process.stdout.write(JSON.stringify({ seconds, bytes: r.manifest.length, pieces: r.manifest.pieceCount }) + '\n');
    return;
  }
  if (mode === 'sha1') {
    const fd = openSync(path, 'r');
    const size = fstatSync(fd).size;
    const win = Buffer.allocUnsafe(64 * 1024 * 1024 - ((64 * 1024 * 1024) % pieceLength));
    let ns = 0n;
    let done = 0;
    try {
      while (done < size) {
        let n = 0;
        while (n < win.length && done + n < size) {
          const k = readSync(fd, win, n, Math.min(win.length - n, size - done - n), done + n);
          if (k <= 0) break;
          n += k;
        }
        const t0 = process.hrtime.bigint();
        for (let off = 0; off < n; off += pieceLength) createHash('sha1').update(win.subarray(off, Math.min(n, off + pieceLength))).digest();
        ns += process.hrtime.bigint() - t0;
        done += n;
      }
    } finally {
      closeSync(fd);
    }
    process.stdout.write(JSON.stringify({ seconds: Number(ns) / 1e9, bytes: done }) + '\n');
    return;
  }
  throw new Error(`unknown mode ${mode}`);
}

main().catch((err: unknown) => { process.stderr.write(`${String(err)}\n`); process.exit(1); });
