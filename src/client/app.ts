/**
 * Wiring of the client process: arguments, local state, log, swarm engine, tracker link, shell;
 * and how the process ends.
 *
 * Endings: `quit` (log out, exit); end of piped input (wait for running downloads, log out, exit;
 * with --stay keep serving peers until a signal); end of terminal input, Ctrl-D or Ctrl-C (as
 * quit); SIGTERM / SIGINT / SIGHUP (log out, exit). Each logs out within a bounded time and exits
 * 0. Exit 2 for bad arguments, 1 when the client cannot start (state, peer port).
 */
import { randomBytes } from 'node:crypto';
import { join, resolve } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { readTrackerInfo, type Endpoint } from '../common/config.js';
import { CoterieError, describe } from '../common/errors.js';
import { fileLogger, type Logger } from '../common/log.js';
import type { SwarmEngine } from '../swarm/api.js';
import { createSwarmEngine, type SwarmEngineOptions } from '../swarm/engine.js';
import type { AuthorizeHook } from '../swarm/peer-server.js';
import { AccessGate } from './access.js';
import { parseClientArgs, USAGE } from './args.js';
import { endSession } from './commands/accounts.js';
import { Serving, type ClientContext } from './commands/context.js';
import { HistoryFile, LocalState } from './local-state.js';
import { Shell, wantColor } from './shell.js';
import { TrackerLink } from './tracker-link.js';


/** The process's streams and surroundings. */
export interface ClientIO {
  stdin: Readable;
  stdout: Writable;
  stderr: Writable;
  isTTY: boolean;
  env: NodeJS.ProcessEnv;
  cwd: string;
}

/** Longest a shutdown may take (pausing downloads, logging out) before the process exits anyway. */
const SHUTDOWN_MS = 5000;

function processIO(): ClientIO {
  return {
    stdin: process.stdin, stdout: process.stdout, stderr: process.stderr,
    isTTY: Boolean(process.stdin.isTTY && process.stdout.isTTY), env: process.env, cwd: process.cwd(),
  };
}

function listenError(err: unknown, peer: string): string {
  // The system error may come wrapped (as the cause of a CoterieError).
  const sys = (err as { cause?: unknown }).cause ?? err;
  const code = (sys as { code?: string }).code;
  if (code === 'EADDRINUSE') return `cannot serve peers on ${peer}: the port is in use (choose another <IP>:<PORT>)`;
  if (code === 'EADDRNOTAVAIL') return `cannot serve peers on ${peer}: this machine has no such address (choose another <IP>:<PORT>)`;
  if (code === 'EACCES') return `cannot serve peers on ${peer}: permission denied (choose a port above 1023)`;
  return `cannot serve peers on ${peer}: ${describe(err)}`;
}

/**
 * The authorize hook of `--open-share`: every peer may fetch what this client shares, ticket or
 * not (standard BitTorrent clients never send one). Logged, so an operator can see who came.
 */
function openAccess(logger: Logger): AuthorizeHook {
  return (req) => {
    logger.info({ remote: req.remote, infoHash: req.infoHashHex, ticket: req.ticket !== undefined }, 'open share: peer admitted without a ticket check');
    return true;
  };
}

async function bounded<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<undefined>((r) => { timer = setTimeout(() => r(undefined), ms); });
  try { return await Promise.race([p, t]); } finally { clearTimeout(timer); }
}

/** Runs the client until it ends; resolves with the exit code. */
export async function runClient(argv: readonly string[], io: ClientIO = processIO()): Promise<number> {
  const fail = (msg: string, code: number, usage = false): number => {
    io.stderr.write(`error: ${msg}\n${usage ? USAGE + '\n' : ''}`);
    return code;
  };
  let args;
  try { args = parseClientArgs(argv); } catch (err) { return fail(describe(err), 2, true); }
  if (args.help) { io.stdout.write(USAGE + '\n'); return 0; }
  let trackers: Endpoint[];
  try { trackers = readTrackerInfo(resolve(io.cwd, args.trackerInfoFile)); } catch (err) { return fail(describe(err), 2, true); }

  const dataDir = resolve(io.cwd, args.dataDir ?? join('.coterie', `client-${args.peer.host}-${args.peer.port}`));
  let state: LocalState;
  try { state = LocalState.open(dataDir); } catch (err) { return fail(describe(err), 1); }
  const logger = fileLogger('client', join(dataDir, 'client.log'));
  logger.info({ peer: args.peerText, trackers, dataDir }, 'client starting');

  const access = new AccessGate(logger);
  if (args.openShare) logger.warn('--open-share: serving every peer, with or without an access ticket');
  let engine: SwarmEngine;
  try {
    const opts: SwarmEngineOptions = { listen: args.peer, resume: state, logger, authorize: args.openShare ? openAccess(logger) : access.authorizeUntil };
    if (args.maxUploadRate !== undefined) opts.maxUploadRate = args.maxUploadRate;
    if (args.maxDownloadRate !== undefined) opts.maxDownloadRate = args.maxDownloadRate;
    // Hidden benchmark knob: COTERIE_WRITE_MODE=sync|async picks how verified pieces are written.
    const wm = process.env['COTERIE_WRITE_MODE'];
    if (wm === 'sync' || wm === 'async') opts.writeMode = wm;
    engine = createSwarmEngine(opts);
    await engine.listen();
  } catch (err) {
    logger.error({ err }, 'cannot start the peer server');
    state.close();
    return fail(listenError(err, args.peerText), 1);
  }

  const shell = new Shell({ input: io.stdin, stdout: io.stdout, stderr: io.stderr, terminal: io.isTTY, color: wantColor(io.isTTY, io.env) });
  const serving = new Serving();
  const link = new TrackerLink({
    trackers, peer: args.peerText, clientId: state.clientId, shares: () => serving.list(), logger,
    onSessionLost: (err) => {
      // Serving without a session would be serving for nobody: stop until the next login.
      engine.unseedAll();
      void engine.pauseAll();
      serving.clear();
      shell.out.warn(`${err.message}; log in again (login <user_id> <passwd>)`);
    },
    onRenewed: (r) => access.addKeys(r.trackerKeys),
  });
  const ctx: ClientContext = {
    link, state, engine, out: shell.out, access, logger, peer: args.peerText, clientId: state.clientId, cwd: io.cwd,
    serving, knownGroups: [], newId: () => randomBytes(8).toString('hex'), quitRequested: false, background: new Set(),
  };

  let closing: Promise<void> | null = null;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      await bounded(Promise.allSettled([...ctx.background]), SHUTDOWN_MS);
      if (link.user !== undefined) {
        await bounded(endSession(ctx).catch((err) => logger.warn({ err: describe(err) }, 'logout at exit failed')), SHUTDOWN_MS);
      }
      link.close();
      await bounded(engine.close().catch((err) => logger.warn({ err: describe(err) }, 'engine close failed')), SHUTDOWN_MS);
      state.close();
      logger.info('client stopped');
    })();
    return closing;
  };

  let resolveSignal!: (sig: string) => void;
  const signalled = new Promise<string>((r) => { resolveSignal = r; });
  const onSignal = (sig: NodeJS.Signals): void => {
    logger.info({ sig }, 'signal');
    resolveSignal(sig);
    // A signal ends the process even in the middle of a command.
    void close().then(() => process.exit(0));
  };
  const signals: NodeJS.Signals[] = ['SIGTERM', 'SIGINT', 'SIGHUP'];
  for (const s of signals) process.on(s, onSignal);
  const onRejection = (err: unknown): void => { logger.error({ err }, 'unhandled rejection'); };
  process.on('unhandledRejection', onRejection);
  io.stdout.on('error', () => { /* a closed stdout must not kill the client */ });

  try {
    const end = await shell.run(ctx, io.isTTY ? new HistoryFile(join(dataDir, 'history')) : undefined);
    if (end === 'eof' && !io.isTTY) {
      if (args.stay) {
        logger.info('end of input: staying to serve peers until a signal');
        await signalled;
        await close();
        return 0;
      }
      // Downloads run in the background; at the end of a script they are what is left to do.
      await engine.whenIdle();
      // Let the completion callbacks of the last downloads register their background work.
      await new Promise((r) => setImmediate(r));
    }
    await close();
    if (end === 'eof' && io.isTTY) shell.out.line('bye');
    return 0;
  } catch (err) {
    logger.error({ err }, 'client failed');
    io.stderr.write(`error: ${err instanceof CoterieError ? err.message : 'internal error in the client (details in client.log)'}\n`);
    await close();
    return 1;
  } finally {
    for (const s of signals) process.off(s, onSignal);
    process.off('unhandledRejection', onRejection);
  }
}
