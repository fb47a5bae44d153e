/**
 * File commands: list_files, upload_file, stop_share; and `reshareAll`, which login runs to serve
 * again what this client shared for the user before.
 *
 * A share is three things kept in step: the tracker's record (upload_file / announce / stop_share),
 * the engine serving the file (seed / unseed), and the local record (what login re-shares). The
 * heartbeat's share list follows `ctx.serving`.
 */
import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { CoterieError, describe } from '../../common/errors.js';
import { checkFileName, checkId } from '../../common/names.js';
import type { Manifest } from '../../swarm/api.js';
import { buildManifest, choosePieceLength, MAX_PIECE_LENGTH, parseManifest } from '../../swarm/manifest.js';
import { fileLine, humanSize, plural, printable } from '../format.js';
import type { ShareRecord } from '../local-state.js';
import { requireUser, type ClientContext } from './context.js';

/**
 * The upload_file RPC carries the info dictionary in base64, at most 512 KiB, so at most about
 * 19,000 piece hashes; files too large for that at the default piece length get longer pieces.
 */
const MAX_UPLOAD_PIECES = 16_000;

/**
 * Hidden benchmark knob: COTERIE_PIECE_KIB (e.g. 256) forces the piece length, so that the
 * benchmark (bench/) compares like with like with libtorrent's 256 KiB pieces. Ignored unless it
 * is a power of two from 16 KiB to 16 MiB that keeps the file within MAX_UPLOAD_PIECES.
 */
function forcedPieceLength(size: number): number | null {
  const p = Number(process.env['COTERIE_PIECE_KIB']) * 1024;
  const ok = Number.isInteger(p) && p >= 16 * 1024 && p <= MAX_PIECE_LENGTH && (p & (p - 1)) === 0 && Math.ceil(size / p) <= MAX_UPLOAD_PIECES;
  return ok ? p : null;
}

function pieceLengthFor(size: number): number {
  const forced = forcedPieceLength(size);
  if (forced !== null) return forced;
  let p = choosePieceLength(size);
  while (p < MAX_PIECE_LENGTH && Math.ceil(size / p) > MAX_UPLOAD_PIECES) p *= 2;
  return p;
}

export async function listFiles(ctx: ClientContext, [group]: string[]): Promise<void> {
  requireUser(ctx);
  checkId('group id', group!);
  const { files } = await ctx.link.call('list_files', { group: group! });
  if (files.length === 0) { ctx.out.line(`(no files in ${group})`); return; }
  for (const f of files) ctx.out.line(fileLine(f));
}

async function statFile(path: string, shownAs: string): Promise<{ size: number; mtimeMs: number }> {
  let st;
  try { st = await stat(path); } catch (e) {
    const code = (e as { code?: string }).code;
    throw new CoterieError('IO', code === 'ENOENT' ? `no such file: ${shownAs}` : `cannot read ${shownAs} (${code ?? describe(e)})`);
  }
  if (!st.isFile()) throw new CoterieError('IO', `${shownAs} is not a regular file`);
  return { size: st.size, mtimeMs: st.mtimeMs };
}

/**
 * Hashes the file (unless this client hashed the same unchanged file before), registers it in the
 * group and serves it. Membership is checked before hashing, so a refusal is immediate even for a
 * large file.
 */
export async function uploadFile(ctx: ClientContext, [filePath, group]: string[]): Promise<void> {
  const user = requireUser(ctx);
  checkId('group id', group!);
  const path = resolve(ctx.cwd, filePath!);
  const st = await statFile(path, filePath!);
  await ctx.link.call('list_files', { group: group! });

  let manifest: Manifest;
  let sha256: string;
  const known = ctx.state.shareByPath(path);
  const before = ctx.state.shares(user, group!);
  if (known && known.size === st.size && known.mtimeMs === st.mtimeMs) {
    manifest = parseManifest(known.infoBytes);
    sha256 = known.sha256;
  } else {
    const built = await buildManifest(path, { pieceLength: pieceLengthFor(st.size) }, (done, total) => {
      ctx.out.progress(`hashing ${printable(filePath!)}  ${total === 0 ? 100 : Math.floor((done * 100) / total)}%`);
    });
    manifest = built.manifest;
    sha256 = built.sha256;
    const after = await statFile(path, filePath!);
    if (after.mtimeMs !== st.mtimeMs || after.size !== st.size) {
      throw new CoterieError('IO', `${filePath} changed while it was being hashed; try again once it is complete`);
    }
  }

  const r = await ctx.link.call('upload_file', {
    group: group!, info: manifest.infoBytes.toString('base64'), sha256, peer: ctx.peer, clientId: ctx.clientId,
  });
  if (r.infoHash !== manifest.infoHashHex) {
    throw new CoterieError('PROTOCOL', 'the tracker registered the file under another info-hash; it was not shared');
  }
  const rec: ShareRecord = {
    user, group: group!, infoHash: manifest.infoHashHex, name: manifest.name, path,
    size: st.size, mtimeMs: st.mtimeMs, infoBytes: manifest.infoBytes, sha256,
  };
  ctx.state.putShare(rec);
  ctx.engine.seed({ group: group!, manifest, path });
  ctx.serving.add(group!, manifest.infoHashHex);
  void ctx.link.heartbeatNow();
  const name = printable(manifest.name);
  const wasMine = before.some((s) => s.infoHash === manifest.infoHashHex);
  ctx.out.line(r.status === 'added'
    ? `shared ${name} in ${group} (${humanSize(manifest.length)}, ${plural(manifest.pieceCount, 'piece')})`
    : wasMine
      ? `shared ${name} in ${group} (you were already sharing it)`
      : `shared ${name} in ${group} (already shared by others: you are now a seeder too)`);
}

export async function stopShare(ctx: ClientContext, [group, name]: string[]): Promise<void> {
  const user = requireUser(ctx);
  checkId('group id', group!);
  checkFileName(name!);
  const local = ctx.state.shareByName(user, group!, name!);
  let infoHash: string;
  try {
    infoHash = (await ctx.link.call('stop_share', { group: group!, name: name!, peer: ctx.peer, clientId: ctx.clientId })).infoHash;
  } catch (err) {
    // NOT_SHARING with a local record: the tracker already forgot it (or a repeated call after a
    // failover found it done). Either way, stopping here is what the user asked for.
    if (!(err instanceof CoterieError && err.code === 'NOT_SHARING' && local)) throw err;
    infoHash = local.infoHash;
  }
  ctx.engine.unseed(group!, infoHash);
  ctx.serving.delete(group!, infoHash);
  ctx.state.removeShare(user, group!, infoHash);
  void ctx.link.heartbeatNow();
  ctx.out.line(`stopped sharing ${printable(name!)} in ${group}`);
}

/**
 * Serves again every file this client shared for `user`: a file whose size or mtime changed (or
 * that is gone) is dropped with a warning, since its pieces no longer match; the rest is announced
 * to the tracker again (registered anew if the tracker lost it) and seeded.
 */
export async function reshareAll(ctx: ClientContext, user: string): Promise<void> {
  for (const s of ctx.state.shares(user)) {
    const where = `${printable(s.name)} in ${printable(s.group)}`;
    let unchanged = false;
    try {
      const st = await stat(s.path);
      unchanged = st.isFile() && st.size === s.size && st.mtimeMs === s.mtimeMs;
    } catch { /* gone */ }
    if (!unchanged) {
      ctx.state.removeShare(user, s.group, s.infoHash);
      await ctx.link.call('stop_share', { group: s.group, name: s.name, peer: ctx.peer, clientId: ctx.clientId })
        .catch(() => undefined);
      ctx.out.warn(`${printable(s.path)} changed or is gone since it was shared: stopped sharing ${where}`);
      continue;
    }
    try {
      await announceOrRegister(ctx, s);
    } catch (err) {
      const code = err instanceof CoterieError ? err.code : 'INTERNAL';
      if (code === 'NOT_MEMBER' || code === 'NO_SUCH_GROUP' || code === 'NAME_CONFLICT') {
        ctx.state.removeShare(user, s.group, s.infoHash);
        ctx.out.warn(`stopped sharing ${where}: ${describe(err)}`);
        continue;
      }
      // The tracker could not be told now; serve anyway, the heartbeat carries the share.
      ctx.out.warn(`could not announce ${where} (${describe(err)}); serving it anyway`);
    }
    ctx.engine.seed({ group: s.group, manifest: parseManifest(s.infoBytes), path: s.path });
    ctx.serving.add(s.group, s.infoHash);
  }
}

async function announceOrRegister(ctx: ClientContext, s: ShareRecord): Promise<void> {
  try {
    await ctx.link.call('announce', { group: s.group, infoHash: s.infoHash, peer: ctx.peer, clientId: ctx.clientId });
  } catch (err) {
    if (!(err instanceof CoterieError && err.code === 'NO_SUCH_FILE')) throw err;
    await ctx.link.call('upload_file', {
      group: s.group, info: s.infoBytes.toString('base64'), sha256: s.sha256, peer: ctx.peer, clientId: ctx.clientId,
    });
  }
}
