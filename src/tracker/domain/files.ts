/**
 * Files and shares: upload_file, announce, stop_share, list_files, get_peers.
 *
 * A file row `(group, name)` holds the manifest (the bencoded info dictionary, checked here with
 * the swarm's manifest parser, so the tracker never hands out a dictionary a client cannot use).
 * A share row `(group, infoHash, user, clientId)` says a client serves it; it is durable (listed
 * as a seeder even while the user is offline), while being handed out as a peer also needs a live
 * presence lease. Only members see or touch a group's files (NOT_MEMBER).
 */
import { CoterieError, describe } from '../../common/errors.js';
import { checkFileName } from '../../common/names.js';
import type { OpArgs, OpResult } from '../../protocol/rpc.js';
import { compareStamps, type Stamp } from '../store/hlc.js';
import { splitKey, type FileValue, type GroupValue, type ShareValue } from '../store/merge.js';
import type { Delta } from '../store/store.js';
import type { Groups } from './groups.js';
import { keys, MAX_PEERS_ANSWERED, TICKET_MS, type CallOrigin, type Caller, type DomainDeps } from './types.js';

/**
 * A ticket signed for (user, group, infoHash) is handed out again for this long instead of signing
 * a new one: Ed25519 signing was 5 % of the tracker's CPU under the bench's get_peers load (200
 * clients asking for 20 files each, ~800 get_peers/s). A reused ticket has at least
 * TICKET_MS - TICKET_REUSE_MS (9 of 10 minutes) left, so a download admitted with it runs nearly
 * as long as with a fresh one.
 */
const TICKET_REUSE_MS = 60_000;
/** Tickets remembered at most (the oldest are forgotten first); ~200 bytes each. */
const TICKET_CACHE_MAX = 20_000;

export class Files {
  private readonly tickets = new Map<string, { ticket: string; issuedAt: number }>();
  /**
   * What files() and shares() derive from a scan (filter + key split), kept per scan result. A
   * store that caches scans (SqliteStore) returns the same frozen array until a write changes it,
   * so this is exact; it took the key splitting and filtering (~8 % of the CPU of list_files-heavy
   * load, 20 files a group) off the hot path. Weak: forgotten with the scan result. The file list
   * is also tied to the group's claim stamp object it was filtered by.
   */
  private readonly derivedFiles = new WeakMap<object, { created: Stamp; list: { name: string; file: FileValue }[] }>();
  private readonly derivedShares = new WeakMap<object, { user: string; clientId: string; share: ShareValue }[]>();

  constructor(private readonly d: DomainDeps, private readonly groups: Groups) {}

  private stamp(): Stamp { return { hlc: this.d.store.clock.now(), origin: this.d.store.origin }; }

  /** Files of a group that count: those shared under the group's winning claim. */
  private files(group: string, g: GroupValue): { name: string; file: FileValue }[] {
    const rows = this.d.store.scan('file', keys.filesOf(group));
    const hit = this.derivedFiles.get(rows);
    if (hit && hit.created === g.created) return hit.list;
    const list = rows
      .filter((r) => compareStamps(r.value.claim, g.created) === 0)
      .map((r) => ({ name: splitKey(r.key)[1]!, file: r.value }));
    if (Object.isFrozen(rows)) this.derivedFiles.set(rows, { created: g.created, list });
    return list;
  }

  private fileByName(group: string, name: string, g: GroupValue): FileValue {
    const f = this.d.store.get('file', keys.file(group, name));
    if (!f || compareStamps(f.claim, g.created) !== 0) throw new CoterieError('NO_SUCH_FILE', `no file "${name}" in group "${group}"`);
    return f;
  }

  /** Live share rows of one file: (user, clientId, value). */
  private shares(group: string, infoHash: string): { user: string; clientId: string; share: ShareValue }[] {
    const rows = this.d.store.scan('share', keys.sharesOfFile(group, infoHash));
    const hit = this.derivedShares.get(rows);
    if (hit) return hit;
    const list = rows
      .filter((r) => r.value.live)
      .map((r) => { const p = splitKey(r.key); return { user: p[2]!, clientId: p[3]!, share: r.value }; });
    if (Object.isFrozen(rows)) this.derivedShares.set(rows, list);
    return list;
  }

  /** A share delta, or nothing if the same live share is already recorded (re-announce at every login). */
  private shareDelta(group: string, infoHash: string, user: string, clientId: string, peer: string): Delta[] {
    const key = keys.share(group, infoHash, user, clientId);
    const old = this.d.store.get('share', key);
    if (old?.live && old.peer === peer) return [];
    return [{ kind: 'share', key, value: { peer, live: true, at: this.stamp() } }];
  }

  uploadFile(c: Caller, a: OpArgs<'upload_file'>, from: CallOrigin): OpResult<'upload_file'> {
    const g = this.groups.requireMember(a.group, c.user);
    let m;
    try { m = this.d.parseManifest(Buffer.from(a.info, 'base64')); }
    catch (err) {
      if (err instanceof CoterieError && err.code === 'BAD_MANIFEST') throw err;
      throw new CoterieError('BAD_MANIFEST', `the file's metadata is not a valid torrent info dictionary: ${describe(err)}`);
    }
    checkFileName(m.name);
    const infoHash = m.infoHashHex;
    const existing = this.d.store.get('file', keys.file(a.group, m.name));
    let status: 'added' | 'seeder';
    const deltas: Delta[] = [];
    if (existing && compareStamps(existing.claim, g.created) === 0) {
      if (existing.infoHash !== infoHash) {
        throw new CoterieError('NAME_CONFLICT', `group "${a.group}" already has a different file named "${m.name}"`);
      }
      status = 'seeder';
    } else {
      status = 'added';
      deltas.push({
        kind: 'file', key: keys.file(a.group, m.name),
        value: {
          infoHash, size: m.length, pieceLength: m.pieceLength, sha256: a.sha256,
          info: m.infoBytes.toString('base64'), claim: g.created, created: this.stamp(),
        },
      });
    }
    deltas.push(...this.shareDelta(a.group, infoHash, c.user, a.clientId, a.peer));
    if (deltas.length > 0) this.d.store.commitLocal(deltas);
    this.touchLease(c, a.clientId, a.peer, { group: a.group, infoHash }, from);
    return { infoHash, status };
  }

  announce(c: Caller, a: OpArgs<'announce'>, from: CallOrigin): OpResult<'announce'> {
    const g = this.groups.requireMember(a.group, c.user);
    if (!this.files(a.group, g).some((f) => f.file.infoHash === a.infoHash)) {
      throw new CoterieError('NO_SUCH_FILE', `group "${a.group}" has no file with info-hash ${a.infoHash}`);
    }
    const deltas = this.shareDelta(a.group, a.infoHash, c.user, a.clientId, a.peer);
    if (deltas.length > 0) this.d.store.commitLocal(deltas);
    this.touchLease(c, a.clientId, a.peer, { group: a.group, infoHash: a.infoHash }, from);
    return {};
  }

  stopShare(c: Caller, a: OpArgs<'stop_share'>): OpResult<'stop_share'> {
    const g = this.groups.requireMember(a.group, c.user);
    const f = this.fileByName(a.group, a.name, g);
    const key = keys.share(a.group, f.infoHash, c.user, a.clientId);
    const s = this.d.store.get('share', key);
    if (!s?.live) throw new CoterieError('NOT_SHARING', `this client does not share "${a.name}" in "${a.group}"`);
    this.d.store.commitLocal([{ kind: 'share', key, value: { ...s, live: false, at: this.stamp() } }]);
    this.d.presence.removeShares(c.user, a.clientId, a.group, f.infoHash);
    return { infoHash: f.infoHash };
  }

  listFiles(c: Caller, group: string): OpResult<'list_files'> {
    const g = this.groups.requireMember(group, c.user);
    const memberCache = new Map<string, boolean>();
    const isMember = (u: string) => {
      let v = memberCache.get(u);
      if (v === undefined) { v = this.groups.isMember(group, u, g); memberCache.set(u, v); }
      return v;
    };
    return {
      files: this.files(group, g).map(({ name, file }) => {
        const shares = this.shares(group, file.infoHash).filter((s) => isMember(s.user));
        return {
          name, size: file.size, infoHash: file.infoHash,
          seeders: new Set(shares.map((s) => s.user)).size,
          online: shares.filter((s) => this.d.presence.isOnline(s.user, s.clientId)).length,
        };
      }),
    };
  }

  /**
   * The file's manifest and the online members serving it (the caller's own client left out),
   * with an access ticket for the seeders. NO_SEEDER if nobody serving it is online.
   */
  getPeers(c: Caller, group: string, name: string): OpResult<'get_peers'> {
    const g = this.groups.requireMember(group, c.user);
    const f = this.fileByName(group, name, g);
    const peers: { addr: string; user: string; clientId: string }[] = [];
    for (const s of this.shares(group, f.infoHash)) {
      if (peers.length >= MAX_PEERS_ANSWERED) break;
      if (s.user === c.user && s.clientId === c.clientId) continue;
      const lease = this.d.presence.get(s.user, s.clientId);
      if (!lease || !this.groups.isMember(group, s.user, g)) continue;
      peers.push({ addr: lease.peer, user: s.user, clientId: s.clientId });
    }
    if (peers.length === 0) throw new CoterieError('NO_SEEDER', `no seeder of "${name}" is online right now; try again later`);
    const result: OpResult<'get_peers'> = { infoHash: f.infoHash, info: f.info, sha256: f.sha256, size: f.size, peers };
    if (this.d.signTicket) result.ticket = this.ticket(c.user, group, f.infoHash);
    return result;
  }

  /** An access ticket for (user, group, infoHash): a recent one again (see TICKET_REUSE_MS), or a new one. */
  private ticket(user: string, group: string, infoHash: string): string {
    const now = this.d.now();
    const k = `${user}\u0000${group}\u0000${infoHash}`;
    const hit = this.tickets.get(k);
    if (hit && now - hit.issuedAt < TICKET_REUSE_MS && now >= hit.issuedAt) return hit.ticket;
    const ticket = this.d.signTicket!(
      { user, group, infoHash, expiresAt: now + TICKET_MS, origin: this.d.identity.origin },
      this.d.identity.privateKey,
    );
    this.tickets.delete(k);
    this.tickets.set(k, { ticket, issuedAt: now });
    if (this.tickets.size > TICKET_CACHE_MAX) {
      for (const old of this.tickets.keys()) { this.tickets.delete(old); if (this.tickets.size <= TICKET_CACHE_MAX * 0.9) break; }
    }
    return ticket;
  }

  /** Uploading or announcing from a client proves it is online: renew (or start) its lease. */
  private touchLease(c: Caller, clientId: string, peer: string, ref: { group: string; infoHash: string }, from: CallOrigin): void {
    const p = this.d.presence;
    if (p.isOnline(c.user, clientId)) p.addShare(c.user, clientId, ref);
    p.renew(c.user, clientId, peer, p.get(c.user, clientId)?.shares ?? [ref], from.connId);
  }
}
