/**
 * Helpers for multi-process swarm tests: make a random file and its manifest under a temp dir,
 * spawn swarm-node processes, read their JSON lines with bounded waits, and kill them by PID.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomFillSync, createHash } from 'node:crypto';
import { closeSync, fsyncSync, mkdtempSync, openSync, readSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Manifest } from '../../src/swarm/api.js';
import { buildManifest } from '../../src/swarm/manifest.js';

export const NODE_SCRIPT = new URL('./swarm-node.js', import.meta.url).pathname;

export type NodeEvent = Record<string, unknown> & { event: string };

/** A spawned swarm-node. */
export class SwarmNode {
  readonly proc: ChildProcess;
  readonly events: NodeEvent[] = [];
  stderr = '';
  private waiters: Array<() => void> = [];
  readonly exited: Promise<number | null>;
  exitCode: number | null | undefined = undefined;

  constructor(args: string[], env: Record<string, string> = {}, nodeArgs: string[] = []) {
    this.proc = spawn(process.execPath, [...nodeArgs, NODE_SCRIPT, ...args], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, ...env },
    });
    createInterface({ input: this.proc.stdout! }).on('line', (line) => {
      try { this.events.push(JSON.parse(line) as NodeEvent); } catch { /* not ours */ }
      this.wake();
    });
    this.proc.stderr!.on('data', (b: Buffer) => { this.stderr = (this.stderr + b.toString()).slice(-20_000); });
    this.exited = new Promise((resolve) => this.proc.on('exit', (code) => { this.exitCode = code; this.wake(); resolve(code); }));
  }

  get pid(): number { return this.proc.pid!; }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** The first event (already seen or future) matching `pred`; rejects after `timeoutMs` or on exit. */
  async waitFor(pred: (e: NodeEvent) => boolean, timeoutMs: number, what = 'event'): Promise<NodeEvent> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = this.events.find(pred);
      if (hit) return hit;
      if (this.exitCode !== undefined) throw new Error(`node ${this.pid} exited (${this.exitCode}) before ${what}; stderr: ${this.stderr.slice(-2000)}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} from node ${this.pid}; last: ${JSON.stringify(this.events.slice(-3))}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, Math.min(left, 200));
        this.waiters.push(() => { clearTimeout(t); r(); });
      });
    }
  }

  /** Waits for the "listening" line; returns the port. */
  async port(timeoutMs = 10_000): Promise<number> {
    const e = await this.waitFor((x) => x.event === 'listening', timeoutMs, 'listening');
    return e['port'] as number;
  }

  send(line: string): void { this.proc.stdin?.write(line + '\n'); }

  /** Kills this process by PID (SIGKILL by default) and waits for it to exit. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (this.exitCode !== undefined) return;
    try { process.kill(this.pid, signal); } catch { /* already gone */ }
    await Promise.race([this.exited, new Promise((r) => setTimeout(r, 5000))]);
  }
}

/** Kills every node given (by PID). */
export async function killAll(nodes: Iterable<SwarmNode>): Promise<void> {
  await Promise.all([...nodes].map((n) => n.kill()));
}

export interface Prepared {
  dir: string;
  file: string;
  infoPath: string;
  manifest: Manifest;
  sha256: string;
}

/** A temp dir removed by `cleanup`. */
export function tempDir(prefix = 'coterie-swarm-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * Writes `size` random bytes to `dir/name` (fsynced, so writeback does not disturb timings),
 * builds its manifest and writes the info dict beside it.
 */
export async function prepareFile(dir: string, size: number, opts: { name?: string; pieceLength?: number } = {}): Promise<Prepared> {
  const file = join(dir, opts.name ?? 'payload.bin');
  const fd = openSync(file, 'w');
  const chunk = Buffer.allocUnsafe(Math.min(size, 8 << 20) || 1);
  let left = size;
  while (left > 0) {
    const n = Math.min(left, chunk.length);
    randomFillSync(chunk, 0, n);
    writeSync(fd, chunk, 0, n);
    left -= n;
  }
  fsyncSync(fd);
  closeSync(fd);
  const { manifest, sha256 } = await buildManifest(file, opts.pieceLength ? { pieceLength: opts.pieceLength } : {});
  const infoPath = join(dir, `${opts.name ?? 'payload.bin'}.info`);
  writeFileSync(infoPath, manifest.infoBytes);
  return { dir, file, infoPath, manifest, sha256 };
}

/** SHA-256 of a file, streamed with one reused buffer (test files can be large). */
export function sha256File(path: string): string {
  const h = createHash('sha256');
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.allocUnsafe(4 << 20);
    for (let pos = 0; ;) {
      const n = readSync(fd, buf, 0, buf.length, pos);
      if (n === 0) break;
      h.update(buf.subarray(0, n));
      pos += n;
    }
  } finally {
    closeSync(fd);
  }
  return h.digest('hex');
}

export function seedArgs(p: Prepared, extra: string[] = []): string[] {
  return ['seed', '--file', p.file, '--info', p.infoPath, ...extra];
}

export function downloadArgs(p: Prepared, dest: string, resume: string, peers: number[], extra: string[] = []): string[] {
  return ['download', '--info', p.infoPath, '--sha256', p.sha256, '--dest', dest, '--resume', resume,
    '--peers', peers.map((x) => `127.0.0.1:${x}`).join(','), ...extra];
}

/**
 * A test file's swarm fixture: `node()` spawns a driver process and `setup()` prepares a random
 * file (256 KiB pieces) in a fresh temp dir; `cleanup()` (for the file's `after` hook) kills every
 * node by PID and removes every dir.
 */
export function swarmFixture(): {
  node(args: string[]): SwarmNode;
  setup(sizeMiB: number): Promise<Prepared>;
  cleanup(): Promise<void>;
} {
  const nodes = new Set<SwarmNode>();
  const dirs: Array<() => void> = [];
  return {
    node(args) {
      const n = new SwarmNode(args);
      nodes.add(n);
      return n;
    },
    async setup(sizeMiB) {
      const { dir, cleanup } = tempDir();
      dirs.push(cleanup);
      return prepareFile(dir, sizeMiB * 1024 * 1024, { pieceLength: 256 * 1024 });
    },
    async cleanup() {
      await killAll(nodes);
      for (const c of dirs) c();
    },
  };
}
