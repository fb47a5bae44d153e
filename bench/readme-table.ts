/**
 * Rewrites the benchmark table in README.md from bench/results/latest.json: everything between
 * the lines `<!-- bench:start -->` and `<!-- bench:end -->` is replaced by the table `npm run
 * bench` printed (the same text as bench/results/latest.md).
 *
 *   node dist/bench/readme-table.js            rewrite README.md
 *   node dist/bench/readme-table.js --check    exit 1 if README.md is not up to date (CI)
 *   node dist/bench/readme-table.js --print    print the section, change nothing
 *   [--results FILE] [--readme FILE]           other files than bench/results/latest.json and README.md
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { markdown, type Results } from './lib/report.js';
import { REPO_ROOT } from './lib/util.js';

const START = '<!-- bench:start -->';
const END = '<!-- bench:end -->';

/** README text with the section between the markers replaced by `table`. Throws if a marker is missing. */
export function replaceSection(readme: string, table: string): string {
  const a = readme.indexOf(START);
  const b = readme.indexOf(END, a + START.length);
  if (a < 0 || b < 0) throw new Error(`README.md has no ${START} ... ${END} section; add those two lines where the table belongs`);
  return readme.slice(0, a + START.length) + '\n' + table.trimEnd() + '\n' + readme.slice(b);
}

function main(): number {
  const args = process.argv.slice(2);
  const opt = (name: string, dflt: string): string => { const i = args.indexOf(name); return i >= 0 && args[i + 1] ? args[i + 1]! : dflt; };
  const resultsPath = opt('--results', join(REPO_ROOT, 'bench', 'results', 'latest.json'));
  if (!existsSync(resultsPath)) throw new Error(`no ${resultsPath} yet: run a full pass first (npm run bench)`);
  const results = JSON.parse(readFileSync(resultsPath, 'utf8')) as Results;
  const table = markdown(results);
  if (args.includes('--print')) { process.stdout.write(table); return 0; }
  const path = opt('--readme', join(REPO_ROOT, 'README.md'));
  if (!existsSync(path)) throw new Error(`no ${path}: create it with a ${START} ... ${END} section where the table belongs`);
  const before = readFileSync(path, 'utf8');
  const after = replaceSection(before, table);
  if (args.includes('--check')) {
    if (before !== after) { process.stderr.write(`${path}: the benchmark table is not up to date with its results (run node dist/bench/readme-table.js)\n`); return 1; }
    return 0;
  }
  if (before !== after) writeFileSync(path, after);
  process.stdout.write(`${path}: benchmark table ${before !== after ? 'updated' : 'already up to date'}\n`);
  return 0;
}

try { process.exit(main()); } catch (err) { process.stderr.write(`error: ${err instanceof Error ? err.message : String(err)}\n`); process.exit(1); }
