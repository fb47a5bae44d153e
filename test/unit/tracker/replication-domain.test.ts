/**
 * Replication meets the domain rules: several trackers act concurrently (no sync in between),
 * then every change is delivered to every tracker in a random order, with duplicates, one at a
 * time (a change that arrives before its predecessor of the same origin is skipped and arrives
 * again later, as the sync protocol would re-send it). In every order: identical digests, and the
 * rules of docs/replicated-state.md hold on every tracker — the first claim of a user or group id
 * wins, membership is add-wins, the earliest share of a file name wins, an owner who left hands over.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { CoterieError } from '../../../src/common/errors.js';
import { compareStamps } from '../../../src/tracker/store/hlc.js';
import type { Change } from '../../../src/tracker/store/store.js';
import { from, infoFor, makeFixture, refuses, SHA, T0, type Fixture } from './fixture.js';
import { seededRandom } from '../../../src/common/prng.js';

const rng = seededRandom;

function trackers(offsets: number[]): Fixture[] {
  return offsets.map((o) => makeFixture({ start: T0 + o }));
}

/** Every change held anywhere, delivered to every tracker in a shuffled order with duplicates. */
function deliverShuffled(fs: Fixture[], seed: number): void {
  const r = rng(seed);
  const all: Change[] = fs.flatMap((f) => f.store.changesSince({}, 1_000_000));
  for (const f of fs) {
    const seqs = [...all, ...all.filter(() => r() < 0.3)];
    for (let i = seqs.length - 1; i > 0; i--) { const j = Math.floor(r() * (i + 1)); [seqs[i], seqs[j]] = [seqs[j]!, seqs[i]!]; }
    for (let pass = 0; pass < 10_000; pass++) {
      let applied = 0;
      for (const c of seqs) applied += f.store.applyRemote([c]);
      if (applied === 0) break;
    }
  }
  const d0 = fs[0]!.store.digest();
  for (const f of fs) assert.equal(f.store.digest(), d0, 'digests differ after delivery');
  const v0 = JSON.stringify(Object.entries(fs[0]!.store.versionVector()).sort());
  for (const f of fs) assert.equal(JSON.stringify(Object.entries(f.store.versionVector()).sort()), v0);
}

/** Full sync in log order (to set up a shared starting point). */
function sync(fs: Fixture[]): void {
  for (let round = 0; round < 2; round++) {
    for (const a of fs) for (const b of fs) if (a !== b) b.store.applyRemote(a.store.changesSince(b.store.versionVector(), 1_000_000));
  }
}

const offsets = fc.array(fc.integer({ min: -400, max: 400 }), { minLength: 2, maxLength: 3 });
const seed = fc.integer();

async function login(f: Fixture, user: string, password: string) {
  const r = await f.domain.accounts.login(user, password, '10.0.0.9:7000', 'f'.repeat(16), from());
  return f.domain.accounts.authenticate(r.token);
}

test('first claim of a user id wins everywhere; the loser is told CLAIM_LOST', async () => {
  await fc.assert(fc.asyncProperty(offsets, seed, async (offs, s) => {
    const fs = trackers(offs);
    // Every tracker creates "bob" with its own password and logs in before hearing of the others.
    const tokens: string[] = [];
    for (const [i, f] of fs.entries()) {
      await f.domain.accounts.createUser('bob', `pw${i}`);
      tokens.push((await f.domain.accounts.login('bob', `pw${i}`, '10.0.0.1:1', 'a'.repeat(16), from())).token);
    }
    const claims = fs.map((f) => f.store.get('user', 'bob')!.created);
    const winner = claims.reduce((best, c, i) => (compareStamps(c, claims[best]!) < 0 ? i : best), 0);
    deliverShuffled(fs, s);
    for (const f of fs) {
      await login(f, 'bob', `pw${winner}`);
      for (const [i] of fs.entries()) {
        if (i === winner) assert.equal(f.domain.accounts.authenticate(tokens[i]).user, 'bob');
        else {
          await refuses('CLAIM_LOST', () => f.domain.accounts.authenticate(tokens[i]));
          await refuses('WRONG_PASSWORD', () => login(f, 'bob', `pw${i}`));
        }
      }
    }
  }), { numRuns: 15 });
});

test('first claim of a group id wins; members added under a losing claim do not count', async () => {
  await fc.assert(fc.asyncProperty(offsets, seed, async (offs, s) => {
    const fs = trackers(offs);
    const owners: { user: string; token: string }[] = [];
    for (const [i, f] of fs.entries()) {
      const u = await f.signUp(`owner${i}`);
      owners.push({ user: `owner${i}`, token: u.token });
    }
    sync(fs);
    // Everyone knows every user; now each tracker creates group "g" for its own user, and on
    // tracker 0 a guest is accepted into its (maybe losing) claim.
    const guest = await fs[0]!.signUp('guest');
    for (const [i, f] of fs.entries()) f.domain.groups.createGroup(f.domain.accounts.authenticate(owners[i]!.token), 'g');
    fs[0]!.domain.groups.joinGroup(guest.caller, 'g');
    fs[0]!.domain.groups.acceptRequest(fs[0]!.domain.accounts.authenticate(owners[0]!.token), 'g', 'guest');
    const claims = fs.map((f) => f.store.get('group', 'g')!.created);
    const winner = claims.reduce((best, c, i) => (compareStamps(c, claims[best]!) < 0 ? i : best), 0);
    deliverShuffled(fs, s);
    for (const f of fs) {
      const g = f.domain.groups.listGroups();
      assert.deepEqual(g.map((x) => [x.group, x.owner]), [['g', `owner${winner}`]]);
      assert.equal(f.domain.groups.isMember('g', 'guest'), winner === 0);
      for (const [i] of fs.entries()) assert.equal(f.domain.groups.isMember('g', `owner${i}`), i === winner);
    }
  }), { numRuns: 15 });
});

test('add wins: an owner leaving (hand-over) races with the heir leaving; the heir stays, as owner', async () => {
  await fc.assert(fc.asyncProperty(offsets, seed, async (offs, s) => {
    const fs = trackers(offs);
    const [a, b] = [fs[0]!, fs[1]!];
    const alice = await a.signUp('alice');
    const bob = await a.signUp('bob');
    a.domain.groups.createGroup(alice.caller, 'g');
    a.domain.groups.joinGroup(bob.caller, 'g');
    a.domain.groups.acceptRequest(alice.caller, 'g', 'bob');
    sync(fs);
    // Concurrently: alice leaves on a (bob is the heir), bob leaves on b.
    assert.deepEqual(a.domain.groups.leaveGroup(alice.caller, 'g'), { newOwner: 'bob' });
    b.domain.groups.leaveGroup(b.domain.accounts.authenticate(bob.token), 'g');
    deliverShuffled(fs, s);
    for (const f of fs) {
      assert.equal(f.domain.groups.isMember('g', 'alice'), false);
      assert.equal(f.domain.groups.isMember('g', 'bob'), true, 'the hand-over add was never seen by the leave');
      assert.deepEqual(f.domain.groups.listGroups(), [{ group: 'g', owner: 'bob', members: 1 }]);
    }
  }), { numRuns: 15 });
});

test('a concurrent accept and reject of one request: the member is in, the request closed, everywhere', async () => {
  await fc.assert(fc.asyncProperty(offsets, seed, async (offs, s) => {
    const fs = trackers(offs);
    const [a, b] = [fs[0]!, fs[1]!];
    const alice = await a.signUp('alice');
    const carol = await a.signUp('carol');
    a.domain.groups.createGroup(alice.caller, 'g');
    a.domain.groups.joinGroup(carol.caller, 'g');
    sync(fs);
    a.domain.groups.acceptRequest(alice.caller, 'g', 'carol');
    b.domain.groups.rejectRequest(b.domain.accounts.authenticate(alice.token), 'g', 'carol');
    deliverShuffled(fs, s);
    for (const f of fs) {
      assert.equal(f.domain.groups.isMember('g', 'carol'), true);
      assert.deepEqual(f.domain.groups.listRequests(f.domain.accounts.authenticate(alice.token), 'g'), []);
    }
  }), { numRuns: 15 });
});

test('the same file name shared twice concurrently: the earliest share wins everywhere, the other is NAME_CONFLICT', async () => {
  await fc.assert(fc.asyncProperty(offsets, seed, async (offs, s) => {
    const fs = trackers(offs);
    const users: string[] = [];
    const a = fs[0]!;
    const owner = await a.signUp('owner');
    a.domain.groups.createGroup(owner.caller, 'g');
    const tokens: string[] = [];
    for (let i = 0; i < fs.length; i++) {
      const u = await a.signUp(`u${i}`);
      a.domain.groups.joinGroup(u.caller, 'g');
      a.domain.groups.acceptRequest(owner.caller, 'g', `u${i}`);
      users.push(`u${i}`);
      tokens.push(u.token);
    }
    sync(fs);
    const infos = fs.map((_, i) => infoFor('x.bin', 50_000, i));
    for (const [i, f] of fs.entries()) {
      const c = f.domain.accounts.authenticate(tokens[i]);
      const r = f.domain.files.uploadFile(c, { group: 'g', info: infos[i]!.info, sha256: SHA, peer: `10.0.0.${i}:7000`, clientId: c.clientId }, from());
      assert.equal(r.status, 'added');
    }
    const created = fs.map((f) => f.store.get('file', `g\u0000x.bin`)!.created);
    const winner = created.reduce((best, c, i) => (compareStamps(c, created[best]!) < 0 ? i : best), 0);
    deliverShuffled(fs, s);
    for (const f of fs) {
      const c = f.domain.accounts.authenticate(tokens[winner]);
      const files = f.domain.files.listFiles(c, 'g').files;
      assert.deepEqual(files.map((x) => [x.name, x.infoHash]), [['x.bin', infos[winner]!.infoHash]]);
      for (const [i] of fs.entries()) {
        if (i === winner) continue;
        const ci = f.domain.accounts.authenticate(tokens[i]);
        try {
          f.domain.files.uploadFile(ci, { group: 'g', info: infos[i]!.info, sha256: SHA, peer: '10.0.0.1:7000', clientId: ci.clientId }, from());
          assert.fail('expected NAME_CONFLICT');
        } catch (e) { assert.ok(e instanceof CoterieError && e.code === 'NAME_CONFLICT', String(e)); }
      }
    }
  }), { numRuns: 10 });
});
