/**
 * The tracker's domain layer: every command's rules, over a {@link Store}. Pure (no sockets, no
 * timers): see {@link DomainDeps} for what is injected.
 */
import { Accounts } from './accounts.js';
import { Files } from './files.js';
import { Groups } from './groups.js';
import type { DomainDeps } from './types.js';

export { Accounts, hashToken, DEFAULT_SCRYPT } from './accounts.js';
export { Files } from './files.js';
export { Groups } from './groups.js';
export { loadIdentity, trackerKeys } from './identity.js';
export { FailureLimiter } from './rate-limit.js';
export * from './types.js';

/** The three command families, sharing one set of dependencies. */
export interface Domain {
  deps: DomainDeps;
  accounts: Accounts;
  groups: Groups;
  files: Files;
}

export function createDomain(deps: DomainDeps): Domain {
  const groups = new Groups(deps);
  return { deps, accounts: new Accounts(deps), groups, files: new Files(deps, groups) };
}
