/**
 * End-of-turn flushing of queued HAVEs: sessions that queued HAVEs during an event-loop turn are
 * flushed together from one setImmediate, so each peer gets the turn's HAVEs in one write (see
 * PeerSession.sendHave for the figures). Invariant: a session is in the queue at most once, from
 * its first queued HAVE of the turn until the flush.
 */

/** What the queue needs of a session. */
export interface HaveFlusher { flushHaves(): void }

const queue: HaveFlusher[] = [];

function flushAll(): void {
  // A flush queues nothing new (HAVEs are queued from I/O and timer callbacks), so one pass suffices.
  for (let i = 0; i < queue.length; i++) queue[i]!.flushHaves();
  queue.length = 0;
}

/** Called by a session at its first queued HAVE of the turn. */
export function queueHaveFlush(s: HaveFlusher): void {
  if (queue.length === 0) setImmediate(flushAll);
  queue.push(s);
}
