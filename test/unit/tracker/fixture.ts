/**
 * A tracker domain over a MemoryStore with a fake clock, for unit tests. Not a test file itself.
 */
import { createHash } from 'node:crypto';
import assert from 'node:assert/strict';
import { CoterieError } from '../../../src/common/errors.js';
import { signTicket } from '../../../src/protocol/ticket.js';
import { manifestFromHashes, parseManifest } from '../../../src/swarm/manifest.js';
import { createDomain, loadIdentity, type Caller, type CallOrigin, type Domain } from '../../../src/tracker/domain/index.js';
import { Presence } from '../../../src/tracker/presence.js';
import { HybridClock } from '../../../src/tracker/store/hlc.js';
import { MemoryStore } from '../../../src/tracker/store/memory-store.js';

export const T0 = 1_750_000_000_000;

export interface Fixture {
  domain: Domain;
  store: MemoryStore;
  presence: Presence;
  clock: { now: () => number; advance: (ms: number) => void };
  /** create_user + login; returns the caller and token. */
  signUp(user: string, opts?: { clientId?: string; peer?: string; from?: CallOrigin }): Promise<{ caller: Caller; token: string }>;
}

let nextConn = 1;
export const from = (remote = '10.0.0.1', connId: number | null = nextConn++): CallOrigin => ({ remote, connId });

export function makeFixture(opts: { start?: number } = {}): Fixture {
  let t = opts.start ?? T0;
  const clock = { now: () => t, advance: (ms: number) => { t += ms; } };
  const store = new MemoryStore({ clock: new HybridClock(clock.now) });
  const presence = new Presence({ now: clock.now, origin: store.origin });
  const domain = createDomain({
    store, now: clock.now, presence, identity: loadIdentity(store), parseManifest, signTicket,
    scrypt: { N: 1024, r: 8, p: 1 },
  });
  let n = 0;
  return {
    domain, store, presence, clock,
    async signUp(user, o = {}) {
      await domain.accounts.createUser(user, `pw-${user}`);
      const clientId = o.clientId ?? createHash('sha256').update(`${user}/${n++}`).digest('hex').slice(0, 16);
      const r = await domain.accounts.login(user, `pw-${user}`, o.peer ?? `10.0.0.${n}:${6000 + n}`, clientId, o.from ?? from());
      return { caller: domain.accounts.authenticate(r.token), token: r.token };
    },
  };
}

/** A valid info dict (base64) for a file `name` of `length` bytes; `seed` varies its content. */
export function infoFor(name: string, length = 100_000, seed = 0): { info: string; infoHash: string } {
  const pieceLength = 16384;
  const count = Math.ceil(length / pieceLength);
  const pieces = Buffer.alloc(count * 20);
  for (let i = 0; i < count; i++) createHash('sha1').update(`${seed}:${i}`).digest().copy(pieces, i * 20);
  const m = manifestFromHashes(name, length, pieceLength, pieces);
  return { info: m.infoBytes.toString('base64'), infoHash: m.infoHashHex };
}

export const SHA = 'e'.repeat(64);

/** Asserts that `fn` throws (or rejects with) a CoterieError of `code`. */
export async function refuses(code: string, fn: () => unknown): Promise<void> {
  try {
    await fn();
  } catch (e) {
    assert.ok(e instanceof CoterieError, `expected a CoterieError ${code}, got ${String(e)}`);
    assert.equal(e.code, code);
    return;
  }
  assert.fail(`expected ${code}, but it succeeded`);
}
