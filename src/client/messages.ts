/**
 * The words of `error: ` lines. A refusal from the tracker carries a code; here the code becomes a
 * sentence about what the user typed (which user, which group, which file) and what to do next.
 * Codes without a sentence of their own fall back to the message that came with them, which is
 * written for users too. Pure.
 */
import { CoterieError } from '../common/errors.js';
import { printable } from './format.js';

/** What the failed command was about, from its arguments. */
export interface Subject {
  command: string;
  user?: string;
  group?: string;
  name?: string;
}

/** The text after `error: ` for a failure of `subject.command`. */
export function explain(err: unknown, subject: Subject): string {
  if (!(err instanceof CoterieError)) {
    return `internal error in the client: ${printable(err instanceof Error ? err.message : String(err))} (details in client.log)`;
  }
  const user = subject.user !== undefined ? printable(subject.user) : 'that user';
  const group = subject.group !== undefined ? printable(subject.group) : 'that group';
  const file = subject.name !== undefined ? `"${printable(subject.name)}"` : 'that file';
  const cmd = subject.command;
  switch (err.code) {
    case 'NOT_LOGGED_IN': return 'not logged in (use: login <user_id> <passwd>)';
    case 'UNAUTHENTICATED': return 'your session has ended (log in again: login <user_id> <passwd>)';
    case 'WRONG_PASSWORD': return `wrong password for ${user} (try again: login ${user} <passwd>)`;
    case 'NO_SUCH_USER':
      return cmd === 'login'
        ? `no user ${user} (create it first: create_user ${user} <passwd>)`
        : `no user ${user}`;
    case 'USER_EXISTS': return `user ${user} already exists (choose another user id, or log in as ${user})`;
    case 'CLAIM_LOST': return printable(err.message);
    case 'GROUP_EXISTS': return `group ${group} already exists (choose another group id)`;
    case 'NO_SUCH_GROUP': return `no group ${group} (see the groups there are with: list_groups)`;
    case 'NOT_OWNER': return `only the owner of ${group} can do that (see list_groups for who owns it)`;
    case 'NOT_MEMBER':
      return cmd === 'accept_request' || cmd === 'reject_request'
        ? printable(err.message)
        : `you are not a member of ${group} (ask to join with: join_group ${group})`;
    case 'ALREADY_MEMBER':
      return cmd === 'join_group'
        ? `you are already a member of ${group}`
        : `${user} is already a member of ${group}`;
    case 'REQUEST_PENDING': return `you already asked to join ${group}; the owner has not answered yet`;
    case 'NO_REQUEST': return `${user} has no pending request to join ${group} (see: list_requests ${group})`;
    case 'NO_SUCH_FILE': return `no file ${file} in ${group} (see: list_files ${group})`;
    case 'NAME_CONFLICT':
      return `${group} already has a different file named ${file} (rename your copy, then share it again)`;
    case 'NOT_SHARING': return `you are not sharing ${file} in ${group}`;
    case 'NO_SEEDER': return `no online seeder has ${file} in ${group} right now (try again later)`;
    case 'RATE_LIMITED': return `${printable(err.message)} (wait a little, then try again)`;
    default: return printable(err.message);
  }
}
