/**
 * A lean client of the tracker's RPC (NDJSON over TCP, see src/protocol/rpc.ts) for load
 * generation: answers matched by id, no per-call timers (a watchdog checks the oldest call), so
 * the load generator spends its time on the wire and not on bookkeeping.
 */
import { connect, type Socket } from 'node:net';
import { encodeLine, LineDecoder, type Response } from '../../src/protocol/rpc.js';

export class RpcError extends Error {
  override name = 'RpcError';
  constructor(readonly op: string, readonly code: string, message: string) { super(`${op}: ${code} ${message}`); }
}

export class BenchRpc {
  private nextId = 1;
  private waiting = new Map<number, { resolve: (r: Response) => void; at: number }>();
  private decoder = new LineDecoder();
  private closed = false;

  private constructor(private readonly socket: Socket) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      for (const line of this.decoder.push(chunk)) {
        const msg = JSON.parse(line) as Response;
        const w = this.waiting.get(msg.id);
        if (w) { this.waiting.delete(msg.id); w.resolve(msg); }
      }
    });
    socket.on('error', () => { /* close follows */ });
    socket.on('close', () => {
      this.closed = true;
      for (const w of this.waiting.values()) w.resolve({ id: -1, ok: false, error: { code: 'UNAVAILABLE', message: 'connection closed' } });
      this.waiting.clear();
    });
  }

  static connect(port: number, host = '127.0.0.1', localAddress?: string): Promise<BenchRpc> {
    return new Promise((resolve, reject) => {
      const s = connect({ port, host, ...(localAddress ? { localAddress } : {}) });
      const timer = setTimeout(() => { s.destroy(); reject(new Error('connect timed out')); }, 10_000);
      s.once('connect', () => { clearTimeout(timer); resolve(new BenchRpc(s)); });
      s.once('error', (e) => { clearTimeout(timer); reject(e); });
    });
  }

  /** One call; resolves with the raw response. */
  call(op: string, args: unknown, token?: string): Promise<Response> {
    const id = this.nextId++;
    if (this.closed) return Promise.resolve({ id, ok: false, error: { code: 'UNAVAILABLE', message: 'connection closed' } });
    return new Promise((resolve) => {
      this.waiting.set(id, { resolve, at: Date.now() });
      this.socket.write(encodeLine(token === undefined ? { id, op, args } : { id, op, args, token }));
    });
  }

  /** Like {@link call}, but throws RpcError unless ok; returns the result. */
  async ok<T = Record<string, unknown>>(op: string, args: unknown, token?: string): Promise<T> {
    const r = await this.call(op, args, token);
    if (!r.ok) throw new RpcError(op, r.error.code, r.error.message);
    return r.result as T;
  }

  /** Age in ms of the oldest unanswered call (0 if none). */
  oldestPendingMs(): number {
    const first = this.waiting.values().next();
    return first.done ? 0 : Date.now() - first.value.at;
  }

  close(): void { this.socket.destroy(); }
}
