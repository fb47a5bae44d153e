/**
 * Validation of names users choose (user ids, group ids, file names). These are never used as
 * paths, but they are shown in terminals and listings, so they must be printable, bounded and
 * free of path separators. The tracker refuses anything else with INVALID_NAME.
 */
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
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(name)) return 'must not contain control characters';
  return null;
}

export function checkId(kind: 'user id' | 'group id', name: string): void {
  const p = idProblem(name);
  if (p) throw new CoterieError('INVALID_NAME', `${kind} "${name}" ${p}`);
}

export function checkFileName(name: string): void {
  const p = fileNameProblem(name);
  if (p) throw new CoterieError('INVALID_NAME', `file name "${name}" ${p}`);
}
