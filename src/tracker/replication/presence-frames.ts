/**
 * Packing presence gossip into frames under the line cap. Pure.
 */
import { CHANGES_FRAME_BUDGET, MAX_GOSSIP_SHARES, MAX_PRESENCE_PER_FRAME, type PresenceEntry, type PresenceFrame } from './wire.js';

/**
 * Splits entries into `presence` frames of at most {@link MAX_PRESENCE_PER_FRAME} entries and
 * roughly {@link CHANGES_FRAME_BUDGET} bytes. An entry with more than {@link MAX_GOSSIP_SHARES}
 * shares is cut to that many (other trackers then see only part of that client's shares; the
 * tracker holding its session still sees all).
 */
export function presenceFrames(entries: readonly PresenceEntry[]): PresenceFrame[] {
  const out: PresenceFrame[] = [];
  let cur: PresenceEntry[] = [];
  let bytes = 0;
  for (const raw of entries) {
    const e = raw.shares.length > MAX_GOSSIP_SHARES ? { ...raw, shares: raw.shares.slice(0, MAX_GOSSIP_SHARES) } : raw;
    const len = Buffer.byteLength(JSON.stringify(e));
    if (cur.length > 0 && (bytes + len > CHANGES_FRAME_BUDGET || cur.length >= MAX_PRESENCE_PER_FRAME)) {
      out.push({ t: 'presence', entries: cur });
      cur = [];
      bytes = 0;
    }
    cur.push(e);
    bytes += len;
  }
  if (cur.length > 0) out.push({ t: 'presence', entries: cur });
  return out;
}
