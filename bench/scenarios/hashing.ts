/**
 * Scenario 4: the hashing `upload_file` does (buildManifest: SHA-1 per piece plus the whole-file
 * SHA-256, src/swarm/manifest.ts) against the machine's raw SHA-1 speed over the same bytes (node
 * crypto, one hash per 256 KiB piece). The file is in the page cache for both (it was just written
 * and read once); each measurement runs in a fresh process. Figure: buildManifest throughput as a
 * percentage of raw SHA-1 throughput (higher is better; 100 % would mean the SHA-256 and the reads
 * cost nothing on the hashing thread).
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fmtSize, makeRandomFile, makeWorkDir, note, removeDir, sha1File } from '../lib/util.js';

const CHILD = fileURLToPath(new URL('../lib/hash-child.js', import.meta.url));

function child(mode: 'manifest' | 'sha1', path: string, pieceLength: number): Promise<{ seconds: number; bytes: number }> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [CHILD, mode, path, String(pieceLength)], { maxBuffer: 1 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`hash-child ${mode} failed: ${stderr || err.message}`));
      else resolve(JSON.parse(stdout.trim()) as { seconds: number; bytes: number });
    });
  });
}

export interface HashRep { manifest_s: number; sha1_s: number; manifest_MBps: number; sha1_MBps: number; percent: number }

export async function runHashing(size: number, pieceLength: number, reps: number, workParent?: string): Promise<HashRep[]> {
  const wd = makeWorkDir(workParent, 'coterie_hash.');
  try {
    const path = join(wd, 'payload.bin');
    note(`hashing: writing a ${fmtSize(size)} random file`);
    makeRandomFile(path, size);
    sha1File(path); // read once, so both sides start from the page cache
    const out: HashRep[] = [];
    for (let rep = 0; rep < reps; rep++) {
      const m = await child('manifest', path, pieceLength);
      const s = await child('sha1', path, pieceLength);
      const r: HashRep = {
        manifest_s: m.seconds, sha1_s: s.seconds,
        manifest_MBps: m.bytes / m.seconds / 1e6, sha1_MBps: s.bytes / s.seconds / 1e6,
        percent: (s.seconds / m.seconds) * 100,
      };
      out.push(r);
      note(`hashing rep ${rep + 1}/${reps}: buildManifest ${r.manifest_MBps.toFixed(0)} MB/s, raw SHA-1 ${r.sha1_MBps.toFixed(0)} MB/s = ${r.percent.toFixed(0)} %`);
    }
    return out;
  } finally {
    removeDir(wd);
  }
}
