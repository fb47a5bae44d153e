/**
 * The client's command line:
 *   client <IP>:<PORT> <tracker_info_file> [--data-dir DIR] [--stay] [--max-upload RATE] [--max-download RATE] [--open-share]
 * Pure: returns the parsed options or throws UsageError.
 */
import { UsageError } from '../common/errors.js';
import { formatEndpoint, parseEndpoint, type Endpoint } from '../common/config.js';

export const USAGE =
  'usage: client <IP>:<PORT> <tracker_info_file> [--data-dir DIR] [--stay] [--max-upload RATE] [--max-download RATE] [--open-share]\n' +
  '  <IP>:<PORT>         where this client serves its peers (what trackers hand out to downloaders)\n' +
  '  <tracker_info_file> one tracker a line, IP:PORT\n' +
  '  --data-dir DIR      local state (default .coterie/client-<IP>-<PORT>/ under the current directory)\n' +
  '  --stay              at the end of piped input, keep serving peers until killed\n' +
  '  --max-upload RATE   cap on upload bytes per second, e.g. 10M, 512K\n' +
  '  --max-download RATE cap on download bytes per second\n' +
  '  --open-share        serve shared files to any peer, even one without an access ticket from a\n' +
  '                      tracker (standard BitTorrent clients); off by default: only members of the\n' +
  '                      file\'s group, with a ticket, are served';

/** Parsed command line of the client. */
export interface ClientArgs {
  peer: Endpoint;
  /** The peer address as `IP:PORT`, which is what trackers hand out. */
  peerText: string;
  trackerInfoFile: string;
  dataDir?: string;
  stay: boolean;
  maxUploadRate?: number;
  maxDownloadRate?: number;
  /** Serve peers without an access ticket (interop with standard BitTorrent clients). Off by default. */
  openShare: boolean;
  help: boolean;
}

const RATE_UNITS: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 };

/**
 * Bytes per second from `10M`, `512K`, `1.5m`, `2G`, `1000` (binary multiples; an optional `B`,
 * `iB` or `/s` suffix is allowed). Throws UsageError for anything else, zero or absurd rates.
 */
export function parseRate(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmg]?)(?:i?b)?(?:\/s)?$/i.exec(text.trim());
  if (!m) throw new UsageError(`bad rate "${text}" (use e.g. 10M or 512K bytes per second)`);
  const v = Math.floor(Number(m[1]) * RATE_UNITS[m[2]!.toLowerCase()]!);
  if (!(v >= 1) || v > 2 ** 50) throw new UsageError(`bad rate "${text}" (must be at least 1 byte per second)`);
  return v;
}

export function parseClientArgs(argv: readonly string[]): ClientArgs {
  const positional: string[] = [];
  const out: Partial<ClientArgs> & { stay: boolean; help: boolean; openShare: boolean } = { stay: false, help: false, openShare: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const eq = a.startsWith('--') ? a.indexOf('=') : -1;
    const flag = eq > 0 ? a.slice(0, eq) : a;
    const value = (): string => {
      if (eq > 0) return a.slice(eq + 1);
      const v = argv[++i];
      if (v === undefined) throw new UsageError(`${flag} needs a value`);
      return v;
    };
    switch (flag) {
      case '--help': case '-h': out.help = true; break;
      case '--stay': out.stay = true; break;
      case '--open-share': out.openShare = true; break;
      case '--data-dir': {
        const v = value();
        if (v === '') throw new UsageError('--data-dir needs a directory');
        out.dataDir = v;
        break;
      }
      case '--max-upload': out.maxUploadRate = parseRate(value()); break;
      case '--max-download': out.maxDownloadRate = parseRate(value()); break;
      default:
        if (a.startsWith('-') && a.length > 1) throw new UsageError(`unknown option ${a}`);
        positional.push(a);
    }
  }
  if (out.help) return { ...out, peer: { host: '', port: 0 }, peerText: '', trackerInfoFile: '' } as ClientArgs;
  if (positional.length < 2) throw new UsageError('missing arguments');
  if (positional.length > 2) throw new UsageError(`unexpected argument "${positional[2]}"`);
  let peer: Endpoint;
  try { peer = parseEndpoint(positional[0]!); } catch (e) { throw new UsageError((e as Error).message); }
  if (/\s/.test(positional[0]!.trim())) throw new UsageError(`write the peer address as IP:PORT, not "${positional[0]}"`);
  return { ...out, peer, peerText: formatEndpoint(peer), trackerInfoFile: positional[1]! };
}
