/**
 * Validation of names users choose (user ids, group ids, file names). They are shown in terminals
 * and listings, and a file name becomes the last component of a download's path, so they must be
 * printable, bounded and free of path separators. The tracker refuses anything else with
 * INVALID_NAME where a name first enters (create_user, create_group, upload_file's manifest), and
 * the client checks again before it uses a name ({@link safeJoin}).
 */
import { basename, join, resolve } from 'node:path';
import { CoterieError } from './errors.js';

export const MAX_ID_LENGTH = 64;
export const MAX_FILE_NAME_LENGTH = 255;
export const MAX_PASSWORD_LENGTH = 256;

const ID_RE = /^[A-Za-z0-9._@+-]+$/;

/** Why `name` is not an acceptable user or group id, or null if it is. */
export function idProblem(name: string): string | null {
  if (name.length === 0) return 'must not be empty';
  if (name.length > MAX_ID_LENGTH) return `is longer than ${MAX_ID_LENGTH} characters`;
  if (!ID_RE.test(name)) return 'may only contain letters, digits and . _ @ + -';
  if (name === '.' || name === '..') return 'must not be . or ..';
  return null;
}

/** Why `name` is not an acceptable file name, or null. */
export function fileNameProblem(name: string): string | null {
  if (name.length === 0) return 'must not be empty';
  if (Buffer.byteLength(name) > MAX_FILE_NAME_LENGTH) return `is longer than ${MAX_FILE_NAME_LENGTH} bytes`;
  if (name === '.' || name === '..') return 'must not be . or ..';
  if (/[/\\]/.test(name)) return 'must not contain / or \\';
  // C0 and C1 controls (NUL, escape sequences, CSI), and the Unicode line separators and bidi
  // overrides that can make a listing show another name than the real one.
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/.test(name)) return 'must not contain control characters';
  return null;
}

/**
 * `dir/name` for a name that came from elsewhere (a manifest, a tracker listing): throws
 * INVALID_NAME unless `name` is an acceptable file name that stays one path component, so the
 * result is always directly inside `dir`, never above or beside it.
 */
export function safeJoin(dir: string, name: string): string {
  checkFileName(name);
  const base = resolve(dir);
  const path = join(base, name);
  if (resolve(path, '..') !== base || basename(path) !== name) {
    throw new CoterieError('INVALID_NAME', `file name "${name}" would leave the destination directory`);
  }
  return path;
}

export function checkId(kind: 'user id' | 'group id', name: string): void {
  const p = idProblem(name);
  if (p) throw new CoterieError('INVALID_NAME', `${kind} "${name}" ${p}`);
}

export function checkFileName(name: string): void {
  const p = fileNameProblem(name);
  if (p) throw new CoterieError('INVALID_NAME', `file name "${name}" ${p}`);
}
