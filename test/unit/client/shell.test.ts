import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { Serving, type ClientContext, type SessionLink } from '../../../src/client/commands/context.js';
import { AccessGate } from '../../../src/client/access.js';
import { HistoryFile, LocalState } from '../../../src/client/local-state.js';
import { Shell, wantColor } from '../../../src/client/shell.js';
import { silentLogger } from '../../../src/common/log.js';
import type { OpArgs, OpName, OpResult } from '../../../src/protocol/rpc.js';
import type { SwarmEngine } from '../../../src/swarm/api.js';

let dir: string;
before(() => { dir = mkdtempSync(join(tmpdir(), 'coterie-shell-')); });
after(() => { rmSync(dir, { recursive: true, force: true }); });

/** A tracker where every login succeeds and list_groups has one group. */
class TinyLink implements SessionLink {
  user: string | undefined;
  async call<K extends OpName>(op: K, args: OpArgs<K>): Promise<OpResult<K>> {
    if (op === 'login') return { token: 't', user: (args as OpArgs<'login'>).user, trackerKeys: [] } as unknown as OpResult<K>;
    if (op === 'list_groups') return { groups: [{ group: 'g1', owner: 'alice', members: 1 }] } as unknown as OpResult<K>;
    return {} as OpResult<K>;
  }
  startSession(user: string): void { this.user = user; }
  endSession(): void { this.user = undefined; }
  async heartbeatNow(): Promise<void> { /* nothing */ }
}

const idleEngine: SwarmEngine = {
  listen: async () => undefined, seed: () => undefined, unseed: () => undefined, unseedAll: () => undefined,
  download: () => undefined, status: () => [], whenIdle: async () => undefined, pauseAll: async () => undefined,
  close: async () => undefined,
};

function setup(terminal: boolean, color: boolean) {
  const input = new PassThrough();
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let o = '';
  let e = '';
  stdout.on('data', (b: Buffer) => { o += b.toString(); });
  stderr.on('data', (b: Buffer) => { e += b.toString(); });
  const shell = new Shell({ input, stdout, stderr, terminal, color });
  const state = LocalState.open(join(dir, `s-${terminal}-${color}`));
  const ctx: ClientContext = {
    link: new TinyLink(), state, engine: idleEngine, out: shell.out, access: new AccessGate(), logger: silentLogger(), peer: '127.0.0.1:7001',
    clientId: state.clientId, cwd: dir, serving: new Serving(), knownGroups: [], newId: () => 'x', quitRequested: false, background: new Set(),
  };
  return { input, shell, ctx, state, out: () => o, err: () => e };
}

describe('Shell', () => {
  test('piped: runs lines in order, results on stdout, errors on stderr, no prompt or colours', async () => {
    const s = setup(false, false);
    s.input.end('list_groups\nfrobnicate\nlogin alice pw\nlist_groups\n');
    assert.equal(await s.shell.run(s.ctx), 'eof');
    assert.equal(s.out(), 'logged in as alice\ng1  owner alice, 1 member\n');
    assert.equal(s.err(), 'error: not logged in (use: login <user_id> <passwd>)\nerror: unknown command "frobnicate" (type help for the list of commands)\n');
    s.state.close();
  });

  test('quit stops reading', async () => {
    const s = setup(false, false);
    s.input.end('quit\nlogin alice pw\n');
    assert.equal(await s.shell.run(s.ctx), 'quit');
    assert.equal(s.out(), 'bye\n');
    s.state.close();
  });

  test('terminal: prompt with the user, red errors, history without passwords', async () => {
    const s = setup(true, true);
    const history = new HistoryFile(join(dir, 'history'));
    const done = s.shell.run(s.ctx, history);
    s.input.write('login alice secret\r');
    s.input.write('bogus\r');
    s.input.write('list_groups\r');
    s.input.write('quit\r');
    assert.equal(await done, 'quit');
    assert.match(s.out(), /coterie> /);
    assert.match(s.out(), /alice@coterie> /);
    assert.match(s.err(), /\x1b\[31merror: unknown command "bogus"/);
    assert.deepEqual(s.ctx.knownGroups, ['g1']);
    const saved = readFileSync(join(dir, 'history'), 'utf8');
    assert.equal(saved, 'bogus\nlist_groups\nquit\n');
    s.state.close();
  });

  test('colours only on a terminal without NO_COLOR', () => {
    assert.equal(wantColor(true, {}), true);
    assert.equal(wantColor(true, { NO_COLOR: '1' }), false);
    assert.equal(wantColor(true, { NO_COLOR: '' }), true);
    assert.equal(wantColor(false, {}), false);
  });
});
