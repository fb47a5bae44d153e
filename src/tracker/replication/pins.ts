/**
 * Trust on first use of other trackers' keys: each listed address is pinned to the Ed25519 key
 * (and origin) first seen from it. See auth.ts for what this does and does not protect against.
 */
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';

/** A pinned key: the key and origin last accepted from a listed address. */
export interface Pin { key: string; origin: string; since: number }

/** Where pins are kept. Reads are frequent (every handshake), writes rare (first contact, wipes). */
export interface PinStore {
  get(addr: string): Pin | undefined;
  set(addr: string, pin: Pin): void;
}

export class MemoryPinStore implements PinStore {
  private readonly pins = new Map<string, Pin>();
  get(addr: string): Pin | undefined { return this.pins.get(addr); }
  set(addr: string, pin: Pin): void { this.pins.set(addr, pin); }
}

const fileSchema = z.record(z.string().max(64), z.object({
  key: z.string().max(256), origin: z.string().max(64), since: z.number(),
}).strict());

/**
 * Pins in a small JSON file in the data dir (`peer-keys.json`), rewritten atomically (temp file,
 * fsync, rename) so a crash leaves either the old or the new set. Wiping the data dir forgets them,
 * which is what a wipe means. An unreadable file is treated as empty (and logged by the caller):
 * losing pins only weakens trust on first use, it never blocks replication.
 */
export class FilePinStore implements PinStore {
  private readonly path: string;
  private pins: Record<string, Pin> = {};
  readonly loadError: string | null = null;

  constructor(dataDir: string) {
    this.path = join(dataDir, 'peer-keys.json');
    try {
      const parsed = fileSchema.safeParse(JSON.parse(readFileSync(this.path, 'utf8')));
      if (parsed.success) this.pins = parsed.data;
      else this.loadError = 'malformed pin file';
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.loadError = (err as Error).message;
    }
  }

  get(addr: string): Pin | undefined { return this.pins[addr]; }

  set(addr: string, pin: Pin): void {
    this.pins = { ...this.pins, [addr]: pin };
    const tmp = `${this.path}.tmp`;
    const fd = openSync(tmp, 'w', 0o600);
    try {
      writeSync(fd, JSON.stringify(this.pins, null, 1));
      fsyncSync(fd);
    } finally { closeSync(fd); }
    renameSync(tmp, this.path);
  }
}

/** Outcome of checking a presented key against the pin of its address. */
export type PinDecision =
  | { ok: true; pin: boolean; warning?: string }
  | { ok: false; reason: string };

/**
 * Pure pin policy. `pinnedLinkUp`: a link authenticated with the pinned key is up right now.
 */
export function checkPin(pin: Pin | undefined, key: string, origin: string, pinnedLinkUp: boolean): PinDecision {
  if (pin === undefined) return { ok: true, pin: true };
  if (pin.key === key) return { ok: true, pin: pin.origin !== origin };
  if (pin.origin === origin) return { ok: false, reason: 'presents a different key for the origin pinned to this address' };
  if (pinnedLinkUp) return { ok: false, reason: 'presents a different key while the pinned tracker of this address is connected' };
  return { ok: true, pin: true, warning: 'key and origin changed (a wiped data dir?); re-pinned' };
}
