/**
 * A TCP proxy a test controls, for partitioning trackers: it forwards connections to a target
 * until `cut()`, which destroys every open connection and then refuses new ones (accepts and
 * destroys them at once, so the port stays ours), until `heal()`.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';

export interface ProxyTarget { host: string; port: number }

export class TcpProxy {
  private readonly server: Server;
  private readonly pairs = new Set<[Socket, Socket]>();
  private isCut = false;
  /** Connections accepted since start (forwarded or refused). */
  accepted = 0;

  private constructor(private readonly target: ProxyTarget) {
    this.server = createServer((client) => this.onConnection(client));
  }

  /** Starts a proxy on 127.0.0.1:`port` (0 = any free port) forwarding to `target`. */
  static async start(target: ProxyTarget, port = 0): Promise<TcpProxy> {
    const p = new TcpProxy(target);
    await new Promise<void>((resolve, reject) => {
      p.server.once('error', reject);
      p.server.listen(port, '127.0.0.1', () => { p.server.off('error', reject); resolve(); });
    });
    return p;
  }

  get port(): number {
    const a = this.server.address();
    if (a === null || typeof a === 'string') throw new Error('proxy not listening');
    return a.port;
  }

  get cutOff(): boolean { return this.isCut; }

  /** Open forwarded connections. */
  get connections(): number { return this.pairs.size; }

  /** Destroys every connection through the proxy and refuses new ones. */
  cut(): void {
    this.isCut = true;
    for (const [a, b] of this.pairs) { a.destroy(); b.destroy(); }
    this.pairs.clear();
  }

  heal(): void { this.isCut = false; }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private onConnection(client: Socket): void {
    this.accepted++;
    if (this.isCut) { client.destroy(); return; }
    const upstream = connect({ host: this.target.host, port: this.target.port, noDelay: true });
    client.setNoDelay(true); // a proxy must not add Nagle delays to small frames
    const pair: [Socket, Socket] = [client, upstream];
    this.pairs.add(pair);
    const drop = (): void => {
      this.pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', drop);
    upstream.on('error', drop);
    client.on('close', drop);
    upstream.on('close', drop);
    client.pipe(upstream);
    upstream.pipe(client);
  }
}
