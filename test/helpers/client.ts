/**
 * Test helpers for the client program: run a whole script of commands through a client's piped
 * stdin, or drive one interactively, a command at a time.
 *
 *   const r = await runClientScript({ infoFile, dataDir }, ['create_user alice pw', 'login alice pw']);
 *   // r.out: stdout lines, r.err: stderr lines, r.code: exit code
 *
 *   const c = await ClientDriver.start({ infoFile, dataDir });
 *   const { out, err } = await c.send('login alice pw');
 *   await c.close();            // end of input: the client logs out and exits
 *
 * The driver knows a command is done by sending, after it, a line that is an unknown command with
 * a unique name: commands run strictly in order, so once its `error:` line arrives every line of
 * the command before it has been written. Every process started here is tracked;
 * `stopAllClients()` (call it in an `after` hook) kills those still running, by PID.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { freePort } from './ports.js';

/** The compiled client entry point (dist/src/client/main.js). */
export const CLIENT_MAIN = fileURLToPath(new URL('../../src/client/main.js', import.meta.url));

export interface ClientOptions {
  infoFile: string;
  /** `--data-dir`; omitted, the client uses its default under `cwd`. */
  dataDir?: string;
  /** The client's peer address `IP:PORT`; default 127.0.0.1 and a free port. */
  addr?: string;
  /** More arguments (e.g. `--stay`). */
  args?: string[];
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /**
   * A command the client runs under, e.g. `['unshare', '-m', 'sh', '-c', '... && exec "$@"', 'sh']`:
   * the node command line is appended to it. The PID tracked is the wrapper's, which must exec node.
   */
  wrapper?: string[];
}

export interface ScriptResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** stdout split into lines (no trailing empty line). */
  out: string[];
  /** stderr split into lines. */
  err: string[];
}

const running = new Set<ChildProcess>();

function lines(s: string): string[] {
  const l = s.split('\n');
  if (l[l.length - 1] === '') l.pop();
  return l;
}

async function spawnClient(o: ClientOptions): Promise<{ child: ChildProcess; addr: string }> {
  const addr = o.addr ?? `127.0.0.1:${await freePort()}`;
  const dataDir = o.dataDir !== undefined ? ['--data-dir', o.dataDir] : [];
  const argv = [process.execPath, CLIENT_MAIN, addr, o.infoFile, ...dataDir, ...(o.args ?? [])];
  const cmd = [...(o.wrapper ?? []), ...argv];
  const child = spawn(cmd[0]!, cmd.slice(1), {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, COTERIE_LOG: process.env['COTERIE_LOG'] ?? 'info', ...o.env },
    ...(o.cwd ? { cwd: o.cwd } : {}),
  });
  running.add(child);
  child.once('exit', () => running.delete(child));
  child.stdin!.on('error', () => { /* the client may exit before reading everything */ });
  return { child, addr };
}

function exitOf(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  return new Promise((r) => child.once('exit', (code, signal) => r({ code, signal })));
}

/**
 * Runs `script` (one command a line) through a fresh client and waits for it to exit, at most
 * `timeoutMs` (then kills it and rejects with what it printed).
 */
export async function runClientScript(o: ClientOptions, script: string[], timeoutMs = 20_000): Promise<ScriptResult> {
  const { child } = await spawnClient(o);
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (s: string) => { stdout += s; });
  child.stderr!.setEncoding('utf8').on('data', (s: string) => { stderr += s; });
  child.stdin!.end(script.map((l) => l + '\n').join(''));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const { code, signal } = await exitOf(child);
  clearTimeout(timer);
  // Let the last buffered output arrive.
  await new Promise((r) => setImmediate(r));
  if (signal === 'SIGKILL') {
    throw new Error(`client did not exit within ${timeoutMs} ms\nstdout:\n${stdout}\nstderr:\n${stderr}`);
  }
  return { code, signal, stdout, stderr, out: lines(stdout), err: lines(stderr) };
}

/** What one command printed. */
export interface Reply { out: string[]; err: string[] }

/** A client process driven one command at a time (see the module comment). */
export class ClientDriver {
  private stdout = '';
  private stderr = '';
  private seq = 0;
  private waiter: (() => void) | null = null;
  /** Resolves when the process exits. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  private constructor(private readonly child: ChildProcess, readonly addr: string) {
    this.exited = exitOf(child);
    child.stdout!.setEncoding('utf8').on('data', (s: string) => { this.stdout += s; this.waiter?.(); });
    child.stderr!.setEncoding('utf8').on('data', (s: string) => { this.stderr += s; this.waiter?.(); });
    void this.exited.then(() => this.waiter?.());
  }

  static async start(o: ClientOptions): Promise<ClientDriver> {
    const { child, addr } = await spawnClient(o);
    return new ClientDriver(child, addr);
  }

  get pid(): number { return this.child.pid!; }

  /** Everything printed so far. */
  get allOut(): string { return this.stdout; }
  get allErr(): string { return this.stderr; }

  /** Sends one command line and resolves with what it printed (bounded by `timeoutMs`). */
  async send(line: string, timeoutMs = 15_000): Promise<Reply> {
    const outStart = this.stdout.length;
    const errStart = this.stderr.length;
    const marker = `__sync_${process.pid}_${++this.seq}__`;
    this.child.stdin!.write(`${line}\n${marker}\n`);
    const markerLine = new RegExp(`^error: unknown command "${marker}".*\\n`, 'm');
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = null;
        reject(new Error(`no answer to "${line}" within ${timeoutMs} ms\nstdout:\n${this.stdout.slice(outStart)}\nstderr:\n${this.stderr.slice(errStart)}`));
      }, timeoutMs);
      const check = (): void => {
        if (markerLine.test(this.stderr.slice(errStart))) { clearTimeout(timer); this.waiter = null; resolve(); return; }
        if (this.child.exitCode !== null || this.child.signalCode !== null) {
          clearTimeout(timer);
          this.waiter = null;
          reject(new Error(`client exited while running "${line}"\nstdout:\n${this.stdout.slice(outStart)}\nstderr:\n${this.stderr.slice(errStart)}`));
        }
      };
      this.waiter = check;
      check();
    });
    // The command's stdout was written before the marker's stderr line; give the pipe a moment.
    await new Promise((r) => setTimeout(r, 20));
    const err = lines(this.stderr.slice(errStart).replace(markerLine, ''));
    return { out: lines(this.stdout.slice(outStart)), err };
  }

  /** Sends a line without waiting for anything (e.g. `quit`). */
  write(line: string): void {
    this.child.stdin!.write(line + '\n');
  }

  /** Ends stdin and waits (bounded) for the client to exit; kills it if it does not. */
  async close(timeoutMs = 15_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    this.child.stdin!.end();
    const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    try { return await this.exited; } finally { clearTimeout(timer); }
  }

  /** Sends a signal (default SIGKILL) and waits for the exit. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
    return this.exited;
  }
}

/** Kills (SIGKILL, by PID) every client started by this module that is still running. */
export async function stopAllClients(): Promise<void> {
  const all = [...running];
  for (const c of all) c.kill('SIGKILL');
  await Promise.all(all.map((c) => exitOf(c)));
}

/**
 * Runs the client with exactly `argv` (for testing its command line), feeding `input` on stdin,
 * and waits (bounded) for it to exit.
 */
export async function runClientArgs(argv: string[], o: { cwd?: string; input?: string; timeoutMs?: number } = {}): Promise<ScriptResult> {
  const child = spawn(process.execPath, [CLIENT_MAIN, ...argv], {
    stdio: ['pipe', 'pipe', 'pipe'], ...(o.cwd ? { cwd: o.cwd } : {}),
  });
  running.add(child);
  child.once('exit', () => running.delete(child));
  child.stdin!.on('error', () => undefined);
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (s: string) => { stdout += s; });
  child.stderr!.setEncoding('utf8').on('data', (s: string) => { stderr += s; });
  child.stdin!.end(o.input ?? '');
  const timeoutMs = o.timeoutMs ?? 20_000;
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const { code, signal } = await exitOf(child);
  clearTimeout(timer);
  await new Promise((r) => setImmediate(r));
  if (signal === 'SIGKILL') throw new Error(`client did not exit within ${timeoutMs} ms\nstdout:\n${stdout}\nstderr:\n${stderr}`);
  return { code, signal, stdout, stderr, out: lines(stdout), err: lines(stderr) };
}
