import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { hashToken, SESSION_MS } from '../../../src/tracker/domain/index.js';
import { HybridClock } from '../../../src/tracker/store/hlc.js';
import { MemoryStore } from '../../../src/tracker/store/memory-store.js';
import { from, makeFixture, refuses, T0 } from './fixture.js';

const CID = '0123456789abcdef';

describe('accounts', () => {
  test('create_user: taken ids and invalid names are refused', async () => {
    const f = makeFixture();
    await f.domain.accounts.createUser('alice', 'secret');
    await refuses('USER_EXISTS', () => f.domain.accounts.createUser('alice', 'other'));
    await refuses('INVALID_NAME', () => f.domain.accounts.createUser('a/b', 'pw'));
    await refuses('INVALID_NAME', () => f.domain.accounts.createUser('..', 'pw'));
    // The password is not stored: only a salted scrypt hash.
    const row = f.store.get('user', 'alice')!;
    assert.match(row.hash, /^scrypt:1024:8:1:[0-9a-f]{64}$/);
    assert.ok(!JSON.stringify(row).includes('secret'));
  });

  test('two concurrent create_user calls of one id: exactly one succeeds', async () => {
    const f = makeFixture();
    const rs = await Promise.allSettled([f.domain.accounts.createUser('bob', 'a'), f.domain.accounts.createUser('bob', 'b')]);
    assert.equal(rs.filter((r) => r.status === 'fulfilled').length, 1);
    assert.equal(f.store.versionVector()[f.store.origin], 2); // tkey + one user
  });

  test('login: unknown user, wrong password, then success with a token and the tracker keys', async () => {
    const f = makeFixture();
    await f.domain.accounts.createUser('alice', 'secret');
    await refuses('NO_SUCH_USER', () => f.domain.accounts.login('nobody', 'x', 'h:1', CID, from()));
    await refuses('WRONG_PASSWORD', () => f.domain.accounts.login('alice', 'wrong', 'h:1', CID, from()));
    const r = await f.domain.accounts.login('alice', 'secret', '10.1.1.1:7000', CID, from());
    assert.match(r.token, /^[0-9a-f]{64}$/);
    assert.equal(r.user, 'alice');
    assert.deepEqual(r.trackerKeys, [{ origin: f.store.origin, publicKey: f.domain.deps.identity.publicKeyB64 }]);
    // Only the token's hash is stored.
    const s = f.store.get('session', hashToken(r.token));
    assert.equal(s?.user, 'alice');
    assert.equal(f.store.get('session', r.token), undefined);
    // The login starts the client's presence lease.
    assert.equal(f.presence.get('alice', CID)?.peer, '10.1.1.1:7000');
  });

  test('authenticate: missing, unknown, revoked and expired sessions are UNAUTHENTICATED', async () => {
    const f = makeFixture();
    const { token } = await f.signUp('alice');
    const a = f.domain.accounts;
    await refuses('UNAUTHENTICATED', () => a.authenticate(undefined));
    await refuses('UNAUTHENTICATED', () => a.authenticate(''));
    await refuses('UNAUTHENTICATED', () => a.authenticate('f'.repeat(64)));
    assert.equal(a.authenticate(token).user, 'alice');
    f.clock.advance(SESSION_MS - 1);
    assert.equal(a.authenticate(token).user, 'alice');
    f.clock.advance(1);
    await refuses('UNAUTHENTICATED', () => a.authenticate(token));

    const s2 = await f.signUp('bob');
    a.logout(s2.caller);
    await refuses('UNAUTHENTICATED', () => a.authenticate(s2.token));
    assert.equal(f.presence.get('bob', s2.caller.clientId), undefined);
  });

  test('one user, several sessions: logging out one leaves the others', async () => {
    const f = makeFixture();
    await f.domain.accounts.createUser('alice', 'pw');
    const t1 = (await f.domain.accounts.login('alice', 'pw', 'h:1', '1111111111111111', from())).token;
    const t2 = (await f.domain.accounts.login('alice', 'pw', 'h:2', '2222222222222222', from())).token;
    f.domain.accounts.logout(f.domain.accounts.authenticate(t1));
    await refuses('UNAUTHENTICATED', () => f.domain.accounts.authenticate(t1));
    assert.equal(f.domain.accounts.authenticate(t2).clientId, '2222222222222222');
  });

  test('heartbeat renews the lease and extends a session past half its life', async () => {
    const f = makeFixture();
    const { caller, token } = await f.signUp('alice', { clientId: CID });
    f.clock.advance(14_000);
    f.domain.accounts.heartbeat(caller, '10.9.9.9:1', CID, [{ group: 'g', infoHash: 'a'.repeat(40) }], from());
    f.clock.advance(14_000);
    assert.equal(f.presence.get('alice', CID)?.peer, '10.9.9.9:1');
    assert.deepEqual(f.presence.get('alice', CID)?.shares, [{ group: 'g', infoHash: 'a'.repeat(40) }]);
    f.clock.advance(2_000);
    assert.equal(f.presence.get('alice', CID), undefined, 'lease expired 15 s after the last renewal');

    const before = f.store.get('session', hashToken(token))!.expires;
    f.domain.accounts.heartbeat(caller, 'h:1', CID, [], from());
    assert.equal(f.store.get('session', hashToken(token))!.expires, before, 'young session: no write');
    f.clock.advance(SESSION_MS / 2 + 1);
    f.domain.accounts.heartbeat(caller, 'h:1', CID, [], from());
    assert.equal(f.store.get('session', hashToken(token))!.expires, f.clock.now() + SESSION_MS);
    f.clock.advance(SESSION_MS - 1000);
    assert.equal(f.domain.accounts.authenticate(token).user, 'alice');
  });

  test('CLAIM_LOST: an earlier create_user of the same id on another tracker wins', async () => {
    const f = makeFixture();
    const { token } = await f.signUp('dave');
    // Another tracker, whose clock is 5 s behind, created "dave" concurrently (before hearing of ours).
    const other = new MemoryStore({ clock: new HybridClock(() => T0 - 5_000) });
    other.commitLocal([{ kind: 'user', key: 'dave', value: { salt: '00', hash: 'scrypt:1024:8:1:00', created: { hlc: other.clock.now(), origin: other.origin } } }]);
    assert.equal(f.store.applyRemote(other.changesSince({}, 100)), 1);
    await refuses('CLAIM_LOST', () => f.domain.accounts.authenticate(token));
    // The loser's password no longer opens the account.
    await refuses('WRONG_PASSWORD', () => f.domain.accounts.login('dave', 'pw-dave', 'h:1', CID, from()));
  });

  test('login rate limit per user: 5 failures a minute, then RATE_LIMITED even with the right password', async () => {
    const f = makeFixture();
    await f.domain.accounts.createUser('alice', 'pw');
    for (let i = 0; i < 5; i++) await refuses('WRONG_PASSWORD', () => f.domain.accounts.login('alice', 'bad', 'h:1', CID, from(`10.0.1.${i}`)));
    await refuses('RATE_LIMITED', () => f.domain.accounts.login('alice', 'pw', 'h:1', CID, from('10.0.2.1')));
    f.clock.advance(60_001);
    const r = await f.domain.accounts.login('alice', 'pw', 'h:1', CID, from('10.0.2.1'));
    assert.ok(r.token);
  });

  test('login rate limit per address: 30 failures a minute from one address', async () => {
    const f = makeFixture();
    await f.domain.accounts.createUser('victim', 'pw');
    for (let i = 0; i < 30; i++) {
      await refuses('NO_SUCH_USER', () => f.domain.accounts.login(`guess${i}`, 'x', 'h:1', CID, from('10.6.6.6')));
    }
    await refuses('RATE_LIMITED', () => f.domain.accounts.login('victim', 'pw', 'h:1', CID, from('10.6.6.6')));
    // Another address is not affected.
    assert.ok((await f.domain.accounts.login('victim', 'pw', 'h:1', CID, from('10.7.7.7'))).token);
  });

  test('session keys are sha256 of the token', async () => {
    const f = makeFixture();
    const { token } = await f.signUp('erin');
    assert.equal(hashToken(token), createHash('sha256').update(token).digest('hex'));
    assert.equal(f.store.scan('session', '').length, 1);
    assert.equal(f.store.scan('session', '')[0]!.key, hashToken(token));
  });
});
