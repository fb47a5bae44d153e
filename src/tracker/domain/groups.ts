/**
 * Groups: create, join requests, accept/reject, leave, listings.
 *
 * Rules (each refusal has its own code):
 * - only the owner lists, accepts and rejects requests (NOT_OWNER);
 * - join while a member: ALREADY_MEMBER; while a request is pending: REQUEST_PENDING;
 * - accept/reject without a pending request: NO_REQUEST; reject closes the request, so the user may ask again;
 * - unknown group: NO_SUCH_GROUP;
 * - the owner leaving hands the group to the member added earliest (smallest add stamp, then
 *   user id) and is refused with OWNER_LAST_MEMBER when no other member is left: a group
 *   always has an owner, and an ownerless group could never accept anyone again;
 * - leaving stops the user's shares in the group (their share rows become `live: false`).
 *
 * Membership is an OR-set of tags (merge.ts): a leave removes the tags it has seen, so an
 * accept racing with it on another tracker wins. Tags count only under the winning claim of the group.
 */
import { CoterieError } from '../../common/errors.js';
import { checkId } from '../../common/names.js';
import { compareStamps, type Stamp } from '../store/hlc.js';
import { isMemberValue, liveTags, splitKey, type GroupValue, type MemberValue } from '../store/merge.js';
import type { Delta } from '../store/store.js';
import { keys, type Caller, type DomainDeps } from './types.js';

export class Groups {
  /**
   * isMember's answer per member row object and claim stamp object. A store with a row cache
   * (SqliteStore) hands out the same frozen value until the row changes, so this is exact; it
   * saves the OR-set reading (canonical JSON of every tag), ~2.5 % of the CPU under the bench's
   * list_files / get_peers load, where every call checks the caller and each sharer.
   */
  private readonly memberOf = new WeakMap<object, { claim: Stamp; member: boolean }>();

  constructor(private readonly d: DomainDeps) {}

  private stamp(): Stamp { return { hlc: this.d.store.clock.now(), origin: this.d.store.origin }; }

  /** The group's row; NO_SUCH_GROUP if there is none. */
  get(group: string): GroupValue {
    const g = this.d.store.get('group', keys.group(group));
    if (!g) throw new CoterieError('NO_SUCH_GROUP', `no group "${group}"`);
    return g;
  }

  isMember(group: string, user: string, g: GroupValue = this.get(group)): boolean {
    if (g.owner === user) return true;
    const m = this.d.store.get('member', keys.member(group, user));
    if (m === undefined) return false;
    const hit = this.memberOf.get(m);
    if (hit && hit.claim === g.created) return hit.member;
    const member = isMemberValue(m, g.created);
    if (Object.isFrozen(m)) this.memberOf.set(m, { claim: g.created, member });
    return member;
  }

  /** The group's row, if `user` is a member; NO_SUCH_GROUP or NOT_MEMBER otherwise. */
  requireMember(group: string, user: string): GroupValue {
    const g = this.get(group);
    if (!this.isMember(group, user, g)) throw new CoterieError('NOT_MEMBER', `you are not a member of group "${group}"; ask to join with join_group`);
    return g;
  }

  requireOwner(group: string, user: string): GroupValue {
    const g = this.get(group);
    if (g.owner !== user) throw new CoterieError('NOT_OWNER', `only the owner of group "${group}" can do that`);
    return g;
  }

  /** Members of a group (owner included), each with the stamp of their earliest live add. */
  members(group: string, g: GroupValue = this.get(group)): { user: string; since: Stamp | null }[] {
    const out = new Map<string, Stamp | null>();
    for (const r of this.d.store.scan('member', keys.membersOf(group))) {
      const tags = liveTags(r.value, g.created);
      if (tags.length > 0) out.set(splitKey(r.key)[1]!, tags[0]!.at);
    }
    if (!out.has(g.owner)) out.set(g.owner, null);
    return [...out].map(([user, since]) => ({ user, since }));
  }

  createGroup(c: Caller, group: string): void {
    checkId('group id', group);
    const { store } = this.d;
    if (store.get('group', keys.group(group))) throw new CoterieError('GROUP_EXISTS', `group "${group}" already exists`);
    const created = this.stamp();
    store.commitLocal([
      { kind: 'group', key: keys.group(group), value: { created, owner: c.user, ownerStamp: created } },
      { kind: 'member', key: keys.member(group, c.user), value: { adds: [{ at: created, claim: created }], removes: [] } },
    ]);
  }

  joinGroup(c: Caller, group: string): void {
    const g = this.get(group);
    if (this.isMember(group, c.user, g)) throw new CoterieError('ALREADY_MEMBER', `you are already a member of group "${group}"`);
    const r = this.d.store.get('request', keys.request(group, c.user));
    if (r?.state === 'pending') throw new CoterieError('REQUEST_PENDING', `your request to join "${group}" is already waiting for the owner`);
    this.d.store.commitLocal([{ kind: 'request', key: keys.request(group, c.user), value: { state: 'pending', at: this.stamp() } }]);
  }

  /** Pending requests (owner only), in user id order. */
  listRequests(c: Caller, group: string): string[] {
    const g = this.requireOwner(group, c.user);
    return this.d.store.scan('request', keys.requestsOf(group))
      .filter((r) => r.value.state === 'pending')
      .map((r) => splitKey(r.key)[1]!)
      .filter((u) => !this.isMember(group, u, g));
  }

  acceptRequest(c: Caller, group: string, user: string): void {
    const g = this.requireOwner(group, c.user);
    this.requirePending(group, user);
    const at = this.stamp();
    this.d.store.commitLocal([
      { kind: 'request', key: keys.request(group, user), value: { state: 'closed', at } },
      { kind: 'member', key: keys.member(group, user), value: { adds: [{ at, claim: g.created }], removes: [] } },
    ]);
  }

  rejectRequest(c: Caller, group: string, user: string): void {
    this.requireOwner(group, c.user);
    this.requirePending(group, user);
    this.d.store.commitLocal([{ kind: 'request', key: keys.request(group, user), value: { state: 'closed', at: this.stamp() } }]);
  }

  /**
   * Leaves the group and stops the caller's shares in it. An owner hands the group over first
   * (see the module comment); returns the new owner then.
   */
  leaveGroup(c: Caller, group: string): { newOwner?: string } {
    const g = this.requireMember(group, c.user);
    const { store } = this.d;
    const deltas: Delta[] = [];
    let newOwner: string | undefined;
    const at = this.stamp();
    if (g.owner === c.user) {
      const heirs = this.members(group, g)
        .filter((m) => m.user !== c.user && m.since !== null)
        .sort((a, b) => compareStamps(a.since!, b.since!) || (a.user < b.user ? -1 : a.user > b.user ? 1 : 0));
      if (heirs.length === 0) {
        throw new CoterieError('OWNER_LAST_MEMBER', `you are the only member of "${group}"; a group cannot be left without an owner`);
      }
      newOwner = heirs[0]!.user;
      deltas.push(
        { kind: 'group', key: keys.group(group), value: { created: g.created, owner: newOwner, ownerStamp: at } },
        // The owner is always a member: a fresh tag keeps that true even against a concurrent leave of the heir.
        { kind: 'member', key: keys.member(group, newOwner), value: { adds: [{ at, claim: g.created }], removes: [] } },
      );
    }
    const m: MemberValue | undefined = store.get('member', keys.member(group, c.user));
    if (m && m.adds.length > 0) deltas.push({ kind: 'member', key: keys.member(group, c.user), value: { adds: [], removes: m.adds } });
    for (const r of store.scan('share', keys.sharesOf(group))) {
      const [, , user] = splitKey(r.key);
      if (user === c.user && r.value.live) deltas.push({ kind: 'share', key: r.key, value: { ...r.value, live: false, at } });
    }
    store.commitLocal(deltas);
    this.d.presence.removeShares(c.user, null, group);
    return newOwner === undefined ? {} : { newOwner };
  }

  /** Every group, in id order, with its owner and member count. */
  listGroups(): { group: string; owner: string; members: number }[] {
    return this.d.store.scan('group', '').map((r) => ({
      group: r.key, owner: r.value.owner, members: this.members(r.key, r.value).length,
    }));
  }

  private requirePending(group: string, user: string): void {
    const r = this.d.store.get('request', keys.request(group, user));
    if (r?.state !== 'pending') throw new CoterieError('NO_REQUEST', `"${user}" has no pending request to join "${group}"`);
  }
}
