/**
 * Test helpers for the tracker: a tracker_info file, a tracker process, and a bare RPC client.
 *
 *   const [port] = await freePorts(1);
 *   const info = writeTrackerInfo(dir, [port]);
 *   const t = await startTracker({ infoFile: info, no: 1, dataDir: join(dir, 't1') });
 *   const c = await RpcTestClient.connect(t.port);
 *   const r = await c.call('create_user', { user: 'alice', password: 'pw' });   // r.ok === true
 *   c.close(); await t.stop();
 *
 * Every process started here is tracked; `stopAllTrackers()` (call it in an `after` hook) kills any
 * still running, by PID.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { encodeLine, LineDecoder, type OpName, type Response } from '../../src/protocol/rpc.js';

/** The compiled tracker entry point (dist/src/tracker/main.js). */
export const TRACKER_MAIN = fileURLToPath(new URL('../../src/tracker/main.js', import.meta.url));

/** Writes `<dir>/trackers.txt` with one `127.0.0.1:<port>` line per port; returns its path. */
export function writeTrackerInfo(dir: string, ports: number[], host = '127.0.0.1'): string {
  const path = join(dir, 'trackers.txt');
  writeFileSync(path, ports.map((p) => `${host}:${p}`).join('\n') + '\n');
  return path;
}

/** A running tracker process. */
export interface TrackerProcess {
  pid: number;
  host: string;
  port: number;
  /** SIGTERM, then SIGKILL if it has not exited within `timeoutMs`; resolves with the exit code (null if killed). */
  stop(timeoutMs?: number): Promise<number | null>;
  /** SIGKILL, resolves once it has exited. */
  kill9(): Promise<void>;
  /** Everything it wrote to stderr so far. */
  stderrText(): string;
  /** Resolves with the exit code (or null on a signal) when it exits. */
  exited: Promise<number | null>;
}

export interface StartTrackerOptions {
  infoFile: string;
  /** tracker_no: 1-based line of the info file. */
  no: number;
  dataDir: string;
  /** Extra arguments and environment. */
  args?: string[];
  env?: NodeJS.ProcessEnv;
  /** How long to wait for the "listening on" line (default 10 s). */
  timeoutMs?: number;
  cwd?: string;
}

const running = new Set<ChildProcess>();

function waitExit(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((r) => child.once('exit', (code) => r(code)));
}

/** Spawns `node dist/src/tracker/main.js` and waits (bounded) for its "listening on" line. */
export async function startTracker(o: StartTrackerOptions): Promise<TrackerProcess> {
  const child = spawn(process.execPath, [TRACKER_MAIN, o.infoFile, String(o.no), '--data-dir', o.dataDir, ...(o.args ?? [])], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, COTERIE_LOG: process.env['COTERIE_LOG'] ?? 'warn', ...o.env },
    ...(o.cwd ? { cwd: o.cwd } : {}),
  });
  running.add(child);
  const exited = waitExit(child).finally(() => running.delete(child));
  let stderr = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (s: string) => { stderr += s; });
  const timeoutMs = o.timeoutMs ?? 10_000;
  try {
    const addr = await new Promise<{ host: string; port: number }>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`tracker ${o.no} did not start within ${timeoutMs} ms; stderr:\n${stderr}`)), timeoutMs);
      const check = () => {
        const m = /^tracker \d+ listening on (\S+):(\d+) \(data /m.exec(stderr);
        if (m) { clearTimeout(timer); child.stderr!.off('data', check); resolve({ host: m[1]!.replace(/^\[|\]$/g, ''), port: Number(m[2]) }); }
      };
      child.stderr!.on('data', check);
      void exited.then((code) => { clearTimeout(timer); reject(new Error(`tracker ${o.no} exited (${code}) before listening; stderr:\n${stderr}`)); });
      check();
    });
    const kill = async (sig: NodeJS.Signals) => { if (child.exitCode === null && child.signalCode === null) child.kill(sig); await exited; };
    return {
      pid: child.pid!, host: addr.host, port: addr.port, exited,
      stderrText: () => stderr,
      kill9: () => kill('SIGKILL'),
      stop: async (ms = 5_000) => {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), ms);
        try { return await exited; } finally { clearTimeout(t); }
      },
    };
  } catch (err) {
    child.kill('SIGKILL');
    await exited;
    throw err;
  }
}

/** Kills (SIGKILL, by PID) every tracker started by this module that is still running. */
export async function stopAllTrackers(): Promise<void> {
  const all = [...running];
  for (const c of all) c.kill('SIGKILL');
  await Promise.all(all.map(waitExit));
}

/**
 * A bare RPC client for tests: numbered calls, answers matched by id, raw writes for hostile
 * input. Lines arriving without a matching call (pushes, id -1 errors) are kept in `unmatched`.
 */
export class RpcTestClient {
  private nextId = 1;
  private waiting = new Map<number, (r: Response) => void>();
  private decoder = new LineDecoder();
  /** Answers nobody waited for (e.g. id -1 errors before a hang-up). */
  readonly unmatched: unknown[] = [];
  /** Resolves when the connection is closed (by either side). */
  readonly closed: Promise<void>;
  private isClosed = false;

  private constructor(readonly socket: Socket) {
    this.closed = new Promise((r) => socket.once('close', () => {
      this.isClosed = true;
      for (const w of this.waiting.values()) w({ id: -1, ok: false, error: { code: 'UNAVAILABLE', message: 'connection closed' } });
      this.waiting.clear();
      r();
    }));
    socket.on('error', () => { /* 'close' follows */ });
    socket.on('data', (chunk: Buffer) => {
      for (const line of this.decoder.push(chunk)) {
        const msg = JSON.parse(line) as Response;
        const w = this.waiting.get(msg.id);
        if (w) { this.waiting.delete(msg.id); w(msg); } else this.unmatched.push(msg);
      }
    });
  }

  /** Connects (bounded by `timeoutMs`, default 5 s). `localAddress` picks the source IP (e.g. 127.0.0.2). */
  static connect(port: number, host = '127.0.0.1', opts: { localAddress?: string; timeoutMs?: number } = {}): Promise<RpcTestClient> {
    return new Promise((resolve, reject) => {
      const s = connect({ port, host, ...(opts.localAddress ? { localAddress: opts.localAddress } : {}) });
      const timer = setTimeout(() => { s.destroy(); reject(new Error('connect timed out')); }, opts.timeoutMs ?? 5_000);
      s.once('connect', () => { clearTimeout(timer); resolve(new RpcTestClient(s)); });
      s.once('error', (e) => { clearTimeout(timer); reject(e); });
    });
  }

  /** One call; resolves with the response (ok or not). Rejects if no answer within `timeoutMs` (default 10 s). */
  call(op: OpName | string, args: unknown = {}, token?: string, timeoutMs = 10_000): Promise<Response> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      if (this.isClosed) { resolve({ id, ok: false, error: { code: 'UNAVAILABLE', message: 'connection closed' } }); return; }
      const timer = setTimeout(() => { this.waiting.delete(id); reject(new Error(`no answer to ${op} within ${timeoutMs} ms`)); }, timeoutMs);
      this.waiting.set(id, (r) => { clearTimeout(timer); resolve(r); });
      this.socket.write(encodeLine({ id, op, args, ...(token !== undefined ? { token } : {}) }));
    });
  }

  /** Like {@link call} but throws unless the answer is ok; returns the result. */
  async ok<T = Record<string, unknown>>(op: OpName | string, args: unknown = {}, token?: string): Promise<T> {
    const r = await this.call(op, args, token);
    if (!r.ok) throw new Error(`${op} failed: ${r.error.code} ${r.error.message}`);
    return r.result as T;
  }

  /** Writes raw bytes (hostile input). */
  writeRaw(data: string | Buffer): boolean {
    return this.isClosed ? false : this.socket.write(data);
  }

  close(): void { this.socket.destroy(); }
}
