/** Parsing of the `tracker_info` file and of `IP:PORT` addresses shared by both programs. */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { CoterieError } from './errors.js';

/** A TCP endpoint. `host` is a literal IP address (names are not resolved: trackers are addressed by IP). */
export interface Endpoint { host: string; port: number }

export function formatEndpoint(e: Endpoint): string {
  return isIP(e.host) === 6 ? `[${e.host}]:${e.port}` : `${e.host}:${e.port}`;
}

/** Parses `IP:PORT`, `[IPv6]:PORT` or `IP PORT`. Throws a BAD_REQUEST CoterieError on anything else. */
export function parseEndpoint(text: string): Endpoint {
  const s = text.trim();
  let host: string, port: string;
  const m6 = /^\[([^\]]+)\]:(\d+)$/.exec(s);
  const mSpace = /^(\S+)\s+(\d+)$/.exec(s);
  if (m6) { host = m6[1]!; port = m6[2]!; }
  else if (mSpace) { host = mSpace[1]!; port = mSpace[2]!; }
  else {
    const i = s.lastIndexOf(':');
    if (i <= 0) throw new CoterieError('BAD_REQUEST', `not an address: "${text}" (expected IP:PORT)`);
    host = s.slice(0, i); port = s.slice(i + 1);
  }
  const p = Number(port);
  if (!isIP(host)) throw new CoterieError('BAD_REQUEST', `not an IP address: "${host}" in "${text}"`);
  if (!/^\d+$/.test(port) || !Number.isInteger(p) || p < 1 || p > 65535) {
    throw new CoterieError('BAD_REQUEST', `bad port in "${text}" (1-65535)`);
  }
  return { host, port: p };
}

/** Parses the text of a tracker_info file: one tracker a line, blank lines and `#` comments ignored. */
export function parseTrackerInfo(text: string): Endpoint[] {
  const out: Endpoint[] = [];
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.replace(/#.*$/, '').trim();
    if (line === '') continue;
    out.push(parseEndpoint(line));
  }
  if (out.length === 0) throw new CoterieError('BAD_REQUEST', 'the tracker_info file lists no tracker');
  return out;
}

export function readTrackerInfo(path: string): Endpoint[] {
  let text: string;
  try { text = readFileSync(path, 'utf8'); }
  catch (err) { throw new CoterieError('IO', `cannot read tracker_info file ${path}: ${(err as Error).message}`); }
  return parseTrackerInfo(text);
}
