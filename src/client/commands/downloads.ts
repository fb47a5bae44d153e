/**
 * Download commands: download_file and show_downloads; and `resumeAll`, which login runs to pick
 * up the user's unfinished downloads.
 *
 * A download is recorded in local state before the engine starts it, so a crash at any point
 * leaves a record that the next login resumes (the engine keeps the verified-piece bitfield in the
 * same record through the ResumeStore). Peers come from the tracker (`get_peers`), first when the
 * command runs (so refusals are immediate) and then whenever the engine asks.
 */
import { constants } from 'node:fs';
import { access, stat, unlink } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { CoterieError, describe } from '../../common/errors.js';
import { checkFileName, checkId, safeJoin } from '../../common/names.js';
import type { OpResult } from '../../protocol/rpc.js';
import type { Manifest, PeerInfo } from '../../swarm/api.js';
import { parseManifest } from '../../swarm/manifest.js';
import { downloadLine, printable, recordedDownloadLine } from '../format.js';
import type { DownloadRecord } from '../local-state.js';
import { inBackground, requireUser, type ClientContext } from './context.js';

/** The peers worth connecting to: every one but this client itself. */
function otherPeers(ctx: ClientContext, peers: OpResult<'get_peers'>['peers']): PeerInfo[] {
  return peers.filter((p) => p.clientId !== ctx.clientId && p.addr !== ctx.peer);
}

async function exists(path: string): Promise<boolean> {
  try { await stat(path); return true; } catch { return false; }
}

/**
 * The final path for `dest`: inside it if it is a directory, else `dest` itself (whose parent must
 * exist). Never an existing file, never the target of another unfinished download.
 */
async function destinationFor(ctx: ClientContext, dest: string, name: string): Promise<string> {
  const abs = resolve(ctx.cwd, dest);
  const st = await stat(abs).catch(() => null);
  let path: string;
  if (st?.isDirectory()) {
    // The name came through the tracker from another user: it must stay one component inside `abs`.
    path = safeJoin(abs, name);
  } else if (st) {
    throw new CoterieError('IO', `${dest} already exists (give a directory, or a new file name)`);
  } else {
    const parent = dirname(abs);
    const pst = await stat(parent).catch(() => null);
    if (dest.endsWith('/') || !pst?.isDirectory()) {
      throw new CoterieError('IO', `no directory ${dest.endsWith('/') ? dest : dirname(dest)} (create it first)`);
    }
    path = abs;
  }
  if (await exists(path)) throw new CoterieError('IO', `${path} already exists (choose another destination)`);
  try { await access(dirname(path), constants.W_OK); } catch {
    throw new CoterieError('IO', `cannot write in ${dirname(path)} (choose another destination)`);
  }
  if (ctx.state.downloadingTo(path)) throw new CoterieError('IO', `a download to ${path} is already in progress`);
  return path;
}

export async function downloadFile(ctx: ClientContext, [group, name, dest]: string[]): Promise<void> {
  const user = requireUser(ctx);
  checkId('group id', group!);
  checkFileName(name!);
  const r = await ctx.link.call('get_peers', { group: group!, name: name! });
  const peers = otherPeers(ctx, r.peers);
  if (peers.length === 0) throw new CoterieError('NO_SEEDER', `no online seeder for ${name}`);
  const infoBytes = Buffer.from(r.info, 'base64');
  const manifest = parseManifest(infoBytes);
  if (manifest.infoHashHex !== r.infoHash || manifest.name !== name) {
    throw new CoterieError('BAD_MANIFEST', `the tracker sent a manifest that does not match ${name}; not downloading`);
  }
  const destPath = await destinationFor(ctx, dest!, name!);
  const rec = ctx.state.addDownload({ id: ctx.newId(), user, group: group!, name: name!, destPath, infoBytes, sha256: r.sha256 });
  start(ctx, rec, manifest, peers, r.ticket);
  ctx.out.line(`downloading ${printable(name!)} from ${group} to ${printable(destPath)}`);
}

/** Hands a recorded download to the engine, with its hooks into the tracker and local state. */
function start(ctx: ClientContext, rec: DownloadRecord, manifest: Manifest, peers: PeerInfo[], ticket: string | undefined): void {
  const { group, name } = rec;
  ctx.engine.download({
    id: rec.id, group, manifest, sha256: rec.sha256, destPath: rec.destPath, peers, ticket,
    refreshPeers: async () => {
      try {
        const r = await ctx.link.call('get_peers', { group, name });
        if (r.infoHash !== manifest.infoHashHex) {
          throw new CoterieError('NO_SUCH_FILE', `${name} in ${group} now has other content`);
        }
        return { peers: otherPeers(ctx, r.peers), ticket: r.ticket };
      } catch (err) {
        // No seeder online right now is a lull, not a failure: the engine asks again later.
        if (err instanceof CoterieError && err.code === 'NO_SEEDER') return { peers: [] };
        throw err;
      }
    },
    onFirstPiece: () => {
      // From its first verified piece on, a download is served to others in the group.
      if (ctx.link.user !== rec.user) return;
      ctx.serving.add(group, manifest.infoHashHex);
      ctx.link.call('announce', { group, infoHash: manifest.infoHashHex, peer: ctx.peer, clientId: ctx.clientId })
        .catch((err) => ctx.logger.warn({ group, name, err: describe(err) }, 'announce of a partial download failed'));
    },
    onDone: (result) => {
      if (result.ok) inBackground(ctx, finished(ctx, rec, manifest));
      else failed(ctx, rec, manifest, result.error);
    },
  });
}

/** A verified, complete download becomes a share of this client like an uploaded file. */
async function finished(ctx: ClientContext, rec: DownloadRecord, manifest: Manifest): Promise<void> {
  ctx.state.complete(rec.id);
  try {
    const st = await stat(rec.destPath);
    ctx.state.putShare({
      user: rec.user, group: rec.group, infoHash: manifest.infoHashHex, name: rec.name, path: rec.destPath,
      size: st.size, mtimeMs: st.mtimeMs, infoBytes: rec.infoBytes, sha256: rec.sha256,
    });
    if (ctx.link.user === rec.user) {
      ctx.engine.seed({ group: rec.group, manifest, path: rec.destPath });
      ctx.serving.add(rec.group, manifest.infoHashHex);
      await ctx.link.call('announce', { group: rec.group, infoHash: manifest.infoHashHex, peer: ctx.peer, clientId: ctx.clientId });
      void ctx.link.heartbeatNow();
    }
  } catch (err) {
    ctx.logger.warn({ group: rec.group, name: rec.name, err: describe(err) }, 'could not share a completed download');
  }
  ctx.out.notify(`downloaded ${printable(rec.name)} from ${printable(rec.group)} to ${printable(rec.destPath)}`);
}

/**
 * A download that failed for good (disk full, destination not writable, file inconsistent): its
 * record says why (`show_downloads` prints it) and its `.part` goes, since a failed download is
 * never resumed and the space is likely what the user needs back. Only a verified, renamed file is
 * ever left under the final name, so nothing that looks complete remains.
 */
function failed(ctx: ClientContext, rec: DownloadRecord, manifest: Manifest, error: Error): void {
  ctx.state.failDownload(rec.id, describe(error));
  void unlink(`${rec.destPath}.part`).catch(() => undefined);
  const stillShared = ctx.state.shares(rec.user, rec.group).some((s) => s.infoHash === manifest.infoHashHex);
  if (!stillShared) ctx.serving.delete(rec.group, manifest.infoHashHex);
  ctx.logger.warn({ group: rec.group, name: rec.name, err: describe(error) }, 'download failed');
  ctx.out.notify(`download of ${printable(rec.name)} from ${printable(rec.group)} failed: ${printable(describe(error))}`);
}

/**
 * Starts again every unfinished download of `user`. A download whose file is gone from the group,
 * or changed, or that the user may no longer fetch is marked failed with a warning; with no seeder
 * online or no tracker it starts anyway and waits for peers. Returns how many were started.
 */
export async function resumeAll(ctx: ClientContext, user: string): Promise<number> {
  let started = 0;
  for (const rec of ctx.state.downloads(user)) {
    if (rec.state !== 'downloading') continue;
    const what = `${printable(rec.name)} from ${printable(rec.group)}`;
    let manifest: Manifest;
    try { manifest = parseManifest(rec.infoBytes); } catch (err) {
      ctx.state.failDownload(rec.id, describe(err));
      ctx.out.warn(`cannot resume the download of ${what}: ${describe(err)}`);
      continue;
    }
    let peers: PeerInfo[] = [];
    let ticket: string | undefined;
    try {
      const r = await ctx.link.call('get_peers', { group: rec.group, name: rec.name });
      if (r.infoHash !== manifest.infoHashHex) throw new CoterieError('NO_SUCH_FILE', 'the file now has other content');
      peers = otherPeers(ctx, r.peers);
      ticket = r.ticket;
    } catch (err) {
      const code = err instanceof CoterieError ? err.code : 'INTERNAL';
      if (code === 'NOT_MEMBER' || code === 'NO_SUCH_GROUP' || code === 'NO_SUCH_FILE') {
        ctx.state.failDownload(rec.id, describe(err));
        ctx.out.warn(`cannot resume the download of ${what}: ${describe(err)}`);
        continue;
      }
    }
    start(ctx, rec, manifest, peers, ticket);
    started++;
  }
  return started;
}

export async function showDownloads(ctx: ClientContext): Promise<void> {
  const user = requireUser(ctx);
  const live = new Map(ctx.engine.status().map((s) => [s.id, s]));
  const recs = ctx.state.downloads(user);
  if (recs.length === 0) { ctx.out.line('(no downloads)'); return; }
  for (const rec of recs) {
    const s = live.get(rec.id);
    ctx.out.line(s ? downloadLine({ ...s, group: rec.group, name: rec.name }) : recordedDownloadLine(rec));
  }
}
