/**
 * One line of `tracker --status` per peer link, for a human: address, up or down (and who
 * dialed), origin, lag both ways, last contact, and why the link is down. Pure.
 */

function ago(ms: unknown): string {
  if (typeof ms !== 'number') return 'never';
  return ms < 1000 ? `${Math.round(ms)} ms ago` : `${(ms / 1000).toFixed(1)} s ago`;
}

/** Renders a peer of the `status` answer (see replicator.ts `PeerStatus`); anything else as JSON. */
export function formatPeerLine(p: unknown): string {
  if (p === null || typeof p !== 'object' || typeof (p as { addr?: unknown }).addr !== 'string') return JSON.stringify(p);
  const x = p as Record<string, unknown>;
  const parts = [String(x['addr']).padEnd(22)];
  parts.push(x['connected'] ? `up (${x['direction'] === 'out' ? 'dialed by us' : 'dialed by it'})` : 'DOWN');
  if (typeof x['origin'] === 'string') parts.push(`origin ${x['origin']}`);
  parts.push(`lag ${typeof x['lag'] === 'number' ? x['lag'] : '?'}`);
  if (typeof x['behind'] === 'number' && x['behind'] > 0) parts.push(`we lack ${x['behind']}`);
  parts.push(`last contact ${ago(x['lastContactMsAgo'])}`);
  if (typeof x['changesRefused'] === 'number' && x['changesRefused'] > 0) parts.push(`refused ${x['changesRefused']}`);
  if (!x['connected'] && typeof x['lastError'] === 'string') parts.push(`(${x['lastError']})`);
  return parts.join('  ');
}
