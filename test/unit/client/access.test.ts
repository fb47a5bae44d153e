import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { AccessGate } from '../../../src/client/access.js';
import { exportPublicKey, generateKeyPair, signTicket } from '../../../src/protocol/ticket.js';

const HASH = 'ab'.repeat(20);
const NOW = 1_800_000_000_000;

describe('AccessGate', () => {
  const tracker = generateKeyPair();
  const stranger = generateKeyPair();
  const gate = new AccessGate(undefined, () => NOW);
  gate.addKeys([{ origin: 't1', publicKey: exportPublicKey(tracker.publicKey) }, { origin: 'bad', publicKey: 'not a key' }]);
  const ticket = (over: Partial<{ group: string; infoHash: string; expiresAt: number; origin: string }> = {}, key = tracker.privateKey) =>
    signTicket({ user: 'bob', group: 'g1', infoHash: HASH, expiresAt: NOW + 60_000, origin: 't1', ...over }, key);
  const req = (t?: string, groups = ['g1'], infoHashHex = HASH) => ({
    infoHashHex, groups, remote: '127.0.0.1:1', ...(t !== undefined ? { ticket: t } : {}),
  });

  test('keeps only keys that parse', () => { assert.equal(gate.size, 1); });

  test('lets in a peer with a valid ticket for this file in a group it is shared in', () => {
    assert.equal(gate.authorize(req(ticket())), true);
    assert.equal(gate.authorize(req(ticket(), ['g0', 'g1'])), true);
  });

  test('refuses everything else', () => {
    assert.equal(gate.authorize(req()), false, 'no ticket');
    assert.equal(gate.authorize(req(ticket(), ['g2'])), false, 'not shared in that group');
    assert.equal(gate.authorize(req(ticket({ infoHash: 'cd'.repeat(20) }))), false, 'another file');
    assert.equal(gate.authorize(req(ticket({ expiresAt: NOW }))), false, 'expired');
    assert.equal(gate.authorize(req(ticket({ origin: 't9' }))), false, 'unknown tracker');
    assert.equal(gate.authorize(req(ticket({}, stranger.privateKey))), false, 'signed by a stranger');
    assert.equal(gate.authorize(req('garbage.garbage')), false, 'garbage');
    assert.equal(gate.authorize(req('x'.repeat(5000))), false, 'oversized');
  });
});

describe('AccessGate.authorizeUntil', () => {
  test('an admitted peer is admitted until its ticket expires; others are refused', () => {
    const tracker = generateKeyPair();
    const gate = new AccessGate(undefined, () => NOW);
    gate.addKeys([{ origin: 't1', publicKey: exportPublicKey(tracker.publicKey) }]);
    const t = signTicket({ user: 'bob', group: 'g1', infoHash: HASH, expiresAt: NOW + 5_000, origin: 't1' }, tracker.privateKey);
    assert.deepEqual(gate.authorizeUntil({ infoHashHex: HASH, groups: ['g1'], ticket: t, remote: '10.0.0.2:1' }), { ok: true, expiresAt: NOW + 5_000 });
    assert.equal(gate.authorizeUntil({ infoHashHex: HASH, groups: ['g2'], ticket: t, remote: '10.0.0.2:1' }), false);
    assert.equal(gate.authorizeUntil({ infoHashHex: HASH, groups: ['g1'], remote: '10.0.0.2:1' }), false);
  });
});
