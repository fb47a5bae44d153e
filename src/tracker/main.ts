/**
 * The tracker program: `tracker <tracker_info_file> <tracker_no> [--data-dir DIR] [--status]`.
 *
 * Thin: parses the command line, opens the store, starts a {@link TrackerNode} and handles
 * signals. The first stderr line is plain text, `tracker <no> listening on <ip>:<port> (data <dir>)`
 * (scripts wait for it); pino JSON logs follow on stderr. `--status` asks a running tracker for its
 * state and prints it. Exit codes: 0 ok, 1 runtime failure, 2 bad command line.
 */
import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { CoterieError, describe } from '../common/errors.js';
import { formatEndpoint, readTrackerInfo, type Endpoint } from '../common/config.js';
import { stderrLogger } from '../common/log.js';
import { TrackerNode } from './node.js';
import { replicateNode, type ReplicationHandle } from './replication/attach.js';
import { HybridClock } from './store/hlc.js';
import { SqliteStore } from './store/sqlite-store.js';
import { fetchStatus, formatStatus } from './status-cli.js';

const USAGE = 'usage: tracker <tracker_info_file> <tracker_no> [--data-dir DIR] [--status]';

/** The parsed command line. */
export interface TrackerArgs { infoFile: string; trackerNo: number; dataDir: string | null; status: boolean }

/** Parses argv (without node and script). Throws a USAGE CoterieError. */
export function parseTrackerArgs(argv: readonly string[]): TrackerArgs {
  const pos: string[] = [];
  let dataDir: string | null = null, status = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--data-dir') {
      const v = argv[++i];
      if (v === undefined || v === '') throw new CoterieError('USAGE', `--data-dir needs a directory\n${USAGE}`);
      dataDir = v;
    } else if (a.startsWith('--data-dir=')) {
      dataDir = a.slice('--data-dir='.length);
      if (dataDir === '') throw new CoterieError('USAGE', `--data-dir needs a directory\n${USAGE}`);
    } else if (a === '--status') status = true;
    else if (a === '-h' || a === '--help') throw new CoterieError('USAGE', USAGE);
    else if (a.startsWith('-') && a !== '-') throw new CoterieError('USAGE', `unknown option ${a}\n${USAGE}`);
    else pos.push(a);
  }
  if (pos.length !== 2) throw new CoterieError('USAGE', `expected 2 arguments, got ${pos.length}\n${USAGE}`);
  const no = pos[1]!;
  if (!/^\d+$/.test(no) || Number(no) < 1) throw new CoterieError('USAGE', `tracker_no must be a line number from 1, got "${no}"`);
  return { infoFile: pos[0]!, trackerNo: Number(no), dataDir, status };
}

function fail(code: number, message: string): never {
  // One line: the contract is a single `error: ` line; details (usage) go on the same line.
  process.stderr.write(`error: ${message.replace(/\n/g, '; ')}\n`);
  process.exit(code);
}

async function main(): Promise<void> {
  let args: TrackerArgs;
  let endpoints: Endpoint[];
  try {
    args = parseTrackerArgs(process.argv.slice(2));
    endpoints = readTrackerInfo(resolve(args.infoFile));
  } catch (err) {
    fail(2, describe(err));
  }
  if (args.trackerNo > endpoints.length) {
    fail(2, `tracker_no ${args.trackerNo} is past the end of ${args.infoFile} (${endpoints.length} tracker(s) listed)`);
  }
  const me = endpoints[args.trackerNo - 1]!;

  if (args.status) {
    try {
      const st = await fetchStatus(me, 5_000);
      process.stdout.write(formatStatus(st));
      process.exit(0);
    } catch (err) {
      fail(1, `cannot get the status of tracker ${args.trackerNo} at ${formatEndpoint(me)}: ${describe(err)}`);
    }
  }

  const dataDir = resolve(args.dataDir ?? `.coterie/tracker-${args.trackerNo}`);
  let store: SqliteStore;
  try {
    mkdirSync(dataDir, { recursive: true });
    store = new SqliteStore({ path: resolve(dataDir, 'tracker.db'), clock: new HybridClock() });
  } catch (err) {
    fail(1, describe(err));
  }
  const logger = stderrLogger('tracker');
  let node: TrackerNode;
  try {
    node = await TrackerNode.start({ store, logger, host: me.host, port: me.port, trackerNo: args.trackerNo, trackerCount: endpoints.length });
  } catch (err) {
    store.close();
    const code = (err as { code?: string }).code;
    const why = code === 'EADDRINUSE' ? 'the address is already in use' : code === 'EADDRNOTAVAIL' ? 'that address is not on this machine' : describe(err);
    fail(1, `cannot listen on ${formatEndpoint(me)}: ${why}`);
  }
  // Every other line of tracker_info is a tracker this one keeps in sync with.
  let replication: ReplicationHandle | null = null;
  let stopping = false;
  const stop = (sig: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal: sig }, 'shutting down');
    try { replication?.stop(); } catch (err) { logger.error({ err: describe(err) }, 'error while stopping replication'); }
    node.close().then(() => process.exit(0), (err) => { logger.error({ err: describe(err) }, 'error while closing'); process.exit(1); });
    setTimeout(() => process.exit(1), 5_000).unref();
  };
  // Handlers go in before the listening line: a script may signal as soon as it reads that line.
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  // A bug must not take the tracker down for everyone: log it with its stack and keep serving.
  process.on('uncaughtException', (err) => logger.error({ err: describe(err), stack: err.stack }, 'uncaught exception'));
  process.on('unhandledRejection', (err) => logger.error({ err: describe(err) }, 'unhandled rejection'));

  // Written before any log line, synchronously: scripts wait for this exact line.
  process.stderr.write(`tracker ${args.trackerNo} listening on ${formatEndpoint(node.address)} (data ${dataDir})\n`);
  logger.info({ origin: store.origin, trackers: endpoints.length }, 'tracker started');
  try {
    replication = replicateNode(node, { self: me, trackers: endpoints, dataDir, log: logger });
  } catch (err) {
    logger.error({ err: describe(err) }, 'replication failed to start; serving without it');
  }
}

void main();
