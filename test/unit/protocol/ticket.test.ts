import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, sign } from 'node:crypto';
import fc from 'fast-check';
import { CoterieError } from '../../../src/common/errors.js';
import {
  exportPrivateKey, exportPublicKey, generateKeyPair, importPrivateKey, importPublicKey,
  signTicket, ticketAllows, verifyTicket, TicketError, MAX_TICKET_LENGTH,
  type Ticket, type TicketRejection,
} from '../../../src/protocol/ticket.js';

const NOW = 1_700_000_000_000;
const tracker1 = generateKeyPair();
const tracker2 = generateKeyPair();
const keys = new Map([['t1', tracker1.publicKey], ['t2', tracker2.publicKey]]);
const grant: Ticket = { user: 'alice', group: 'friends', infoHash: 'ab'.repeat(20), expiresAt: NOW + 60_000, origin: 't1' };

function refused(reason: TicketRejection, ticket: unknown, k: ReadonlyMap<string, import('node:crypto').KeyObject> = keys, now = NOW): void {
  assert.throws(() => verifyTicket(ticket, k, now), (e: unknown) => {
    assert.ok(e instanceof TicketError, `expected TicketError, got ${String(e)}`);
    assert.equal(e.code, 'ACCESS_DENIED');
    assert.equal(e.reason, reason);
    return true;
  });
}

describe('tickets', () => {
  test('a valid ticket verifies and grants exactly its group and file', () => {
    const t = signTicket(grant, tracker1.privateKey);
    assert.ok(t.length < 400);
    const v = verifyTicket(t, keys, NOW);
    assert.deepEqual(v, grant);
    assert.equal(ticketAllows(v, 'friends', 'ab'.repeat(20)), true);
    assert.equal(ticketAllows(v, 'friends', 'AB'.repeat(20)), true);
    assert.equal(ticketAllows(v, 'friends', Buffer.from('ab'.repeat(20), 'hex')), true);
    assert.equal(ticketAllows(v, 'others', 'ab'.repeat(20)), false);
    assert.equal(ticketAllows(v, 'friends', 'cd'.repeat(20)), false);
  });

  test('expired: at and after expiresAt', () => {
    const t = signTicket(grant, tracker1.privateKey);
    assert.doesNotThrow(() => verifyTicket(t, keys, grant.expiresAt - 1));
    refused('expired', t, keys, grant.expiresAt);
    refused('expired', t, keys, grant.expiresAt + 1);
  });

  test('forged: any flipped bit in payload or signature is refused', () => {
    const t = signTicket(grant, tracker1.privateKey);
    const [body, sig] = t.split('.') as [string, string];
    const flip = (s: string, bit: number): string => {
      const b = Buffer.from(s, 'base64url');
      b[bit >> 3]! ^= 1 << (bit & 7);
      return b.toString('base64url');
    };
    const bodyBits = Buffer.from(body, 'base64url').length * 8;
    for (let bit = 0; bit < bodyBits; bit += 7) {
      assert.throws(() => verifyTicket(`${flip(body, bit)}.${sig}`, keys, NOW), (e: unknown) => e instanceof TicketError && e.code === 'ACCESS_DENIED');
    }
    for (let bit = 0; bit < 512; bit += 5) refused('bad-signature', `${body}.${flip(sig, bit)}`);
  });

  test('a changed grant with the old signature is refused', () => {
    const t = signTicket(grant, tracker1.privateKey);
    const sig = t.split('.')[1]!;
    const forged = Buffer.from(JSON.stringify({ ...grant, group: 'admins' })).toString('base64url');
    refused('bad-signature', `${forged}.${sig}`);
    const later = Buffer.from(JSON.stringify({ ...grant, expiresAt: grant.expiresAt * 2 })).toString('base64url');
    refused('bad-signature', `${later}.${sig}`);
  });

  test('wrong key: signed by another tracker than it claims, or an unknown origin', () => {
    refused('bad-signature', signTicket(grant, tracker2.privateKey));
    refused('unknown-origin', signTicket({ ...grant, origin: 't3' }, tracker1.privateKey));
    refused('unknown-origin', signTicket(grant, tracker1.privateKey), new Map([['t2', tracker2.publicKey]]));
    assert.deepEqual(verifyTicket(signTicket({ ...grant, origin: 't2' }, tracker2.privateKey), keys, NOW).origin, 't2');
  });

  test('a signature over the bare payload (no context) does not pass', () => {
    const body = Buffer.from(JSON.stringify(grant)).toString('base64url');
    const sig = sign(null, Buffer.from(body), tracker1.privateKey).toString('base64url');
    refused('bad-signature', `${body}.${sig}`);
  });

  test('malformed and oversized', () => {
    const t = signTicket(grant, tracker1.privateKey);
    const [body, sig] = t.split('.') as [string, string];
    const enc = (o: unknown): string => Buffer.from(JSON.stringify(o)).toString('base64url');
    for (const bad of [
      '', '.', 'abc', `${body}.${sig}.x`, `${body}`, `.${sig}`, `${body}.`, `${body}=.${sig}`, `${body}.${sig}=`,
      `${body}.${sig.slice(0, -4)}`, `${body} .${sig}`, `${body}.${sig}\n`, `${body}+.${sig}`,
      `${enc('x')}.${sig}`, `${enc([1])}.${sig}`, `${enc(null)}.${sig}`, `${Buffer.from('{').toString('base64url')}.${sig}`,
      `${enc({ ...grant, extra: 1 })}.${sig}`, `${enc({ ...grant, user: undefined })}.${sig}`,
      `${enc({ ...grant, user: 'a b' })}.${sig}`, `${enc({ ...grant, group: '' })}.${sig}`,
      `${enc({ ...grant, infoHash: 'AB'.repeat(20) })}.${sig}`, `${enc({ ...grant, infoHash: 'ab' })}.${sig}`,
      `${enc({ ...grant, expiresAt: 1.5 })}.${sig}`, `${enc({ ...grant, expiresAt: '1' })}.${sig}`,
      `${enc({ ...grant, origin: '' })}.${sig}`, `${enc({ ...grant, origin: 'a b' })}.${sig}`,
      `${Buffer.from(JSON.stringify(grant).replace('{', '{"__proto__":1,')).toString('base64url')}.${sig}`,
    ]) refused('malformed', bad);
    for (const notString of [undefined, null, 42, {}, [], Buffer.from(t)]) refused('malformed', notString);
    refused('oversized', 'a'.repeat(MAX_TICKET_LENGTH + 1));
    refused('oversized', t + 'A'.repeat(MAX_TICKET_LENGTH));
  });

  test('signTicket refuses invalid grants and non-Ed25519 keys', () => {
    const isBadRequest = (e: unknown): boolean => e instanceof CoterieError && e.code === 'BAD_REQUEST';
    for (const g of [
      { ...grant, user: '' }, { ...grant, group: 'a/b' }, { ...grant, infoHash: 'xyz' },
      { ...grant, expiresAt: -1 }, { ...grant, expiresAt: 0.5 }, { ...grant, origin: 'o'.repeat(129) },
    ]) assert.throws(() => signTicket(g, tracker1.privateKey), isBadRequest);
    assert.throws(() => signTicket(grant, tracker1.publicKey), isBadRequest);
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 });
    assert.throws(() => signTicket(grant, rsa.privateKey), isBadRequest);
  });

  test('keys survive export and import', () => {
    const pub = importPublicKey(exportPublicKey(tracker1.publicKey));
    const priv = importPrivateKey(exportPrivateKey(tracker1.privateKey));
    assert.equal(exportPublicKey(tracker1.privateKey), exportPublicKey(tracker1.publicKey));
    const t = signTicket(grant, priv);
    assert.deepEqual(verifyTicket(t, new Map([['t1', pub]]), NOW), grant);
    const isBadRequest = (e: unknown): boolean => e instanceof CoterieError && e.code === 'BAD_REQUEST';
    for (const bad of ['', 'not base64!', 'AAAA', exportPrivateKey(tracker1.privateKey)]) assert.throws(() => importPublicKey(bad), isBadRequest);
    for (const bad of ['', 'AAAA', exportPublicKey(tracker1.publicKey)]) assert.throws(() => importPrivateKey(bad), isBadRequest);
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 });
    assert.throws(() => importPublicKey(rsa.publicKey.export({ type: 'spki', format: 'der' }).toString('base64')), isBadRequest);
    assert.throws(() => exportPrivateKey(tracker1.publicKey), isBadRequest);
  });

  test('random strings and mutations never throw anything but ACCESS_DENIED', () => {
    const t = signTicket(grant, tracker1.privateKey);
    const check = (s: unknown): void => {
      try { verifyTicket(s, keys, NOW); } catch (e) {
        assert.ok(e instanceof TicketError && e.code === 'ACCESS_DENIED', String(e));
        return;
      }
      assert.equal(s, t); // only the genuine ticket may pass
    };
    fc.assert(fc.property(fc.string({ maxLength: 1100 }), check), { numRuns: 500 });
    fc.assert(fc.property(fc.nat(t.length - 1), fc.integer({ min: 0x20, max: 0x7e }), (i, c) => {
      check(t.slice(0, i) + String.fromCharCode(c) + t.slice(i + 1));
    }), { numRuns: 500 });
  });
});
