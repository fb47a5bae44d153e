/**
 * Real Coterie processes for the benchmarks, driven the way a user drives them: the `./tracker`
 * and `./client` executables at the repository root, commands written to the client's stdin (not
 * a terminal, so commands run strictly in order and print no prompt).
 *
 * Command completion: each command is followed by a sentinel line (an unknown command, whose
 * `error: unknown command "__bench_sync_N"` comes back on stderr after everything the command
 * printed on stderr). An `error: ` line before the sentinel is the command's failure.
 *
 * Download completion: the client logs `download complete` (pino, synchronous, to client.log in
 * its data dir) once the file is whole, SHA-256 verified and renamed; {@link CoterieClient.waitLog}
 * watches that file and returns the line, whose `time` (ms since the epoch) is the end of the
 * timed window. The start is taken with Date.now() just before `download_file` is written.
 *
 * Every process is tracked and killed by PID in {@link killAll} (on exit and on SIGINT).
 *
 * The shims build first when the sources changed; {@link ensureBuilt} does that once before a pass.
 * COTERIE_BENCH_DIRECT=1 starts `node dist/src/.../main.js` exactly as the shims exec it, without
 * their build check (for running the suite while someone else edits src/).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readSync, statSync, watch, writeFileSync, type FSWatcher } from 'node:fs';
import { join } from 'node:path';
import { note, REPO_ROOT, sleep } from './util.js';

const live = new Set<ChildProcess>();

/** Kills (SIGKILL, by PID) every process this module started that is still running. */
export function killAll(): void {
  for (const c of live) { try { c.kill('SIGKILL'); } catch { /* gone */ } }
  live.clear();
}

/** Builds once if the sources changed (what the shims do on first use), so parallel spawns do not all build. */
export function ensureBuilt(): void {
  if (process.env['COTERIE_BENCH_DIRECT'] === '1') return;
  const r = spawnSync(join(REPO_ROOT, 'scripts', 'ensure-built.sh'), [REPO_ROOT], { stdio: ['ignore', 'inherit', 'inherit'] });
  if (r.status !== 0) throw new Error('scripts/ensure-built.sh failed');
}

/** Command and arguments that start `program` (`tracker` or `client`) with `args`. */
function command(program: 'tracker' | 'client', args: string[]): [string, string[]] {
  if (process.env['COTERIE_BENCH_DIRECT'] === '1') {
    // COTERIE_BENCH_NODE_FLAGS: extra node flags for profiling, e.g. `--cpu-prof --cpu-prof-dir=DIR`
    // (node refuses --cpu-prof in NODE_OPTIONS).
    const extra = (process.env['COTERIE_BENCH_NODE_FLAGS'] ?? '').split(' ').filter(Boolean);
    return [process.execPath, ['--enable-source-maps', ...extra, join(REPO_ROOT, 'dist', 'src', program, 'main.js'), ...args]];
  }
  return [join(REPO_ROOT, program), args];
}

function exitOf(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((r) => child.once('exit', (code) => r(code)));
}

/** Writes a tracker_info file with one `127.0.0.1:<port>` line per port. */
export function writeTrackerInfo(path: string, ports: number[]): string {
  writeFileSync(path, ports.map((p) => `127.0.0.1:${p}`).join('\n') + '\n');
  return path;
}

/** A `./tracker` process. */
export class CoterieTracker {
  private constructor(readonly child: ChildProcess, readonly port: number, private stderr: () => string) {}

  get pid(): number { return this.child.pid!; }

  static async start(infoFile: string, no: number, dataDir: string, env: NodeJS.ProcessEnv = {}): Promise<CoterieTracker> {
    const [cmd, argv] = command('tracker', [infoFile, String(no), '--data-dir', dataDir]);
    const child = spawn(cmd, argv, {
      stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, COTERIE_LOG: 'warn', ...env },
    });
    live.add(child);
    void exitOf(child).then(() => live.delete(child));
    let text = '';
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (s: string) => { if (text.length < 1 << 20) text += s; });
    const port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`tracker ${no} did not start in 60 s:\n${text}`)), 60_000);
      const check = (): void => {
        const m = /listening on \S+:(\d+)/.exec(text);
        if (m) { clearTimeout(timer); child.stderr!.off('data', check); resolve(Number(m[1])); }
      };
      child.stderr!.on('data', check);
      void exitOf(child).then((c) => { clearTimeout(timer); reject(new Error(`tracker ${no} exited (${c}):\n${text}`)); });
    });
    return new CoterieTracker(child, port, () => text);
  }

  stderrText(): string { return this.stderr(); }

  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGTERM');
    const t = setTimeout(() => this.child.kill('SIGKILL'), 8_000);
    await exitOf(this.child);
    clearTimeout(t);
  }
}

/** A parsed pino line from the client's log. */
export interface LogLine { time: number; msg: string; [k: string]: unknown }

/** A `./client` process driven through stdin. */
export class CoterieClient {
  private outLines: string[] = [];
  private errLines: string[] = [];
  private waiters: (() => void)[] = [];
  private seq = 0;
  private logOffset = 0;
  private logBuf = '';
  private logLines: LogLine[] = [];
  readonly logPath: string;
  readonly exited: Promise<number | null>;

  private constructor(readonly child: ChildProcess, readonly name: string, readonly dataDir: string, readonly peer: string) {
    this.logPath = join(dataDir, 'client.log');
    this.exited = exitOf(child);
    const lines = (into: string[]) => {
      let rest = '';
      return (s: string) => {
        rest += s;
        const parts = rest.split('\n');
        rest = parts.pop()!;
        for (const l of parts) into.push(l);
        for (const w of this.waiters.splice(0)) w();
      };
    };
    child.stdout!.setEncoding('utf8');
    child.stderr!.setEncoding('utf8');
    child.stdout!.on('data', lines(this.outLines));
    child.stderr!.on('data', lines(this.errLines));
    void this.exited.then(() => { for (const w of this.waiters.splice(0)) w(); });
  }

  get pid(): number { return this.child.pid!; }

  /** Spawns `./client 127.0.0.1:<port> <info> --data-dir <dir> [--stay]` with its log at info level. */
  static start(o: { name: string; port: number; infoFile: string; dataDir: string; cwd: string; stay?: boolean; env?: NodeJS.ProcessEnv }): CoterieClient {
    const peer = `127.0.0.1:${o.port}`;
    const args = [peer, o.infoFile, '--data-dir', o.dataDir, ...(o.stay ? ['--stay'] : [])];
    const [cmd, argv] = command('client', args);
    const child = spawn(cmd, argv, {
      cwd: o.cwd, stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, NO_COLOR: '1', ...o.env, COTERIE_LOG: 'info' },
    });
    live.add(child);
    void exitOf(child).then(() => live.delete(child));
    child.stdin!.on('error', () => { /* closed by the child */ });
    return new CoterieClient(child, o.name, o.dataDir, peer);
  }

  /** Writes one line to stdin, untracked (the timed `download_file`). */
  send(line: string): void {
    this.child.stdin!.write(line + '\n');
  }

  /**
   * Runs one command and waits until it has finished (sentinel). Throws with the client's error
   * line if it failed, unless `allowError` matches it. Returns the stdout lines seen meanwhile.
   */
  async run(line: string, opts: { timeoutMs?: number; allowError?: RegExp } = {}): Promise<string[]> {
    const mark = `__bench_sync_${++this.seq}`;
    const outStart = this.outLines.length;
    const errStart = this.errLines.length;
    this.child.stdin!.write(`${line}\n${mark}\n`);
    const deadline = Date.now() + (opts.timeoutMs ?? 120_000);
    for (;;) {
      const i = this.errLines.findIndex((l, k) => k >= errStart && l.includes(mark));
      if (i >= 0) {
        const errors = this.errLines.slice(errStart, i).filter((l) => l.startsWith('error: '));
        if (errors.length && !(opts.allowError && errors.every((e) => opts.allowError!.test(e)))) {
          throw new Error(`${this.name}: "${line.replace(/^(login|create_user) (\S+) .*/, '$1 $2 ***')}" failed: ${errors.join(' / ')}`);
        }
        return this.outLines.slice(outStart);
      }
      if (this.child.exitCode !== null || this.child.signalCode !== null) {
        throw new Error(`${this.name} exited (${this.child.exitCode ?? this.child.signalCode}) during "${line}"; stderr: ${this.errLines.slice(-5).join(' / ')}`);
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`${this.name}: no answer to "${line}" in ${opts.timeoutMs ?? 120_000} ms`);
      await new Promise<void>((r) => { const t = setTimeout(r, Math.min(left, 1000)); this.waiters.push(() => { clearTimeout(t); r(); }); });
    }
  }

  /** Reads whatever the log gained since the last call. */
  private pollLog(): void {
    let fd: number;
    try { fd = openSync(this.logPath, 'r'); } catch { return; }
    try {
      const size = statSync(this.logPath).size;
      if (size <= this.logOffset) return;
      const buf = Buffer.allocUnsafe(size - this.logOffset);
      const n = readSync(fd, buf, 0, buf.length, this.logOffset);
      this.logOffset += n;
      this.logBuf += buf.subarray(0, n).toString('utf8');
      const parts = this.logBuf.split('\n');
      this.logBuf = parts.pop()!;
      for (const p of parts) {
        try { this.logLines.push(JSON.parse(p) as LogLine); } catch { /* not JSON */ }
      }
    } finally {
      closeSync(fd);
    }
  }

  /** Skips what the log holds so far (so a later wait only sees new lines). */
  markLog(): void {
    this.pollLog();
    this.logLines = [];
  }

  /**
   * Waits for a log line for which `match` returns 'ok' (returned) or 'fail' (thrown). Watches the
   * file (inotify) with a 20 ms poll as a fallback.
   */
  async waitLog(match: (l: LogLine) => 'ok' | 'fail' | undefined, timeoutMs: number): Promise<LogLine> {
    const deadline = Date.now() + timeoutMs;
    let watcher: FSWatcher | null = null;
    let wake: (() => void) | null = null;
    try {
      try { watcher = watch(this.dataDir, () => wake?.()); } catch { watcher = null; }
      for (;;) {
        this.pollLog();
        for (let i = 0; i < this.logLines.length; i++) {
          const l = this.logLines[i]!;
          const r = match(l);
          if (r === 'ok') { this.logLines.splice(0, i + 1); return l; }
          if (r === 'fail') throw new Error(`${this.name}: ${l.msg}: ${JSON.stringify(l)}`);
        }
        this.logLines = [];
        if (this.child.exitCode !== null || this.child.signalCode !== null) throw new Error(`${this.name} exited; stderr: ${this.errLines.slice(-5).join(' / ')}`);
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`${this.name}: timed out after ${timeoutMs} ms waiting in ${this.logPath}`);
        await new Promise<void>((r) => { const t = setTimeout(r, Math.min(20, left)); wake = () => { clearTimeout(t); r(); }; });
        wake = null;
      }
    } finally {
      watcher?.close();
    }
  }

  /** Recent stderr lines (for error messages). */
  stderrTail(n = 5): string[] { return this.errLines.slice(-n); }

  /** `quit` (logs out, exits); SIGKILL if it has not exited within `ms`. */
  async quit(ms = 10_000): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    try { this.child.stdin!.end('quit\n'); } catch { /* closed */ }
    const t = setTimeout(() => { note(`${this.name} did not quit in ${ms} ms; killing pid ${this.pid}`); this.child.kill('SIGKILL'); }, ms);
    await this.exited;
    clearTimeout(t);
  }

  kill(): void { this.child.kill('SIGKILL'); }
}

/** Waits until `cond()` holds, polling every `everyMs`. */
export async function until(cond: () => boolean | Promise<boolean>, timeoutMs: number, what: string, everyMs = 50): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(everyMs);
  }
}
