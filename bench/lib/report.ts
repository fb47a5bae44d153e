/**
 * The results of one benchmark pass: the machine-readable form (bench/results/latest.json) and
 * the markdown table printed at the end, written to latest.md and embedded in README.md (between
 * `<!-- bench:start -->` and `<!-- bench:end -->`, by `node dist/bench/readme-table.js`).
 */
import type { Stat } from './util.js';

/** One line of the table: a Coterie figure, its reference figure, and their ratio. */
export interface Figure {
  /** Stable id, e.g. "s1.3to1.time". */
  id: string;
  /** Scenario number from the issue (1-6). */
  scenario: number;
  label: string;
  /** Unit of `coterie` and `reference.stat`: s, MB/s, MiB, req/s, ms, %. */
  unit: string;
  coterie: Stat | null;
  /** Replaces the formatted Coterie value (e.g. "yes (2.1x)"). */
  coterieText?: string;
  reference?: { name: string; stat: Stat | null; text?: string } | null;
  /** Coterie / reference for times and memory (lower is better); a percentage for hashing. */
  ratio?: number | null;
  ratioText?: string;
  status: 'ok' | 'skipped' | 'failed';
  note?: string;
  /** Anything else worth keeping (per-rep details, CPU, peers...). */
  details?: unknown;
}

export interface Results {
  /** Schema version of this file. */
  version: 1;
  generated: string;
  commit: string | null;
  machine: {
    cpus: number; cpuModel: string; memGiB: number; node: string; kernel: string;
    /** 1-minute load average when the pass started and ended: other work on the machine skews every figure. */
    loadAvg1mStart?: number; loadAvg1mEnd?: number;
  };
  options: { reps: number; quick: boolean; only: number[] | null; reference: string };
  reference: { available: boolean; libtorrent: string | null; reason: string | null };
  /** Wall time of the whole pass, seconds. */
  durationS?: number;
  figures: Figure[];
  notes: string[];
}

function num(v: number, unit: string): string {
  if (!Number.isFinite(v)) return '–';
  switch (unit) {
    case 's': return v.toFixed(2);
    case 'ms': return v < 10 ? v.toFixed(2) : v.toFixed(1);
    default: return v >= 100 ? v.toFixed(0) : v.toFixed(1);
  }
}

/** "1.23 s (1.20–1.31)", or the value alone for a single sample. */
export function fmtStat(s: Stat | null, unit: string): string {
  if (!s || s.samples.length === 0) return '–';
  const u = unit === '%' ? ' %' : unit ? ` ${unit}` : '';
  const main = `${num(s.median, unit)}${u}`;
  if (s.samples.length < 2 || s.min === s.max) return main;
  return `${main} (${num(s.min, unit)}–${num(s.max, unit)})`;
}

function ratioCell(f: Figure): string {
  if (f.ratioText) return f.ratioText;
  if (f.ratio === undefined || f.ratio === null || !Number.isFinite(f.ratio)) return '–';
  return `${f.ratio.toFixed(2)}`;
}

/** The markdown table, with a header line on the pass. */
export function markdown(r: Results): string {
  const lines: string[] = [];
  const ref = r.reference.available ? `libtorrent ${r.reference.libtorrent}` : `libtorrent reference skipped: ${r.reference.reason}`;
  lines.push(`Measured ${r.generated.slice(0, 10)} on ${r.machine.cpus} × ${r.machine.cpuModel}, ${r.machine.memGiB} GiB RAM, ` +
    `Node ${r.machine.node}, Linux ${r.machine.kernel}` +
    `${r.machine.loadAvg1mStart !== undefined ? ` (load average ${r.machine.loadAvg1mStart.toFixed(1)} at the start)` : ''}; ${ref}; medians of ${r.options.reps} reps (min–max)` +
    `${r.options.quick ? '; QUICK sizes' : ''}${r.commit ? `; commit ${r.commit.slice(0, 10)}` : ''}. ` +
    'Ratio = Coterie / libtorrent (lower is better) unless stated.');
  lines.push('');
  lines.push('| # | measurement | Coterie | libtorrent / reference | ratio |');
  lines.push('|---|---|---|---|---|');
  for (const f of r.figures) {
    const cut = (t: string) => (t.length > 140 ? t.slice(0, 137) + '...' : t);
    const co = f.status === 'ok' ? (f.coterieText ?? fmtStat(f.coterie, f.unit)) : f.status === 'skipped' ? `skipped${f.note ? `: ${cut(f.note)}` : ''}` : `FAILED${f.note ? `: ${cut(f.note)}` : ''}`;
    const refCell = f.reference ? (f.reference.text ?? (f.reference.stat ? `${fmtStat(f.reference.stat, f.unit)}` : '–')) : '–';
    const refName = f.reference && refCell !== '–' && !f.reference.text ? ` ${f.reference.name === 'libtorrent' ? '' : `(${f.reference.name})`}`.trimEnd() : '';
    lines.push(`| ${f.scenario} | ${f.label} | ${co.replace(/\|/g, '/')} | ${refCell}${refName} | ${f.status === 'ok' ? ratioCell(f) : '–'} |`);
  }
  if (r.notes.length) {
    lines.push('');
    for (const n of r.notes) lines.push(`- ${n}`);
  }
  return lines.join('\n') + '\n';
}
