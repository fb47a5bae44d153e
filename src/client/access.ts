/**
 * Who may fetch from this client: only a peer showing an access ticket that a known tracker signed
 * for that very file in a group this client shares it in (DESIGN: Access). The trackers' public
 * keys come with every login; the engine asks {@link AccessGate.authorize} for each incoming peer.
 * A peer without a ticket (a standard BitTorrent client) is refused: files are private to groups.
 */
import type { KeyObject } from 'node:crypto';
import type { Logger } from '../common/log.js';
import { importPublicKey, ticketAllows, verifyTicket, TicketError, type Ticket } from '../protocol/ticket.js';
import type { AuthorizeRequest, AuthorizeResult } from '../swarm/peer-server.js';

/** Most tracker keys kept: a tracker list is a handful of lines; this bounds a hostile answer. */
const MAX_KEYS = 256;

export class AccessGate {
  private readonly keys = new Map<string, KeyObject>();

  constructor(private readonly logger?: Logger, private readonly now: () => number = Date.now) {}

  /** Adds the keys a login answer listed (keys are never dropped: a ticket from any known tracker is good). */
  addKeys(list: ReadonlyArray<{ origin: string; publicKey: string }>): void {
    for (const k of list) {
      if (this.keys.size >= MAX_KEYS && !this.keys.has(k.origin)) break;
      try { this.keys.set(k.origin, importPublicKey(k.publicKey)); } catch {
        this.logger?.warn({ origin: k.origin }, 'ignoring a tracker key that does not parse');
      }
    }
  }

  /** How many tracker keys are known. */
  get size(): number { return this.keys.size; }

  /** Whether the peer may have the file. Never throws. */
  readonly authorize = (req: AuthorizeRequest): boolean => this.check(req) !== null;

  /**
   * The engine's authorize hook: like {@link authorize}, and an admitted peer's connection lasts
   * only as long as its ticket (the engine closes it at `expiresAt`). Never throws.
   */
  readonly authorizeUntil = (req: AuthorizeRequest): AuthorizeResult => {
    const t = this.check(req);
    return t === null ? false : { ok: true, expiresAt: t.expiresAt };
  };

  /** The verified ticket that admits `req`, or null (logged with the reason). */
  private check(req: AuthorizeRequest): Ticket | null {
    if (req.ticket === undefined) {
      this.logger?.info({ remote: req.remote, infoHash: req.infoHashHex }, 'refused a peer without an access ticket');
      return null;
    }
    try {
      const t = verifyTicket(req.ticket, this.keys, this.now());
      const ok = req.groups.includes(t.group) && ticketAllows(t, t.group, req.infoHashHex);
      if (!ok) this.logger?.info({ remote: req.remote, group: t.group, user: t.user }, 'refused a ticket for another file or group');
      return ok ? t : null;
    } catch (err) {
      const reason = err instanceof TicketError ? err.reason : 'error';
      this.logger?.info({ remote: req.remote, reason }, 'refused an access ticket');
      return null;
    }
  }
}
