/**
 * How the client shows things: sizes, rates, times and the one-line forms of groups, files and
 * downloads. Pure functions, so every output format is tested without a shell.
 */
import type { DownloadStatus } from '../swarm/api.js';
import type { DownloadRecord } from './local-state.js';

const UNITS = ['B', 'KB', 'MB', 'GB', 'TB', 'PB'];

/** `0 B`, `999 B`, `1.0 KB`, `12.3 MB` (decimal units, one decimal place from KB up). */
export function humanSize(bytes: number): string {
  if (!Number.isFinite(bytes) || bytes < 0) return '?';
  if (bytes < 1000) return `${Math.round(bytes)} B`;
  let v = bytes;
  let u = 0;
  // 999.95 rather than 1000: a value that would round to `1000.0 KB` reads `1.0 MB`.
  while (u < UNITS.length - 1 && v >= 999.95) { v /= 1000; u++; }
  return `${v.toFixed(1)} ${UNITS[u]}`;
}

/** `12.3 MB/s`. */
export function humanRate(bytesPerSecond: number): string {
  return `${humanSize(bytesPerSecond)}/s`;
}

/** `3s`, `1m05s`, `2h03m`, `3d04h`; `?` when unknown. */
export function humanDuration(seconds: number | null): string {
  if (seconds === null || !Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.ceil(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
  return `${Math.floor(s / 86400)}d${String(Math.floor((s % 86400) / 3600)).padStart(2, '0')}h`;
}

/** `1 peer`, `3 peers`. */
export function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/**
 * Names come from other users through the tracker; a control character in one could rewrite the
 * terminal. The tracker refuses them, but the client does not rely on that for what it prints.
 */
export function printable(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\u0000-\u001f\u007f-\u009f]/g, '?');
}

/** `g1  owner alice, 3 members`. */
export function groupLine(g: { group: string; owner: string; members: number }): string {
  return `${printable(g.group)}  owner ${printable(g.owner)}, ${plural(g.members, 'member')}`;
}

/** `movie.mkv  1.2 GB  2 seeders, 1 online`. */
export function fileLine(f: { name: string; size: number; seeders: number; online: number }): string {
  return `${printable(f.name)}  ${humanSize(f.size)}  ${plural(f.seeders, 'seeder')}, ${f.online} online`;
}

/** Whole percent done, rounded down (100 only when done); an empty file is 100%. */
export function percent(done: number, length: number): number {
  if (length <= 0) return 100;
  if (done >= length) return 100;
  return Math.min(99, Math.floor((done * 100) / length));
}

/**
 * A download as `show_downloads` prints it:
 *   `[D] [g1] name  42%  12.3 MB/s  ETA 3s  3 peers` while downloading,
 *   `[D] [g1] name  42%  paused` when paused,
 *   `[C] [g1] name` when complete, `[F] [g1] name  <reason>` when failed.
 */
export function downloadLine(s: DownloadStatus): string {
  const head = `[${printable(s.group)}] ${printable(s.name)}`;
  switch (s.state) {
    case 'complete': return `[C] ${head}`;
    case 'failed': return `[F] ${head}  ${printable(s.error ?? 'failed')}`;
    case 'paused': return `[D] ${head}  ${percent(s.bytesDone, s.length)}%  paused`;
    default:
      return `[D] ${head}  ${percent(s.bytesDone, s.length)}%  ${humanRate(s.rate)}  ETA ${humanDuration(s.etaSeconds)}  ${plural(s.peers, 'peer')}`;
  }
}

/** A recorded download the engine does not know (finished in an earlier run, or not resumed). */
export function recordedDownloadLine(d: DownloadRecord): string {
  const head = `[${printable(d.group)}] ${printable(d.name)}`;
  switch (d.state) {
    case 'complete': return `[C] ${head}`;
    case 'failed': return `[F] ${head}  ${printable(d.error ?? 'failed')}`;
    default: return `[D] ${head}  paused`;
  }
}

/** Pads the first column of two-column help text. */
export function columns(rows: Array<[string, string]>, gap = 2): string[] {
  const w = Math.max(0, ...rows.map(([a]) => a.length));
  return rows.map(([a, b]) => `${a.padEnd(w + gap)}${b}`);
}
