import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { Bitfield } from '../../../src/swarm/bitfield.js';
import { Picker, type BlockRequest, type PeerKey } from '../../../src/swarm/picker/index.js';

const B = 16384;

/** 4 pieces of 4 blocks each unless told otherwise; deterministic rng. */
function picker(pieceCount = 4, extra: { endgameDuplicates?: number } = {}, have?: Bitfield): Picker {
  let x = 7;
  const rng = () => ((x = (x * 48271) % 2147483647) / 2147483647);
  return new Picker({ pieceCount, pieceLength: 4 * B, totalLength: pieceCount * 4 * B, randomFirstPieces: 0, rng, ...extra }, have);
}

function take(pk: Picker, peer: PeerKey, max: number): BlockRequest[] {
  const out: BlockRequest[] = [];
  pk.next(peer, max, out);
  return out;
}

const key = (r: BlockRequest) => `${r.piece}:${r.begin}`;

describe('Picker events', () => {
  test('a received piece awaiting verification is not picked again; verified it is ours', () => {
    const pk = picker(2);
    pk.peerJoined(1, 'all');
    pk.peerJoined(2, 'all');
    const reqs = take(pk, 1, 4);
    const piece = reqs[0]!.piece;
    for (const r of reqs) assert.equal(pk.blockReceived(1, r.piece, r.begin, []), true);
    assert.equal(pk.pieceReceived(piece), true);
    assert.equal(pk.piecePhase(piece), 'received');
    const more = take(pk, 2, 100);
    assert.equal(more.length, 4);
    assert.ok(more.every((r) => r.piece !== piece));
    // Now in endgame: peer 1 may duplicate peer 2's blocks, still never the received piece.
    assert.equal(pk.inEndgame, true);
    assert.ok(take(pk, 1, 100).every((r) => r.piece !== piece));
    pk.pieceVerified(piece);
    assert.equal(pk.piecePhase(piece), 'verified');
    assert.equal(pk.have.get(piece), true);
    assert.equal(pk.have.count, 1);
  });

  test('pieceFailed puts every block of the piece back to be requested again', () => {
    const pk = picker(1);
    pk.peerJoined(1, 'all');
    const reqs = take(pk, 1, 10);
    assert.equal(reqs.length, 4);
    for (const r of reqs) pk.blockReceived(1, r.piece, r.begin, []);
    assert.equal(pk.pieceReceived(0), true);
    assert.equal(take(pk, 1, 10).length, 0);
    pk.pieceFailed(0);
    assert.equal(pk.piecePhase(0), 'missing');
    assert.equal(pk.pieceReceived(0), false);
    const again = take(pk, 1, 10);
    assert.deepEqual(again.map(key).sort(), reqs.map(key).sort());
    for (const r of again) pk.blockReceived(1, r.piece, r.begin, []);
    pk.pieceVerified(0);
    assert.equal(pk.complete, true);
  });

  test('blockReceived refuses duplicates, unrequested blocks and bad offsets', () => {
    const pk = picker(2);
    pk.peerJoined(1, 'all');
    const [r] = take(pk, 1, 1);
    const other = r!.piece === 0 ? 1 : 0;
    assert.equal(pk.blockReceived(1, other, 0, []), false, 'never requested');
    assert.equal(pk.blockReceived(1, r!.piece, r!.begin + 1, []), false, 'not a block boundary');
    assert.equal(pk.blockReceived(1, 9, 0, []), false, 'no such piece');
    assert.equal(pk.blockReceived(1, r!.piece, r!.begin, []), true);
    assert.equal(pk.blockReceived(1, r!.piece, r!.begin, []), false, 'duplicate');
    assert.equal(pk.outstanding(1), 0);
  });

  test('peerChoked, requestRejected and peerLeft give blocks back to the pool', () => {
    const pk = picker(2, { endgameDuplicates: 1 }); // no duplicates: only returned blocks move
    pk.peerJoined(1, 'all');
    pk.peerJoined(2, 'all');
    const a = take(pk, 1, 8);
    assert.equal(pk.outstanding(1), 8);
    assert.equal(take(pk, 2, 8).length, 0, 'everything is in flight at peer 1');
    pk.requestRejected(1, a[0]!);
    assert.equal(pk.outstanding(1), 7);
    assert.deepEqual(take(pk, 2, 8).map(key), [key(a[0]!)]);
    pk.peerChoked(1);
    assert.equal(pk.outstanding(1), 0);
    const b = take(pk, 2, 8);
    assert.deepEqual(b.map(key).sort(), a.slice(1).map(key).sort());
    assert.equal(pk.blockReceived(1, a[1]!.piece, a[1]!.begin, []), true, 'a late block still counts');
    pk.peerLeft(2);
    assert.equal(pk.outstanding(2), 0);
    const c = take(pk, 1, 8);
    assert.deepEqual(c.map(key).sort(), a.slice(2).map(key).concat(key(a[0]!)).sort());
  });

  test('endgame duplicates the last blocks, reports cancels and ends even when peers vanish', () => {
    const pk = picker(1, { endgameDuplicates: 3 });
    for (const p of [1, 2, 3, 4]) pk.peerJoined(p, 'all');
    const a = take(pk, 1, 4);
    assert.equal(pk.inEndgame, true);
    const b = take(pk, 2, 10);
    assert.deepEqual(b.map(key).sort(), a.map(key).sort(), 'every block once more');
    const c = take(pk, 3, 10);
    assert.equal(c.length, 4);
    assert.equal(take(pk, 4, 10).length, 0, 'at most 3 peers per block');
    assert.equal(take(pk, 1, 10).length, 0, 'never twice to the same peer');

    const cancels: Array<{ peer: PeerKey; req: BlockRequest }> = [];
    assert.equal(pk.blockReceived(2, a[0]!.piece, a[0]!.begin, cancels), true);
    assert.deepEqual(cancels.map((x) => x.peer).sort(), [1, 3]);
    assert.ok(cancels.every((x) => key(x.req) === key(a[0]!) && x.req.length === B));
    assert.equal(pk.blockReceived(1, a[0]!.piece, a[0]!.begin, []), false, 'the loser arrives late');
    assert.equal(pk.outstanding(1), 3);

    // Peers 1 and 2 vanish: the last three blocks are now in flight at peer 3 alone, so peer 4
    // may duplicate them; then peer 3 vanishes too and peer 4 alone must finish.
    pk.peerLeft(1);
    pk.peerLeft(2);
    assert.equal(pk.inEndgame, true);
    const d = take(pk, 4, 10);
    assert.deepEqual(d.map(key).sort(), a.slice(1).map(key).sort());
    pk.peerLeft(3);
    assert.equal(pk.inEndgame, true, 'peer 4 still has every missing block in flight');
    assert.equal(take(pk, 4, 10).length, 0);
    const cs: Array<{ peer: PeerKey; req: BlockRequest }> = [];
    for (const r of d) assert.equal(pk.blockReceived(4, r.piece, r.begin, cs), true);
    assert.equal(cs.length, 0, 'nobody else to cancel');
    pk.pieceVerified(0);
    assert.equal(pk.complete, true);
    assert.equal(pk.inEndgame, false);
  });

  test('interest follows what the peer has and what we verified', () => {
    const pk = picker(4, {}, new Bitfield(4, Uint8Array.of(0x80)));
    pk.peerJoined(1, new Bitfield(4, Uint8Array.of(0x80)));
    assert.equal(pk.isInteresting(1), false, 'it only has what we have');
    pk.peerHave(1, 2);
    assert.equal(pk.isInteresting(1), true);
    const reqs = take(pk, 1, 10);
    assert.ok(reqs.every((r) => r.piece === 2));
    for (const r of reqs) pk.blockReceived(1, r.piece, r.begin, []);
    pk.pieceVerified(2);
    assert.equal(pk.isInteresting(1), false);
    pk.peerJoined(2, 'all');
    assert.equal(pk.isInteresting(2), true);
    assert.equal(pk.isInteresting(99), false);
  });

  test('resume: verified pieces are never requested', () => {
    const have = new Bitfield(4, Uint8Array.of(0xd0)); // pieces 0, 1, 3
    const pk = picker(4, {}, have);
    pk.peerJoined(1, 'all');
    const reqs = take(pk, 1, 100);
    assert.ok(reqs.every((r) => r.piece === 2));
    assert.equal(reqs.length, 4);
    for (const r of reqs) pk.blockReceived(1, r.piece, r.begin, []);
    pk.pieceVerified(2);
    assert.equal(pk.complete, true);
    assert.equal(take(pk, 1, 100).length, 0);
    assert.equal(have.count, 3, 'the caller\'s bitfield is not modified');
  });

  test('availability counts bitfields, HAVEs, seeders and departures', () => {
    const pk = picker(3);
    pk.peerJoined(1, 'all');
    pk.peerJoined(2, new Bitfield(3, Uint8Array.of(0x80)));
    pk.peerJoined(3, 'none');
    assert.deepEqual([0, 1, 2].map((p) => pk.availability(p)), [2, 1, 1]);
    pk.peerHave(3, 1);
    pk.peerHave(3, 1);
    assert.deepEqual([0, 1, 2].map((p) => pk.availability(p)), [2, 2, 1]);
    pk.peerHave(2, 1);
    pk.peerHave(2, 2); // peer 2 now has everything
    assert.deepEqual([0, 1, 2].map((p) => pk.availability(p)), [2, 3, 2]);
    pk.peerLeft(1);
    pk.peerLeft(2);
    assert.deepEqual([0, 1, 2].map((p) => pk.availability(p)), [0, 1, 0]);
    pk.peerLeft(3);
    assert.deepEqual([0, 1, 2].map((p) => pk.availability(p)), [0, 0, 0]);
    assert.throws(() => pk.peerHave(4, 3), { name: 'ProtocolError' });
    assert.throws(() => pk.peerJoined(5, new Bitfield(4)), { name: 'ProtocolError' });
    assert.throws(() => pk.peerJoined(-1, 'all'), RangeError);
  });

  test('a peer that completes by HAVEs keeps being served the rarest piece', () => {
    const pk = picker(3);
    pk.peerJoined(1, new Bitfield(3, Uint8Array.of(0xc0)));
    pk.peerJoined(2, new Bitfield(3, Uint8Array.of(0x80)));
    pk.peerHave(1, 2);
    assert.deepEqual([0, 1, 2].map((p) => pk.availability(p)), [2, 1, 1]);
    const two = [take(pk, 1, 4)[0]!.piece, take(pk, 1, 4)[0]!.piece];
    assert.deepEqual(two.sort(), [1, 2], 'the pieces only peer 1 has come first');
    assert.equal(take(pk, 1, 4)[0]!.piece, 0);
  });
});
