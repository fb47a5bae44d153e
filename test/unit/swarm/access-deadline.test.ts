/**
 * An access ticket does not outlive itself on an open connection: the peer server turns the
 * authorize hook's `expiresAt` into a session deadline, and the session closes at it.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { CoterieError } from '../../../src/common/errors.js';
import { PeerSession, type SessionOwner } from '../../../src/swarm/session.js';
import { MemoryTransport } from '../../helpers/swarm-pipe.js';

function session(clock: () => number, closed: Array<Error | undefined>): PeerSession {
  const owner: SessionOwner = {
    onActive() {}, onPeerPieces() {}, onHave() {}, onChoke() {}, onUnchoke() {}, onInterest() {}, onBlock() {},
    onClose(_s, err) { closed.push(err); },
  };
  const torrent = { infoHash: Buffer.alloc(20, 1), peerId: Buffer.alloc(20, 2), ext: { m: {} }, geometry: { pieceCount: 1, pieceLength: 16384, totalLength: 1 } };
  return new PeerSession({ transport: new MemoryTransport(), owner, torrent, clock, remote: 'x' });
}

describe('PeerSession access deadline', () => {
  test('closed with ACCESS_DENIED at the deadline, not before', () => {
    let t = 1000;
    const closed: Array<Error | undefined> = [];
    const s = session(() => t, closed);
    s.accessDeadline = 5000;
    t = 4999;
    s.tick();
    assert.equal(s.closed, false);
    t = 5000;
    s.tick();
    assert.equal(s.closed, true);
    assert.equal((closed[0] as CoterieError).code, 'ACCESS_DENIED');
  });

  test('no deadline: only the usual timeouts apply', () => {
    let t = 0;
    const s = session(() => t, []);
    t = 9_000;
    s.tick();
    assert.equal(s.closed, false);
  });
});
