/**
 * Accounts and sessions: create_user, login, logout, heartbeat, and the session check every
 * authenticated call goes through.
 *
 * Passwords: scrypt with a 16-byte per-user salt, parameters stored with the hash
 * (`scrypt:N:r:p:hex`) so they can be raised later. Sessions: 32 random bytes handed to the
 * client once; only sha256(token) is stored (and replicated), so a leaked database or log does
 * not leak usable tokens, and a session survives failover to another tracker.
 */
import { createHash, randomBytes, scrypt as scryptCb, timingSafeEqual } from 'node:crypto';
import { CoterieError } from '../../common/errors.js';
import { checkId } from '../../common/names.js';
import type { ShareRef } from '../../protocol/rpc.js';
import { compareStamps, stampEquals, type Stamp } from '../store/hlc.js';
import type { SessionValue } from '../store/merge.js';
import { trackerKeys } from './identity.js';
import { FailureLimiter } from './rate-limit.js';
import { keys, SESSION_MS, type CallOrigin, type Caller, type DomainDeps, type ScryptParams } from './types.js';

export const DEFAULT_SCRYPT: ScryptParams = { N: 1 << 14, r: 8, p: 1 };
const KEY_LEN = 32;

function scrypt(password: string, salt: Buffer, p: ScryptParams): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scryptCb(password, salt, KEY_LEN, { N: p.N, r: p.r, p: p.p, maxmem: 256 * p.N * p.r + (1 << 20) }, (err, key) => {
      if (err) reject(err); else resolve(key);
    });
  });
}

export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

export class Accounts {
  private readonly byUser: FailureLimiter;
  private readonly byAddress: FailureLimiter;
  private readonly params: ScryptParams;
  private readonly random: (n: number) => Buffer;

  constructor(private readonly d: DomainDeps) {
    const l = d.loginLimits ?? { perUser: 5, perAddress: 30, windowMs: 60_000 };
    // The budgets are network-wide: this tracker allows its share (see DomainDeps.trackerCount).
    const n = Math.max(1, Math.floor(d.trackerCount ?? 1));
    const share = (limit: number) => Math.max(1, Math.ceil(limit / n));
    this.byUser = new FailureLimiter({ limit: share(l.perUser), windowMs: l.windowMs, now: d.now, what: 'user' });
    this.byAddress = new FailureLimiter({ limit: share(l.perAddress), windowMs: l.windowMs, now: d.now, what: 'address' });
    this.params = d.scrypt ?? DEFAULT_SCRYPT;
    this.random = d.random ?? randomBytes;
  }

  private stamp(): Stamp { return { hlc: this.d.store.clock.now(), origin: this.d.store.origin }; }

  /** New account. USER_EXISTS if the id is taken here; INVALID_NAME for a bad id. */
  async createUser(user: string, password: string): Promise<void> {
    checkId('user id', user);
    const { store } = this.d;
    if (store.get('user', keys.user(user))) throw new CoterieError('USER_EXISTS', `user "${user}" already exists`);
    const salt = this.random(16);
    const key = await scrypt(password, salt, this.params);
    // Checked again after the await: a concurrent create_user of the same id may have committed meanwhile.
    if (store.get('user', keys.user(user))) throw new CoterieError('USER_EXISTS', `user "${user}" already exists`);
    const { N, r, p } = this.params;
    store.commitLocal([{
      kind: 'user', key: keys.user(user),
      value: { salt: salt.toString('hex'), hash: `scrypt:${N}:${r}:${p}:${key.toString('hex')}`, created: this.stamp() },
    }]);
  }

  /**
   * Checks the password and opens a session for `clientId` (at peer address `peer`), which also
   * starts its presence lease. Failures count against the user and the remote address.
   */
  async login(user: string, password: string, peer: string, clientId: string, from: CallOrigin):
    Promise<{ token: string; user: string; trackerKeys: { origin: string; publicKey: string }[] }> {
    this.byAddress.check(from.remote);
    this.byUser.check(user);
    const { store } = this.d;
    const row = store.get('user', keys.user(user));
    if (!row) {
      this.byAddress.fail(from.remote);
      throw new CoterieError('NO_SUCH_USER', `no user "${user}"; create it first with create_user`);
    }
    if (!(await this.verify(password, row.salt, row.hash))) {
      this.byAddress.fail(from.remote);
      this.byUser.fail(user);
      throw new CoterieError('WRONG_PASSWORD', 'wrong password');
    }
    this.byUser.reset(user);
    // The row may have changed during the await (a replicated earlier claim won): bind the session to what we checked.
    const now = store.get('user', keys.user(user));
    if (!now || !stampEquals(now.created, row.created)) throw new CoterieError('CLAIM_LOST', `user id "${user}" was claimed first on another tracker`);
    const token = this.random(32).toString('hex');
    const tokenHash = hashToken(token);
    store.commitLocal([{
      kind: 'session', key: keys.session(tokenHash),
      value: { user, clientId, claim: row.created, expires: this.d.now() + SESSION_MS, live: true, at: this.stamp() },
    }]);
    this.d.presence.renew(user, clientId, peer, [], from.connId);
    return { token, user, trackerKeys: trackerKeys(store) };
  }

  /**
   * The caller of an authenticated op. UNAUTHENTICATED if the token is missing, unknown, expired
   * or revoked; CLAIM_LOST if the user id now belongs to an earlier claim made on another tracker.
   */
  authenticate(token: string | undefined): Caller {
    if (!token) throw new CoterieError('UNAUTHENTICATED', 'not logged in');
    const tokenHash = hashToken(token);
    const s = this.d.store.get('session', keys.session(tokenHash));
    if (!s || !s.live) throw new CoterieError('UNAUTHENTICATED', 'session ended; log in again');
    if (s.expires <= this.d.now()) throw new CoterieError('UNAUTHENTICATED', 'session expired; log in again');
    const u = this.d.store.get('user', keys.user(s.user));
    if (!u || compareStamps(u.created, s.claim) !== 0) {
      throw new CoterieError('CLAIM_LOST', `user id "${s.user}" was claimed first on another tracker; create another user`);
    }
    return { user: s.user, clientId: s.clientId, tokenHash };
  }

  /** Ends the session (revocation replicates) and drops the client's lease. */
  logout(c: Caller, clientId?: string): void {
    const { store } = this.d;
    const s = store.get('session', keys.session(c.tokenHash));
    if (s) store.commitLocal([{ kind: 'session', key: keys.session(c.tokenHash), value: { ...s, live: false, at: this.stamp() } }]);
    this.d.presence.drop(c.user, clientId ?? c.clientId);
    if (clientId && clientId !== c.clientId) this.d.presence.drop(c.user, c.clientId);
  }

  /**
   * Renews the client's lease with the set of shares it serves now. A session past half its life
   * is extended, so a client that stays up keeps working (one durable write every few days).
   */
  heartbeat(c: Caller, peer: string, clientId: string, shares: ShareRef[], from: CallOrigin): { user: string } {
    this.d.presence.renew(c.user, clientId, peer, shares, from.connId);
    const { store } = this.d;
    const s = store.get('session', keys.session(c.tokenHash));
    if (s && s.live && s.expires - this.d.now() < SESSION_MS / 2) {
      const value: SessionValue = { ...s, expires: this.d.now() + SESSION_MS, at: this.stamp() };
      store.commitLocal([{ kind: 'session', key: keys.session(c.tokenHash), value }]);
    }
    return { user: c.user };
  }

  private async verify(password: string, saltHex: string, stored: string): Promise<boolean> {
    const m = /^scrypt:(\d+):(\d+):(\d+):([0-9a-f]+)$/.exec(stored);
    if (!m) return false;
    const params = { N: Number(m[1]), r: Number(m[2]), p: Number(m[3]) };
    // Refuse absurd parameters from a (replicated) row rather than let one row eat the memory.
    if (params.N > 1 << 20 || params.r > 32 || params.p > 16) return false;
    const expect = Buffer.from(m[4]!, 'hex');
    const got = await scrypt(password, Buffer.from(saltHex, 'hex'), params);
    return got.length === expect.length && timingSafeEqual(got, expect);
  }
}
