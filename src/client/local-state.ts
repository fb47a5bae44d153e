/**
 * The client's durable local state, one SQLite database (WAL) in its data dir:
 *
 * - `meta`: the random clientId, created once with the data dir, so trackers can tell two clients of
 *   one user apart (and the same client across restarts).
 * - `shares`: what this client shares, per user and group, with the file's path, size and mtime
 *   when it was hashed (the cheap "unchanged?" check at login) and its exact info dictionary and
 *   SHA-256 (so re-sharing never re-hashes).
 * - `downloads`: every download started here, with what is needed to resume it (info dictionary,
 *   SHA-256, destination) and the verified-piece bitfield; implements the swarm's
 *   {@link ResumeStore}.
 *
 * One connection per process; every method is a short synchronous statement. Writes use
 * `synchronous = NORMAL`: in WAL mode a commit survives a process crash (kill -9), which is the
 * failure resume is for; losing the last pieces' records on power loss only costs a re-download.
 */
import Database from 'better-sqlite3';
import { appendFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { CoterieError, describe } from '../common/errors.js';
import type { ResumeStore } from '../swarm/api.js';

/** A file this client shares in a group for a user. Key: (user, group, infoHash). */
export interface ShareRecord {
  user: string;
  group: string;
  /** Lower-case hex SHA-1 of `infoBytes`. */
  infoHash: string;
  name: string;
  /** Absolute path of the shared file; it stays where it is. */
  path: string;
  size: number;
  mtimeMs: number;
  /** The exact bencoded info dictionary. */
  infoBytes: Buffer;
  /** Whole-file SHA-256, hex. */
  sha256: string;
}

/** Where a download stands, as recorded (the engine has the live view). */
export type RecordedDownloadState = 'downloading' | 'complete' | 'failed';

/** A download started on this client. `id` is the resume key handed to the engine. */
export interface DownloadRecord {
  id: string;
  user: string;
  group: string;
  name: string;
  /** Absolute final path; the engine writes `${destPath}.part` until it completes. */
  destPath: string;
  infoBytes: Buffer;
  sha256: string;
  state: RecordedDownloadState;
  /** Why it failed, for `failed` downloads. */
  error?: string;
  createdMs: number;
}

const SCHEMA_VERSION = 1;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS shares (
  user TEXT NOT NULL, grp TEXT NOT NULL, info_hash TEXT NOT NULL,
  name TEXT NOT NULL, path TEXT NOT NULL, size INTEGER NOT NULL, mtime_ms REAL NOT NULL,
  info_bytes BLOB NOT NULL, sha256 TEXT NOT NULL,
  PRIMARY KEY (user, grp, info_hash)
) STRICT;
CREATE TABLE IF NOT EXISTS downloads (
  id TEXT PRIMARY KEY, user TEXT NOT NULL, grp TEXT NOT NULL, name TEXT NOT NULL,
  dest_path TEXT NOT NULL, info_bytes BLOB NOT NULL, sha256 TEXT NOT NULL,
  state TEXT NOT NULL, error TEXT, created_ms INTEGER NOT NULL,
  bitfield BLOB, part_size INTEGER, part_mtime_ms REAL
) STRICT;
CREATE INDEX IF NOT EXISTS downloads_user ON downloads (user, created_ms);
`;

interface ShareRow {
  user: string; grp: string; info_hash: string; name: string; path: string;
  size: number; mtime_ms: number; info_bytes: Buffer; sha256: string;
}
interface DownloadRow {
  id: string; user: string; grp: string; name: string; dest_path: string; info_bytes: Buffer;
  sha256: string; state: string; error: string | null; created_ms: number;
}

function toShare(r: ShareRow): ShareRecord {
  return {
    user: r.user, group: r.grp, infoHash: r.info_hash, name: r.name, path: r.path,
    size: r.size, mtimeMs: r.mtime_ms, infoBytes: r.info_bytes, sha256: r.sha256,
  };
}

function toDownload(r: DownloadRow): DownloadRecord {
  const d: DownloadRecord = {
    id: r.id, user: r.user, group: r.grp, name: r.name, destPath: r.dest_path,
    infoBytes: r.info_bytes, sha256: r.sha256, state: r.state as RecordedDownloadState, createdMs: r.created_ms,
  };
  if (r.error !== null) d.error = r.error;
  return d;
}

/** See the module comment. Open with {@link LocalState.open}; close when the process ends. */
export class LocalState implements ResumeStore {
  /** This data dir's stable random id (32 hex). */
  readonly clientId: string;

  private constructor(private readonly db: Database.Database, private readonly now: () => number) {
    this.clientId = this.loadClientId();
  }

  /** Opens (creating if needed) the state in `dataDir`. Throws IO if the database cannot be opened. */
  static open(dataDir: string, now: () => number = Date.now): LocalState {
    let db: Database.Database;
    try {
      mkdirSync(dataDir, { recursive: true, mode: 0o700 });
      db = new Database(join(dataDir, 'client.db'));
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
      db.pragma('busy_timeout = 2000');
      db.exec(SCHEMA);
      const version = db.pragma('user_version', { simple: true }) as number;
      if (version > SCHEMA_VERSION) {
        db.close();
        throw new CoterieError('IO', `the client state in ${dataDir} was written by a newer Coterie; use another --data-dir`);
      }
      if (version < SCHEMA_VERSION) db.pragma(`user_version = ${SCHEMA_VERSION}`);
    } catch (err) {
      if (err instanceof CoterieError) throw err;
      throw new CoterieError('IO', `cannot open the client state in ${dataDir}: ${describe(err)}`, { cause: err });
    }
    return new LocalState(db, now);
  }

  private loadClientId(): string {
    const row = this.db.prepare('SELECT value FROM meta WHERE key = ?').get('clientId') as { value: string } | undefined;
    if (row) return row.value;
    const id = randomBytes(16).toString('hex');
    this.db.prepare('INSERT INTO meta (key, value) VALUES (?, ?)').run('clientId', id);
    return id;
  }

  // ------------------------------------------------------------------ shares

  /** Records a share (replacing one with the same user, group and info-hash). */
  putShare(s: ShareRecord): void {
    this.db.prepare(`INSERT OR REPLACE INTO shares
      (user, grp, info_hash, name, path, size, mtime_ms, info_bytes, sha256) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`)
      .run(s.user, s.group, s.infoHash, s.name, s.path, s.size, s.mtimeMs, s.infoBytes, s.sha256);
  }

  removeShare(user: string, group: string, infoHash: string): void {
    this.db.prepare('DELETE FROM shares WHERE user = ? AND grp = ? AND info_hash = ?').run(user, group, infoHash);
  }

  /** Every share of `user`, optionally in one group, by group then name. */
  shares(user: string, group?: string): ShareRecord[] {
    const rows = group === undefined
      ? this.db.prepare('SELECT * FROM shares WHERE user = ? ORDER BY grp, name').all(user)
      : this.db.prepare('SELECT * FROM shares WHERE user = ? AND grp = ? ORDER BY name').all(user, group);
    return (rows as ShareRow[]).map(toShare);
  }

  /** The share of `name` in `group` by `user`, if any. */
  shareByName(user: string, group: string, name: string): ShareRecord | undefined {
    const r = this.db.prepare('SELECT * FROM shares WHERE user = ? AND grp = ? AND name = ?').get(user, group, name);
    return r ? toShare(r as ShareRow) : undefined;
  }

  /** The most recent record of `path` being shared by anyone on this client (to skip re-hashing). */
  shareByPath(path: string): ShareRecord | undefined {
    const r = this.db.prepare('SELECT * FROM shares WHERE path = ? LIMIT 1').get(path);
    return r ? toShare(r as ShareRow) : undefined;
  }

  // ------------------------------------------------------------------ downloads

  /** Records a new download in state `downloading`. */
  addDownload(d: Omit<DownloadRecord, 'state' | 'createdMs' | 'error'>): DownloadRecord {
    const rec: DownloadRecord = { ...d, state: 'downloading', createdMs: this.now() };
    this.db.prepare(`INSERT INTO downloads (id, user, grp, name, dest_path, info_bytes, sha256, state, created_ms)
      VALUES (?, ?, ?, ?, ?, ?, ?, 'downloading', ?)`)
      .run(rec.id, rec.user, rec.group, rec.name, rec.destPath, rec.infoBytes, rec.sha256, rec.createdMs);
    return rec;
  }

  download(id: string): DownloadRecord | undefined {
    const r = this.db.prepare('SELECT * FROM downloads WHERE id = ?').get(id);
    return r ? toDownload(r as DownloadRow) : undefined;
  }

  /** Every download of `user`, oldest first. */
  downloads(user: string): DownloadRecord[] {
    return (this.db.prepare('SELECT * FROM downloads WHERE user = ? ORDER BY created_ms, rowid').all(user) as DownloadRow[])
      .map(toDownload);
  }

  /** An unfinished download (any user) writing to `destPath`, if any. */
  downloadingTo(destPath: string): DownloadRecord | undefined {
    const r = this.db.prepare("SELECT * FROM downloads WHERE dest_path = ? AND state = 'downloading' LIMIT 1").get(destPath);
    return r ? toDownload(r as DownloadRow) : undefined;
  }

  /** Marks a download failed for good (it is not resumed), keeping why. */
  failDownload(id: string, reason: string): void {
    this.db.prepare("UPDATE downloads SET state = 'failed', error = ?, bitfield = NULL WHERE id = ?").run(reason, id);
  }

  // ------------------------------------------------------------------ ResumeStore

  load(id: string): { bitfield: Uint8Array; partSize: number; partMtimeMs: number } | undefined {
    const r = this.db.prepare('SELECT bitfield, part_size, part_mtime_ms FROM downloads WHERE id = ?').get(id) as
      { bitfield: Buffer | null; part_size: number | null; part_mtime_ms: number | null } | undefined;
    if (!r || r.bitfield === null || r.part_size === null || r.part_mtime_ms === null) return undefined;
    return { bitfield: new Uint8Array(r.bitfield), partSize: r.part_size, partMtimeMs: r.part_mtime_ms };
  }

  save(id: string, bitfield: Uint8Array, partSize: number, partMtimeMs: number): void {
    this.db.prepare('UPDATE downloads SET bitfield = ?, part_size = ?, part_mtime_ms = ? WHERE id = ?')
      .run(Buffer.from(bitfield.buffer, bitfield.byteOffset, bitfield.byteLength), partSize, partMtimeMs, id);
  }

  /** The download completed: it stays listed as complete; its piece record goes. */
  complete(id: string): void {
    this.db.prepare("UPDATE downloads SET state = 'complete', error = NULL, bitfield = NULL, part_size = NULL, part_mtime_ms = NULL WHERE id = ?")
      .run(id);
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}

/**
 * The terminal shell's command history, a text file in the data dir (oldest first, one command a
 * line). Lines that carry a password (`login`, `create_user`) are never written.
 */
export class HistoryFile {
  constructor(private readonly path: string, private readonly max = 1000) {}

  /** The saved history, most recent first (readline's order). Unreadable history is just empty. */
  load(): string[] {
    let lines: string[];
    try { lines = readFileSync(this.path, 'utf8').split('\n').filter((l) => l.trim() !== ''); } catch { return []; }
    if (lines.length > this.max) {
      lines = lines.slice(-this.max);
      try { writeFileSync(this.path, lines.join('\n') + '\n', { mode: 0o600 }); } catch { /* best effort */ }
    }
    return lines.reverse();
  }

  /** Appends one command, unless it is blank or carries a password. */
  append(line: string): void {
    const t = line.trim();
    if (t === '' || /^(login|create_user)(\s|$)/.test(t) || t.includes('\n')) return;
    try { appendFileSync(this.path, t + '\n', { mode: 0o600 }); } catch { /* history is a convenience */ }
  }
}
