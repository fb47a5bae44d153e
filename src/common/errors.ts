/**
 * Named errors. Every failure a user can act on is a {@link CoterieError} with a stable `code`;
 * only those cross the RPC boundary (see `toWireError`). Anything else is an internal fault: it is
 * logged with context and reported to the remote as `INTERNAL`, never with its message or stack.
 * Tests match on `code` (or `name`), never on message text.
 */
export type ErrorCode =
  | 'BAD_REQUEST' | 'TOO_LARGE' | 'UNKNOWN_OP' | 'INTERNAL' | 'UNAVAILABLE' | 'RATE_LIMITED'
  | 'UNAUTHENTICATED' | 'WRONG_PASSWORD' | 'NO_SUCH_USER' | 'USER_EXISTS' | 'ALREADY_LOGGED_IN'
  | 'GROUP_EXISTS' | 'NO_SUCH_GROUP' | 'NOT_OWNER' | 'NOT_MEMBER' | 'ALREADY_MEMBER'
  | 'REQUEST_PENDING' | 'NO_REQUEST' | 'OWNER_LAST_MEMBER' | 'INVALID_NAME'
  | 'NO_SUCH_FILE' | 'NAME_CONFLICT' | 'NOT_SHARING' | 'NO_SEEDER' | 'BAD_MANIFEST'
  | 'CLAIM_LOST' | 'USAGE' | 'UNKNOWN_COMMAND' | 'IO' | 'INTEGRITY' | 'NOT_LOGGED_IN'
  | 'PROTOCOL' | 'ACCESS_DENIED' | 'NO_TRACKER' | 'CLOCK_SKEW' | 'NOT_A_PEER'
  | 'BAD_BENCODE';

export class CoterieError extends Error {
  override name = 'CoterieError';
  constructor(readonly code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** A remote sent something that breaks the protocol: grounds for disconnecting it. */
export class ProtocolError extends CoterieError {
  override name = 'ProtocolError';
  constructor(message: string) { super('PROTOCOL', message); }
}

/** A frame or line longer than its cap. Grounds for disconnecting. */
export class FrameTooLargeError extends CoterieError {
  override name = 'FrameTooLargeError';
  constructor(readonly size: number, readonly cap: number) {
    super('TOO_LARGE', `frame of ${size} bytes exceeds the cap of ${cap}`);
  }
}

/** A command line the shell cannot run (missing arguments, unknown command). */
export class UsageError extends CoterieError {
  override name = 'UsageError';
  constructor(message: string, code: 'USAGE' | 'UNKNOWN_COMMAND' = 'USAGE') { super(code, message); }
}

/** Data that failed verification (piece hash, whole-file hash). */
export class IntegrityError extends CoterieError {
  override name = 'IntegrityError';
  constructor(message: string) { super('INTEGRITY', message); }
}

/** The shape an error takes on the wire. */
export interface WireError { code: ErrorCode; message: string }

export function toWireError(err: unknown): WireError {
  if (err instanceof CoterieError) return { code: err.code, message: err.message };
  return { code: 'INTERNAL', message: 'internal error in the tracker; it has been logged' };
}

export function fromWireError(e: WireError): CoterieError {
  return new CoterieError(e.code, e.message);
}

/** Message of any thrown value, for logs. */
export function describe(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
