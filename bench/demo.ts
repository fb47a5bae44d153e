/**
 * `npm run demo`: Coterie from nothing to a verified download in one command, narrated for a
 * newcomer.
 *
 * In a throwaway directory under the OS temp dir it starts two real trackers (one tracker_info
 * file with two lines, free ports on 127.0.0.1) and three real clients (alice, bob, carol, each in
 * a home directory of its own, as if on three machines). The clients are driven through stdin
 * exactly as a user or a script drives them, and every command and everything it printed is shown:
 * accounts, a group with join requests accepted, a generated random file shared by two seeders
 * (alice and bob both `upload_file` their copy), carol's download with live progress (polling
 * `show_downloads`), the result's SHA-256 checked against the source, and both trackers' status
 * showing they hold the same state. Then everything is stopped by PID and the directory removed,
 * also on Ctrl-C or failure. Exit 0 when every step worked, 1 when one failed, 130 on Ctrl-C.
 *
 *   npm run demo                      256 MiB file
 *   npm run demo -- --size 64         file size in MiB (1 to 1024)
 *   npm run demo -- --keep            leave the directory (logs, data dirs) for a look afterwards
 *
 * The programs are started as `node dist/src/{tracker,client}/main.js`, which is what the
 * `./tracker` and `./client` shims run once they have checked the build (`npm run demo` has just
 * built). Each client's stdout and stderr share one pipe, so its lines arrive in the order it
 * wrote them; after each command the demo writes a sentinel line (an unknown command), and the
 * `error: unknown command` answer to it marks the end of that command's output.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import { closeSync, copyFileSync, createReadStream, existsSync, mkdirSync, mkdtempSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (this file runs as dist/bench/demo.js). */
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const MiB = 1024 * 1024;
const GROUP = 'friends';
const FILE = 'holiday-video.bin';

// ---------------------------------------------------------------------------------------------
// Output: plain words, commands in bold on a terminal.

const tty = Boolean(process.stdout.isTTY);
const color = tty && (process.env['NO_COLOR'] === undefined || process.env['NO_COLOR'] === '');
const paint = (code: string, s: string): string => (color ? `\x1b[${code}m${s}\x1b[0m` : s);
const bold = (s: string): string => paint('1', s);
const dim = (s: string): string => paint('2', s);
const red = (s: string): string => paint('31', s);
const green = (s: string): string => paint('32', s);

const t0 = Date.now();
let stepNo = 0;
function step(title: string, ...explain: string[]): void {
  stepNo++;
  console.log(`\n${bold(`${stepNo}. ${title}`)}  ${dim(`(${((Date.now() - t0) / 1000).toFixed(1)} s)`)}`);
  for (const e of explain) console.log(`   ${e}`);
}
function say(s: string): void { console.log(`   ${s}`); }
function shellLine(cmd: string): void { console.log(`   ${dim('$')} ${bold(cmd)}`); }
function outputLine(s: string): void { console.log(`       ${s.startsWith('error: ') ? red(s) : s}`); }

// ---------------------------------------------------------------------------------------------
// Processes: every child is tracked by PID and killed on the way out, whatever the way out is.

const children = new Set<ChildProcess>();
let workDir: string | null = null;
let keep = false;
let ending = false;

function alive(c: ChildProcess): boolean { return c.exitCode === null && c.signalCode === null; }

function exitOf(c: ChildProcess): Promise<void> {
  return alive(c) ? new Promise((r) => c.once('exit', () => r())) : Promise.resolve();
}

/** A child whose stdout and stderr arrive as lines, in the order it wrote them. */
class Proc {
  readonly lines: string[] = [];
  private rest = '';
  private wake: Array<() => void> = [];

  constructor(readonly name: string, readonly child: ChildProcess) {
    children.add(child);
    child.once('exit', () => { children.delete(child); this.notify(); });
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (s: string) => {
      this.rest += s;
      const parts = this.rest.split('\n');
      this.rest = parts.pop()!;
      this.lines.push(...parts);
      this.notify();
    });
    child.stdin?.on('error', () => { /* the child closed its input: noticed through its exit */ });
  }

  get pid(): number { return this.child.pid!; }

  private notify(): void { for (const w of this.wake.splice(0)) w(); }

  /** Index of the first line from `from` on that satisfies `match`; throws on exit or timeout. */
  async waitLine(match: (l: string) => boolean, from: number, timeoutMs: number, what: string): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      for (let i = from; i < this.lines.length; i++) if (match(this.lines[i]!)) return i;
      from = Math.max(from, this.lines.length);
      if (!alive(this.child)) {
        throw new Error(`${this.name} exited (${this.child.exitCode ?? this.child.signalCode}) while waiting for ${what}; its last lines:\n${this.tail()}`);
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`${this.name}: no ${what} within ${Math.round(timeoutMs / 1000)} s; its last lines:\n${this.tail()}`);
      await new Promise<void>((r) => { const t = setTimeout(r, Math.min(left, 500)); this.wake.push(() => { clearTimeout(t); r(); }); });
    }
  }

  /** The last `n` lines it printed (without the demo's own end-of-command markers). */
  tail(n = 8): string {
    const own = this.lines.filter((l) => !l.includes('__demo_end_'));
    return own.slice(-n).map((l) => `     | ${l}`).join('\n') || '     | (nothing)';
  }
}

/** Starts `node dist/src/<program>/main.js args` in `cwd`, stderr merged into stdout. */
function startProgram(name: string, program: 'tracker' | 'client', args: string[], cwd: string, env: NodeJS.ProcessEnv): Proc {
  const main = join(ROOT, 'dist', 'src', program, 'main.js');
  // `exec` replaces the shell, so the PID we hold is the program's own.
  const child = spawn('/bin/sh', ['-c', 'exec "$0" "$@" 2>&1', process.execPath, '--enable-source-maps', main, ...args], {
    cwd, stdio: ['pipe', 'pipe', 'inherit'], env: { ...process.env, ...env },
  });
  return new Proc(name, child);
}

/** Kills every child still running (SIGKILL, by PID), waits for them, removes the work dir. */
async function cleanUp(): Promise<void> {
  const left = [...children];
  for (const c of left) { try { process.kill(c.pid!, 'SIGKILL'); } catch { /* already gone */ } }
  await Promise.race([Promise.all(left.map(exitOf)), new Promise((r) => setTimeout(r, 3000))]);
  removeWorkDir();
}

function removeWorkDir(): void {
  if (workDir === null || keep) return;
  try { rmSync(workDir, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 }); } catch { /* best effort */ }
  workDir = null;
}

// Last resort if the process ends some other way: nothing may outlive the demo.
process.on('exit', () => {
  for (const c of children) { try { process.kill(c.pid!, 'SIGKILL'); } catch { /* gone */ } }
  removeWorkDir();
});
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(sig, () => {
    if (ending) return;
    ending = true;
    console.log(`\n${red(`interrupted (${sig})`)}: stopping every process the demo started and removing its directory...`);
    void cleanUp().then(() => process.exit(130));
  });
}

// ---------------------------------------------------------------------------------------------
// The programs.

/** A client process driven through its stdin, one command at a time. */
class Client {
  private seq = 0;
  constructor(readonly user: string, readonly proc: Proc, readonly home: string, readonly peer: string) {}

  /**
   * Runs one command, shows it and what it printed, and returns the printed lines. An `error: `
   * line fails the demo unless `expectError` is set.
   */
  async run(command: string, opts: { expectError?: boolean; quiet?: boolean; timeoutMs?: number } = {}): Promise<string[]> {
    const mark = `__demo_end_${++this.seq}`;
    const from = this.proc.lines.length;
    if (!opts.quiet) console.log(`   ${dim(`${this.user}>`)} ${bold(command)}`);
    this.proc.child.stdin!.write(`${command}\n${mark}\n`);
    const end = await this.proc.waitLine((l) => l.includes(mark), from, opts.timeoutMs ?? 30_000, `answer to "${command}"`);
    const out = this.proc.lines.slice(from, end);
    if (!opts.quiet) for (const l of out) outputLine(l);
    const errors = out.filter((l) => l.startsWith('error: '));
    if (errors.length > 0 && !opts.expectError) throw new Error(`${this.user}'s "${command}" failed: ${errors.join(' / ')}`);
    if (errors.length === 0 && opts.expectError) throw new Error(`${this.user}'s "${command}" was expected to be refused, and was not`);
    return out;
  }

  /** `quit` (logs out, exits); killed if it has not exited within 10 s. */
  async quit(): Promise<void> {
    if (!alive(this.proc.child)) return;
    console.log(`   ${dim(`${this.user}>`)} ${bold('quit')}`);
    const from = this.proc.lines.length;
    this.proc.child.stdin!.end('quit\n');
    const t = setTimeout(() => { try { process.kill(this.proc.pid, 'SIGKILL'); } catch { /* gone */ } }, 10_000);
    await exitOf(this.proc.child);
    clearTimeout(t);
    for (const l of this.proc.lines.slice(from)) outputLine(l);
  }
}

/** `count` free TCP ports on 127.0.0.1 (held open together so they differ, then released). */
async function freePorts(count: number): Promise<number[]> {
  const servers: Server[] = [];
  try {
    const ports: number[] = [];
    for (let i = 0; i < count; i++) {
      const s = createServer();
      servers.push(s);
      await new Promise<void>((r, j) => { s.once('error', j); s.listen(0, '127.0.0.1', () => r()); });
      ports.push((s.address() as { port: number }).port);
    }
    return ports;
  } finally {
    await Promise.all(servers.map((s) => new Promise((r) => s.close(() => r(undefined)))));
  }
}

/** Writes `size` random bytes to `path`; returns their SHA-256 (hex). */
function makeRandomFile(path: string, size: number): string {
  const buf = Buffer.allocUnsafe(Math.min(size, 8 * MiB));
  const h = createHash('sha256');
  const fd = openSync(path, 'w');
  try {
    for (let left = size; left > 0;) {
      const b = buf.subarray(0, Math.min(left, buf.length));
      randomFillSync(b);
      h.update(b);
      for (let off = 0; off < b.length;) off += writeSync(fd, b, off, b.length - off);
      left -= b.length;
    }
  } finally {
    closeSync(fd);
  }
  return h.digest('hex');
}

function sha256File(path: string): Promise<string> {
  return new Promise((res, rej) => {
    const h = createHash('sha256');
    createReadStream(path, { highWaterMark: 4 * MiB })
      .on('data', (b) => h.update(b)).on('error', rej).on('end', () => res(h.digest('hex')));
  });
}

/** `tracker <info> <no> --status`: what a running tracker says about itself. */
async function trackerStatus(dir: string, no: number): Promise<string[]> {
  const p = startProgram(`tracker ${no} --status`, 'tracker', ['tracker_info.txt', String(no), '--status'], dir, {});
  await exitOf(p.child);
  if (p.child.exitCode !== 0) throw new Error(`tracker_info.txt ${no} --status failed:\n${p.tail()}`);
  return p.lines;
}

function field(lines: string[], key: string): string {
  const l = lines.find((x) => x.startsWith(`${key}:`));
  return l === undefined ? '' : l.slice(key.length + 1).trim();
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------
// The demo.

function parseArgs(argv: string[]): { sizeMiB: number; keep: boolean } {
  let sizeMiB = 256;
  let k = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--keep') k = true;
    else if (a === '--size' || a.startsWith('--size=')) {
      const v = a.includes('=') ? a.slice(a.indexOf('=') + 1) : argv[++i];
      sizeMiB = Number(v);
      if (!Number.isInteger(sizeMiB) || sizeMiB < 1 || sizeMiB > 1024) throw new Error(`--size wants a whole number of MiB from 1 to 1024, not "${v}"`);
    } else if (a === '--help' || a === '-h') {
      console.log('usage: npm run demo [-- --size MIB] [--keep]\n  --size MIB  size of the shared file (default 256)\n  --keep      keep the demo directory afterwards');
      process.exit(0);
    } else throw new Error(`unknown option ${a} (try --help)`);
  }
  return { sizeMiB, keep: k };
}

async function demo(sizeMiB: number): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'coterie-demo-'));
  workDir = dir;
  console.log(bold('Coterie demo: two trackers, three clients, one group, one file shared by two seeders.'));
  say(`Everything happens in ${dir} and is removed at the end${keep ? ' (kept: --keep)' : ''}.`);
  say(`The demo types the client commands for you; each one is shown with what the client printed.`);

  // 1. Trackers.
  const [tp1, tp2, cpA, cpB, cpC] = await freePorts(5) as [number, number, number, number, number];
  step('Start two trackers',
    'Trackers keep the accounts, groups and the list of who shares what; they never see file data.',
    'Every tracker listed in tracker_info.txt accepts every command and copies its changes to the others.');
  writeFileSync(join(dir, 'tracker_info.txt'), `127.0.0.1:${tp1}\n127.0.0.1:${tp2}\n`);
  say(`tracker_info.txt (one tracker a line):`);
  for (const p of [tp1, tp2]) say(`    127.0.0.1:${p}`);
  const trackers: Proc[] = [];
  for (const no of [1, 2]) {
    shellLine(`./tracker tracker_info.txt ${no}`);
    trackers.push(startProgram(`tracker ${no}`, 'tracker', ['tracker_info.txt', String(no)], dir, { COTERIE_LOG: 'warn' }));
  }
  for (const t of trackers) {
    const i = await t.waitLine((l) => l.includes(' listening on '), 0, 30_000, 'listening line');
    outputLine(t.lines[i]!);
  }

  // 2. Clients.
  step('Start three clients, each in its own directory (as if on three machines)',
    'The address given to a client is where it serves pieces to other clients.',
    'Its own state (what it shares, unfinished downloads, client.log) goes to .coterie/ in its directory.');
  const mk = (user: string, port: number): Client => {
    const home = join(dir, user);
    mkdirSync(home);
    const peer = `127.0.0.1:${port}`;
    shellLine(`cd ${user} && ./client ${peer} ../tracker_info.txt`);
    return new Client(user, startProgram(user, 'client', [peer, '../tracker_info.txt'], home, { NO_COLOR: '1' }), home, peer);
  };
  const alice = mk('alice', cpA);
  const bob = mk('bob', cpB);
  const carol = mk('carol', cpC);
  const all = [alice, bob, carol];
  say(dim('(piped input: no prompt; each command runs to the end before the next is read)'));

  // 3. Accounts.
  step('Create an account and log in on each client');
  for (const c of all) {
    await c.run(`create_user ${c.user} ${c.user}-pw`);
    await c.run(`login ${c.user} ${c.user}-pw`);
  }

  // 4. Group.
  step(`alice creates the group "${GROUP}"; bob and carol ask to join`,
    'Files are shared inside a group, and only its members can see or fetch them.');
  await alice.run(`create_group ${GROUP}`);
  await bob.run(`join_group ${GROUP}`);
  await carol.run(`join_group ${GROUP}`);
  say(dim('Until the owner accepts, carol is not a member, so she is refused:'));
  await carol.run(`list_files ${GROUP}`, { expectError: true });

  step('alice, the owner, looks at the requests and accepts both');
  await alice.run(`list_requests ${GROUP}`);
  await alice.run(`accept_request ${GROUP} bob`);
  await alice.run(`accept_request ${GROUP} carol`);
  await carol.run('list_groups');

  // 5. Sharing.
  step(`alice and bob each have a copy of a ${sizeMiB} MiB file and share it`,
    'upload_file hashes the file (SHA-1 per piece, SHA-256 of the whole) and tells the tracker;',
    'the file itself stays where it is and is served by the client from there.');
  const source = join(alice.home, FILE);
  const wantSha = makeRandomFile(source, sizeMiB * MiB);
  copyFileSync(source, join(bob.home, FILE));
  say(dim(`(generated ${FILE}: ${sizeMiB} MiB of random bytes, SHA-256 ${wantSha.slice(0, 16)}...; copied to bob)`));
  await alice.run(`upload_file ${FILE} ${GROUP}`, { timeoutMs: 120_000 });
  await bob.run(`upload_file ${FILE} ${GROUP}`, { timeoutMs: 120_000 });
  await carol.run(`list_files ${GROUP}`);

  // 6. Download.
  step('carol downloads it from both seeders at once',
    'download_file returns at once; the download runs in the background, so carol polls show_downloads.',
    'Pieces travel client to client over the BitTorrent wire protocol; each is SHA-1 checked on arrival.');
  mkdirSync(join(carol.home, 'downloads'));
  await carol.run(`download_file ${GROUP} ${FILE} downloads/`);
  console.log(`   ${dim('carol>')} ${bold('show_downloads')}  ${dim('(four times a second)')}`);
  const dlStart = Date.now();
  let last = '';
  let lastPrinted = 0;
  for (;;) {
    const lines = await carol.run('show_downloads', { quiet: true });
    const line = lines.find((l) => l.includes(`[${GROUP}] ${FILE}`)) ?? lines.join(' / ');
    const done = line.startsWith('[C]');
    if (line.startsWith('[F]')) throw new Error(`the download failed: ${line}`);
    if (tty) {
      process.stdout.write(`\r\x1b[K       ${line}`);
      if (done) process.stdout.write('\n');
    } else if (done || (line !== last && Date.now() - lastPrinted >= 500)) {
      // Not a terminal: no redraws, so a line every half second at most.
      outputLine(line);
      lastPrinted = Date.now();
    }
    last = line;
    if (done) break;
    if (Date.now() - dlStart > 180_000) throw new Error(`the download did not finish in 180 s; last status: ${line}`);
    await sleep(250);
  }
  const secs = (Date.now() - dlStart) / 1000;
  say(`done in about ${secs.toFixed(1)} s (${(sizeMiB / secs).toFixed(0)} MiB/s, as seen by polling)`);

  // 7. Verify.
  step('Check the result: the SHA-256 of carol\'s copy must equal the source\'s',
    'The client already checked every piece and the whole file before saying [C]; this checks again from outside.');
  const got = join(carol.home, 'downloads', FILE);
  if (!existsSync(got)) throw new Error(`carol's download says complete but ${got} does not exist`);
  const gotSha = await sha256File(got);
  say(`source        ${wantSha}`);
  say(`carol's copy  ${gotSha}`);
  if (gotSha !== wantSha) throw new Error('the downloaded file differs from the source');
  say(green('identical'));
  say(dim('A finished download is shared by its downloader too: now there are three seeders.'));
  await carol.run(`list_files ${GROUP}`);

  // 8. Replication.
  step('Ask both trackers for their status',
    'All three clients talk to tracker 1 (the first line of tracker_info.txt; they move to the next one',
    'by themselves if it fails). Tracker 2 got every change by replication: both hold the same rows.');
  let s1: string[] = [];
  let s2: string[] = [];
  for (let tries = 0; ; tries++) {
    [s1, s2] = await Promise.all([trackerStatus(dir, 1), trackerStatus(dir, 2)]);
    if (field(s1, 'digest') !== '' && field(s1, 'digest') === field(s2, 'digest')) break;
    if (tries >= 20) throw new Error(`the trackers' states differ after 10 s:\n${s1.join('\n')}\n---\n${s2.join('\n')}`);
    await sleep(500);
  }
  shellLine('./tracker tracker_info.txt 2 --status');
  for (const l of s2) outputLine(l);
  say(`tracker 1 digest ${field(s1, 'digest').slice(0, 16)}...  tracker 2 digest ${field(s2, 'digest').slice(0, 16)}...  ${green('same state')}`);

  // 9. Stop.
  step('Stop everything', 'quit logs out and exits; a tracker stops cleanly on SIGTERM or Ctrl-C.');
  for (const c of all) await c.quit();
  for (const [i, t] of trackers.entries()) {
    say(`kill -TERM ${t.pid}   ${dim(`(tracker ${i + 1})`)}`);
    try { process.kill(t.pid, 'SIGTERM'); } catch { /* gone */ }
  }
  await Promise.race([Promise.all(trackers.map((t) => exitOf(t.child))), sleep(8000)]);
}

async function main(): Promise<number> {
  let opts;
  try { opts = parseArgs(process.argv.slice(2)); } catch (err) {
    console.error(`error: ${(err as Error).message}`);
    return 2;
  }
  keep = opts.keep;
  try {
    await demo(opts.sizeMiB);
  } catch (err) {
    if (ending) return 130;
    ending = true;
    console.log(`\n${red('demo failed')}: ${err instanceof Error ? err.message : String(err)}`);
    if (workDir !== null) {
      console.log(keep
        ? `   kept for a look: ${workDir} (each client logs to .coterie/*/client.log in its directory)`
        : '   to look at the logs afterwards, run it again with: npm run demo -- --keep');
    }
    await cleanUp();
    return 1;
  }
  const where = workDir;
  await cleanUp();
  console.log(`\n${green('demo finished')} in ${((Date.now() - t0) / 1000).toFixed(1)} s; ${keep ? `kept ${where}` : 'every process stopped, directory removed'}.`);
  console.log('   Try it yourself: README.md shows how to start a tracker and a client by hand.');
  return 0;
}

void main().then((code) => process.exit(code));
