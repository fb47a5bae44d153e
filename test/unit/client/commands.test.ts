/**
 * The commands' own logic, with a scripted tracker and a recording engine standing in for the
 * remote parts: parsing and dispatch, login's re-share and resume, download_file's destination
 * rules and hooks, show_downloads, logout.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { complete, parseCommandLine, runLine } from '../../../src/client/commands/index.js';
import { Serving, type ClientContext, type Output, type SessionLink } from '../../../src/client/commands/context.js';
import { AccessGate } from '../../../src/client/access.js';
import { LocalState } from '../../../src/client/local-state.js';
import { CoterieError, type ErrorCode } from '../../../src/common/errors.js';
import { silentLogger } from '../../../src/common/log.js';
import type { OpArgs, OpName, OpResult } from '../../../src/protocol/rpc.js';
import type { DownloadSpec, DownloadStatus, SeedSpec, SwarmEngine } from '../../../src/swarm/api.js';
import { buildManifest } from '../../../src/swarm/manifest.js';

type Handler = (args: Record<string, unknown>) => unknown;

/** A tracker that answers from a table and records every call. */
class ScriptedLink implements SessionLink {
  user: string | undefined;
  calls: Array<[OpName, Record<string, unknown>]> = [];
  handlers: Partial<Record<OpName, Handler>> = {};
  async call<K extends OpName>(op: K, args: OpArgs<K>): Promise<OpResult<K>> {
    this.calls.push([op, args as Record<string, unknown>]);
    const h = this.handlers[op];
    if (!h) return {} as OpResult<K>;
    return h(args as Record<string, unknown>) as OpResult<K>;
  }
  startSession(user: string): void { this.user = user; }
  endSession(): void { this.user = undefined; }
  async heartbeatNow(): Promise<void> { /* nothing to renew here */ }
  ops(): string[] { return this.calls.map(([op]) => op); }
}

function refuse(code: ErrorCode): Handler {
  return () => { throw new CoterieError(code, `refused: ${code}`); };
}

/** An engine that records what it is asked to do. */
class RecordingEngine implements SwarmEngine {
  seeds: SeedSpec[] = [];
  unseeds: string[] = [];
  downloads: DownloadSpec[] = [];
  statuses: DownloadStatus[] = [];
  paused = 0;
  unseededAll = 0;
  async listen(): Promise<void> { /* no sockets here */ }
  seed(spec: SeedSpec): void { this.seeds.push(spec); }
  unseed(group: string, infoHashHex: string): void { this.unseeds.push(`${group}/${infoHashHex}`); }
  unseedAll(): void { this.unseededAll++; }
  download(spec: DownloadSpec): void { this.downloads.push(spec); }
  status(): DownloadStatus[] { return this.statuses; }
  async whenIdle(): Promise<void> { /* idle */ }
  async pauseAll(): Promise<void> { this.paused++; }
  async close(): Promise<void> { /* closed */ }
}

class Captured implements Output {
  out: string[] = [];
  warnings: string[] = [];
  notices: string[] = [];
  line(t: string): void { this.out.push(t); }
  warn(t: string): void { this.warnings.push(t); }
  progress(): void { /* not a terminal */ }
  notify(t: string): void { this.notices.push(t); }
}

let dir: string;
before(() => { dir = mkdtempSync(join(tmpdir(), 'coterie-cmds-')); });
after(() => { rmSync(dir, { recursive: true, force: true }); });

let n = 0;
function makeCtx(): { ctx: ClientContext; link: ScriptedLink; engine: RecordingEngine; out: Captured; state: LocalState } {
  const link = new ScriptedLink();
  const engine = new RecordingEngine();
  const out = new Captured();
  const state = LocalState.open(join(dir, `state-${++n}`));
  let id = 0;
  const ctx: ClientContext = {
    link, state, engine, out, access: new AccessGate(), logger: silentLogger(), peer: '127.0.0.1:7001', clientId: state.clientId, cwd: dir,
    serving: new Serving(), knownGroups: [], newId: () => `dl${++id}`, quitRequested: false, background: new Set(),
  };
  return { ctx, link, engine, out, state };
}

async function fileWithManifest(name: string, content: string) {
  const path = join(dir, name);
  writeFileSync(path, content);
  const { manifest, sha256 } = await buildManifest(path);
  return { path, manifest, sha256 };
}

describe('parsing command lines', () => {
  test('names, counts and quotes', () => {
    assert.deepEqual(parseCommandLine(`upload_file "my file.txt" g1`)?.args, ['my file.txt', 'g1']);
    assert.equal(parseCommandLine('   '), null);
    const code = (f: () => unknown) => { try { f(); } catch (e) { return (e as CoterieError).code; } return 'none'; };
    assert.equal(code(() => parseCommandLine('nope')), 'UNKNOWN_COMMAND');
    assert.equal(code(() => parseCommandLine('login alice')), 'USAGE');
    assert.equal(code(() => parseCommandLine('logout now')), 'USAGE');
    assert.equal(code(() => parseCommandLine(`login 'alice`)), 'USAGE');
  });

  test('tab completion: commands, then group ids where a group goes', () => {
    const ctx = { knownGroups: ['g1', 'g2', 'other'] };
    assert.deepEqual(complete(ctx, 'list_'), [['list_requests', 'list_groups', 'list_files'], 'list_']);
    assert.deepEqual(complete(ctx, 'join_group g'), [['g1', 'g2'], 'g']);
    assert.deepEqual(complete(ctx, 'upload_file g'), [[], 'g']);
    assert.deepEqual(complete(ctx, 'upload_file f.txt o'), [['other'], 'o']);
  });

  test('runLine turns refusals into error text and skips comments', async () => {
    const { ctx } = makeCtx();
    assert.deepEqual(await runLine(ctx, '# note'), { kind: 'empty' });
    const r = await runLine(ctx, 'list_groups');
    assert.equal(r.kind, 'error');
    assert.equal(r.kind === 'error' && r.message, 'not logged in (use: login <user_id> <passwd>)');
    ctx.state.close();
  });
});

describe('login', () => {
  test('re-shares unchanged files, drops changed ones, re-registers lost ones, resumes downloads', async () => {
    const { ctx, link, engine, out, state } = makeCtx();
    const kept = await fileWithManifest('kept.txt', 'kept');
    const changed = await fileWithManifest('changed.txt', 'changed');
    const lost = await fileWithManifest('lost.txt', 'lost');
    const left = await fileWithManifest('left.txt', 'left');
    for (const [f, group] of [[kept, 'g1'], [changed, 'g1'], [lost, 'g1'], [left, 'g2']] as const) {
      const st = statSync(f.path);
      state.putShare({
        user: 'alice', group, infoHash: f.manifest.infoHashHex, name: f.manifest.name, path: f.path,
        size: st.size, mtimeMs: st.mtimeMs, infoBytes: f.manifest.infoBytes, sha256: f.sha256,
      });
    }
    utimesSync(changed.path, new Date(), new Date(Date.now() - 10_000));
    const dl = await fileWithManifest('remote.bin', 'remote content');
    state.addDownload({ id: 'old1', user: 'alice', group: 'g1', name: 'remote.bin', destPath: join(dir, 'out.bin'), infoBytes: dl.manifest.infoBytes, sha256: dl.sha256 });
    state.addDownload({ id: 'old2', user: 'alice', group: 'g1', name: 'gone.bin', destPath: join(dir, 'gone.bin'), infoBytes: dl.manifest.infoBytes, sha256: dl.sha256 });
    state.addDownload({ id: 'bobs', user: 'bob', group: 'g1', name: 'remote.bin', destPath: join(dir, 'b.bin'), infoBytes: dl.manifest.infoBytes, sha256: dl.sha256 });

    link.handlers.login = () => ({ token: 't', user: 'alice', trackerKeys: [] });
    link.handlers.announce = (a) => {
      if (a['infoHash'] === lost.manifest.infoHashHex) throw new CoterieError('NO_SUCH_FILE', 'gone');
      if (a['group'] === 'g2') throw new CoterieError('NOT_MEMBER', 'not a member of g2');
      return {};
    };
    link.handlers.upload_file = () => ({ infoHash: lost.manifest.infoHashHex, status: 'added' });
    link.handlers.get_peers = (a) => {
      if (a['name'] === 'gone.bin') throw new CoterieError('NO_SUCH_FILE', 'no such file');
      return {
        infoHash: dl.manifest.infoHashHex, info: dl.manifest.infoBytes.toString('base64'), sha256: dl.sha256, size: 14,
        peers: [{ addr: '127.0.0.1:7002', user: 'bob', clientId: 'c'.repeat(32) }, { addr: ctx.peer, user: 'alice', clientId: ctx.clientId }],
        ticket: 'tkt',
      };
    };

    assert.equal((await runLine(ctx, 'login alice pw')).kind, 'ok');
    assert.deepEqual(out.out, ['logged in as alice', 'resuming 1 download']);
    assert.equal(link.user, 'alice');
    // kept and lost are served again (lost after registering anew); changed and left are not.
    assert.deepEqual(engine.seeds.map((s) => `${s.group}/${s.manifest.name}`).sort(), ['g1/kept.txt', 'g1/lost.txt']);
    assert.deepEqual(state.shares('alice').map((s) => s.name).sort(), ['kept.txt', 'lost.txt']);
    assert.ok(link.calls.some(([op, a]) => op === 'stop_share' && a['name'] === 'changed.txt'));
    assert.ok(link.calls.some(([op, a]) => op === 'upload_file' && a['group'] === 'g1'));
    assert.deepEqual(ctx.serving.list().map((s) => s.infoHash).sort(), [kept.manifest.infoHashHex, lost.manifest.infoHashHex].sort());
    assert.equal(out.warnings.length, 3);
    assert.match(out.warnings.join('\n'), /changed\.txt changed or is gone/);
    assert.match(out.warnings.join('\n'), /stopped sharing left\.txt in g2/);
    assert.match(out.warnings.join('\n'), /cannot resume the download of gone\.bin/);
    // The unfinished download goes back to the engine with its id, destination and fresh peers (not itself).
    assert.equal(engine.downloads.length, 1);
    const spec = engine.downloads[0]!;
    assert.deepEqual([spec.id, spec.destPath, spec.ticket], ['old1', join(dir, 'out.bin'), 'tkt']);
    assert.deepEqual(spec.peers.map((p) => p.addr), ['127.0.0.1:7002']);
    assert.equal(state.download('old2')?.state, 'failed');
    assert.equal(state.download('bobs')?.state, 'downloading');
    state.close();
  });
});

describe('download_file', () => {
  test('destination rules, the record, and the hooks into tracker and state', async () => {
    const { ctx, link, engine, out, state } = makeCtx();
    link.user = 'alice';
    const f = await fileWithManifest('movie.bin', 'the movie');
    const peer = { addr: '127.0.0.1:7002', user: 'bob', clientId: 'c'.repeat(32) };
    link.handlers.get_peers = () => ({
      infoHash: f.manifest.infoHashHex, info: f.manifest.infoBytes.toString('base64'), sha256: f.sha256, size: 9, peers: [peer],
    });
    const dest = join(dir, 'dl-dest');
    mkdirSync(dest);

    assert.equal((await runLine(ctx, `download_file g1 movie.bin ${dest}`)).kind, 'ok');
    assert.deepEqual(out.out, [`downloading movie.bin from g1 to ${join(dest, 'movie.bin')}`]);
    const again = await runLine(ctx, `download_file g1 movie.bin ${dest}`);
    assert.equal(again.kind === 'error' && again.message, `a download to ${join(dest, 'movie.bin')} is already in progress`);
    assert.equal((await runLine(ctx, `download_file g1 movie.bin ${join(dest, 'renamed.bin')}`)).kind, 'ok');
    const noDir = await runLine(ctx, `download_file g1 movie.bin ${join(dest, 'sub', 'x.bin')}`);
    assert.equal(noDir.kind === 'error' && (noDir.error as CoterieError).code, 'IO');

    const spec = engine.downloads[0]!;
    assert.deepEqual([spec.group, spec.destPath, spec.sha256, spec.peers], ['g1', join(dest, 'movie.bin'), f.sha256, [peer]]);
    assert.equal(state.download(spec.id)?.state, 'downloading');
    assert.deepEqual((await spec.refreshPeers()).peers, [peer]);

    spec.onFirstPiece?.();
    assert.ok(ctx.serving.has('g1', f.manifest.infoHashHex));
    assert.ok(link.calls.some(([op, a]) => op === 'announce' && a['infoHash'] === f.manifest.infoHashHex));

    // The engine completes it: it becomes a share of this client, seeded.
    writeFileSync(spec.destPath, 'the movie');
    spec.onDone?.({ ok: true });
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(state.download(spec.id)?.state, 'complete');
    assert.equal(state.shareByName('alice', 'g1', 'movie.bin')?.path, spec.destPath);
    assert.equal(engine.seeds.at(-1)?.path, spec.destPath);

    // The second one fails for good.
    const spec2 = engine.downloads[1]!;
    spec2.onDone?.({ ok: false, error: new CoterieError('INTEGRITY', 'whole-file hash mismatch') });
    assert.deepEqual(state.download(spec2.id)?.state, 'failed');

    engine.statuses = [{
      id: spec2.id, group: 'g1', name: 'movie.bin', destPath: spec2.destPath, state: 'failed', bytesDone: 0, length: 9,
      rate: 0, etaSeconds: null, peers: 0, error: 'whole-file hash mismatch',
    }];
    out.out = [];
    await runLine(ctx, 'show_downloads');
    assert.deepEqual(out.out, ['[C] [g1] movie.bin', '[F] [g1] movie.bin  whole-file hash mismatch']);
    state.close();
  });

  test('no seeder but this client itself is NO_SEEDER', async () => {
    const { ctx, link, engine } = makeCtx();
    link.user = 'alice';
    const f = await fileWithManifest('self.bin', 'self');
    link.handlers.get_peers = () => ({
      infoHash: f.manifest.infoHashHex, info: f.manifest.infoBytes.toString('base64'), sha256: f.sha256, size: 4,
      peers: [{ addr: ctx.peer, user: 'alice', clientId: ctx.clientId }],
    });
    const r = await runLine(ctx, `download_file g1 self.bin ${join(dir, 'self-copy.bin')}`);
    assert.equal(r.kind === 'error' && (r.error as CoterieError).code, 'NO_SEEDER');
    assert.equal(engine.downloads.length, 0);
    ctx.state.close();
  });
});

describe('logout and quit', () => {
  test('logout stops serving, pauses downloads and tells the tracker', async () => {
    const { ctx, link, engine, out } = makeCtx();
    link.user = 'alice';
    ctx.serving.add('g1', 'a'.repeat(40));
    await runLine(ctx, 'logout');
    assert.deepEqual(out.out, ['logged out']);
    assert.deepEqual([engine.unseededAll, engine.paused], [1, 1]);
    assert.deepEqual(ctx.serving.list(), []);
    assert.deepEqual(link.calls, [['logout', { clientId: ctx.clientId }]]);
    assert.equal(link.user, undefined);
    ctx.state.close();
  });

  test('logout goes through even when no tracker answers', async () => {
    const { ctx, link, out } = makeCtx();
    link.user = 'alice';
    link.handlers.logout = refuse('NO_TRACKER');
    await runLine(ctx, 'logout');
    assert.deepEqual(out.out, ['logged out']);
    assert.equal(link.user, undefined);
    ctx.state.close();
  });

  test('quit logs out and asks the shell to stop', async () => {
    const { ctx, link, out } = makeCtx();
    link.user = 'alice';
    await runLine(ctx, 'quit');
    assert.deepEqual(out.out, ['bye']);
    assert.equal(ctx.quitRequested, true);
    assert.deepEqual(link.ops(), ['logout']);
    ctx.state.close();
  });
});
