/**
 * `tracker ... --status`: asks a running tracker for its `status` and renders it for a human.
 * A tiny one-shot RPC client (the full client link lives in src/client).
 */
import { connect } from 'node:net';
import { CoterieError, fromWireError } from '../common/errors.js';
import type { Endpoint } from '../common/config.js';
import { encodeLine, LineDecoder, responseSchema } from '../protocol/rpc.js';
import { formatPeerLine } from './replication/status-format.js';

/** Calls `status` on the tracker at `ep`; rejects with a CoterieError after `timeoutMs`. */
export function fetchStatus(ep: Endpoint, timeoutMs: number): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const sock = connect({ host: ep.host, port: ep.port });
    const dec = new LineDecoder();
    const done = (err: Error | null, v?: Record<string, unknown>) => {
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err); else resolve(v!);
    };
    const timer = setTimeout(() => done(new CoterieError('UNAVAILABLE', 'no answer in time')), timeoutMs);
    sock.on('error', (e) => done(new CoterieError('UNAVAILABLE', e.message)));
    sock.on('connect', () => sock.write(encodeLine({ id: 1, op: 'status', args: {} })));
    sock.on('data', (chunk) => {
      let lines: string[];
      try { lines = dec.push(chunk); } catch (e) { done(e as Error); return; }
      for (const line of lines) {
        let msg;
        try { msg = responseSchema.parse(JSON.parse(line)); } catch { done(new CoterieError('PROTOCOL', 'malformed answer')); return; }
        if (msg.id !== 1) continue;
        if (!msg.ok) { done(fromWireError(msg.error as never)); return; }
        done(null, (msg.result ?? {}) as Record<string, unknown>);
        return;
      }
    });
    sock.on('close', () => done(new CoterieError('UNAVAILABLE', 'connection closed')));
  });
}

/** Renders a status answer as aligned "key: value" lines. */
export function formatStatus(st: Record<string, unknown>): string {
  const lines: string[] = [];
  const put = (k: string, v: unknown) => lines.push(`${(k + ':').padEnd(16)}${v}`);
  if (st['trackerNo'] !== undefined) put('tracker', st['trackerNo']);
  put('address', st['address']);
  put('origin', st['origin']);
  put('version', st['version']);
  if (typeof st['uptimeMs'] === 'number') put('uptime', `${Math.round(st['uptimeMs'] / 1000)} s`);
  put('digest', st['digest']);
  const vv = (st['versionVector'] ?? {}) as Record<string, number>;
  put('versions', Object.keys(vv).length === 0 ? '(empty)' : Object.entries(vv).map(([o, s]) => `${o}=${s}`).join(' '));
  const counts = (st['counts'] ?? {}) as Record<string, number>;
  put('rows', Object.entries(counts).map(([k, n]) => `${k} ${n}`).join(', '));
  put('connections', st['connections']);
  put('online', st['online']);
  const peers = Array.isArray(st['peers']) ? st['peers'] : [];
  put('peers', peers.length === 0 ? '(none)' : '');
  for (const p of peers) lines.push(`  ${formatPeerLine(p)}`);
  for (const [k, v] of Object.entries(st)) {
    if (['trackerNo', 'address', 'origin', 'version', 'uptimeMs', 'digest', 'versionVector', 'counts', 'connections', 'online', 'peers'].includes(k)) continue;
    put(k, typeof v === 'object' ? JSON.stringify(v) : v);
  }
  return lines.join('\n') + '\n';
}
