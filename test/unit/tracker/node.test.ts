/** A whole tracker in-process (MemoryStore, port 0), driven over real RPC connections. */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { silentLogger } from '../../../src/common/log.js';
import { ops, type OpName } from '../../../src/protocol/rpc.js';
import { TrackerNode } from '../../../src/tracker/node.js';
import { HybridClock } from '../../../src/tracker/store/hlc.js';
import { MemoryStore } from '../../../src/tracker/store/memory-store.js';
import { RpcTestClient } from '../../helpers/tracker.js';
import { infoFor, SHA } from './fixture.js';

describe('TrackerNode over RPC', () => {
  let node: TrackerNode;
  before(async () => {
    node = await TrackerNode.start({
      store: new MemoryStore({ clock: new HybridClock() }), logger: silentLogger(), host: '127.0.0.1', port: 0,
      trackerNo: 1, scrypt: { N: 1024, r: 8, p: 1 },
    });
  });
  after(async () => { await node.close(); });

  const code = (r: { ok: boolean; error?: { code: string } }) => (r.ok ? 'ok' : r.error!.code);

  test('every authenticated op refuses a call without a valid session', async () => {
    const c = await RpcTestClient.connect(node.address.port);
    const sample: Partial<Record<OpName, unknown>> = {
      heartbeat: { peer: 'h:1', clientId: '0123456789abcdef', shares: [] }, logout: {}, create_group: { group: 'g' },
      join_group: { group: 'g' }, leave_group: { group: 'g' }, list_requests: { group: 'g' },
      accept_request: { group: 'g', user: 'u' }, reject_request: { group: 'g', user: 'u' }, list_groups: {},
      list_files: { group: 'g' }, stop_share: { group: 'g', name: 'f', peer: 'h:1', clientId: '0123456789abcdef' },
      upload_file: { group: 'g', info: '', sha256: SHA, peer: 'h:1', clientId: '0123456789abcdef' },
      announce: { group: 'g', infoHash: 'a'.repeat(40), peer: 'h:1', clientId: '0123456789abcdef' },
      get_peers: { group: 'g', name: 'f' },
    };
    for (const op of Object.keys(ops) as OpName[]) {
      if (!ops[op].auth) continue;
      assert.ok(sample[op] !== undefined, `sample args for ${op}`);
      assert.equal(code(await c.call(op, sample[op])), 'UNAUTHENTICATED', op);
      assert.equal(code(await c.call(op, sample[op], 'f'.repeat(64))), 'UNAUTHENTICATED', op);
    }
    c.close();
  });

  test('the whole story: accounts, groups, sharing, peers; a closed connection takes its client offline', async () => {
    const a = await RpcTestClient.connect(node.address.port);
    const b = await RpcTestClient.connect(node.address.port);
    const A = '000000000000000a', B = '000000000000000b';
    await a.ok('create_user', { user: 'ann', password: 'pw' });
    await b.ok('create_user', { user: 'ben', password: 'pw' });
    assert.equal(code(await a.call('login', { user: 'ann', password: 'nope', peer: '127.0.0.1:7001', clientId: A })), 'WRONG_PASSWORD');
    const la = await a.ok<{ token: string; trackerKeys: { origin: string }[] }>('login', { user: 'ann', password: 'pw', peer: '127.0.0.1:7001', clientId: A });
    const lb = await b.ok<{ token: string }>('login', { user: 'ben', password: 'pw', peer: '127.0.0.1:7002', clientId: B });
    assert.deepEqual(la.trackerKeys.map((k) => k.origin), [node.store.origin]);
    const ta = la.token, tb = lb.token;
    await a.ok('create_group', { group: 'films' }, ta);
    await b.ok('join_group', { group: 'films' }, tb);
    assert.deepEqual(await a.ok('list_requests', { group: 'films' }, ta), { users: ['ben'] });
    await a.ok('accept_request', { group: 'films', user: 'ben' }, ta);
    assert.deepEqual(await b.ok('list_groups', {}, tb), { groups: [{ group: 'films', owner: 'ann', members: 2 }] });
    const { info, infoHash } = infoFor('film.mp4', 300_000, 3);
    assert.deepEqual(await a.ok('upload_file', { group: 'films', info, sha256: SHA, peer: '127.0.0.1:7001', clientId: A }, ta), { infoHash, status: 'added' });
    await a.ok('heartbeat', { peer: '127.0.0.1:7001', clientId: A, shares: [{ group: 'films', infoHash }] }, ta);
    assert.deepEqual(await b.ok('list_files', { group: 'films' }, tb), { files: [{ name: 'film.mp4', size: 300_000, infoHash, seeders: 1, online: 1 }] });
    const peers = await b.ok<{ peers: { addr: string }[]; ticket?: string; info: string }>('get_peers', { group: 'films', name: 'film.mp4' }, tb);
    assert.deepEqual(peers.peers.map((p) => p.addr), ['127.0.0.1:7001']);
    assert.equal(peers.info, info);
    assert.equal(typeof peers.ticket, 'string');
    // ann's connection goes away: she is offline at once, not 15 s later.
    a.close();
    await a.closed;
    let r;
    for (let i = 0; i < 50; i++) {
      r = await b.call('get_peers', { group: 'films', name: 'film.mp4' }, tb);
      if (!r.ok) break;
      await new Promise((x) => setTimeout(x, 10));
    }
    assert.equal(code(r!), 'NO_SEEDER');
    // Her session outlives the connection (failover, reconnects): a new connection uses the same token.
    const a2 = await RpcTestClient.connect(node.address.port);
    await a2.ok('heartbeat', { peer: '127.0.0.1:7001', clientId: A, shares: [{ group: 'films', infoHash }] }, ta);
    assert.equal((await b.ok<{ peers: unknown[] }>('get_peers', { group: 'films', name: 'film.mp4' }, tb)).peers.length, 1);
    await a2.ok('logout', {}, ta);
    assert.equal(code(await a2.call('list_groups', {}, ta)), 'UNAUTHENTICATED');
    assert.equal(code(await b.call('get_peers', { group: 'films', name: 'film.mp4' }, tb)), 'NO_SEEDER');
    a2.close(); b.close();
  });

  test('status reports identity, versions, digest and counts', async () => {
    const c = await RpcTestClient.connect(node.address.port);
    const st = await c.ok<Record<string, unknown>>('status', {});
    assert.equal(st['origin'], node.store.origin);
    assert.equal(st['trackerNo'], 1);
    assert.equal(st['digest'], node.store.digest());
    assert.deepEqual(st['versionVector'], node.store.versionVector());
    assert.equal((st['counts'] as Record<string, number>)['tkey'], 1);
    node.addStatus('replication', () => ({ peers: 0 }));
    assert.deepEqual((await c.ok<Record<string, unknown>>('status', {}))['replication'], { peers: 0 });
    c.close();
  });
});
