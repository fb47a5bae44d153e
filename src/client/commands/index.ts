/**
 * The command table and the dispatcher: a command line becomes words (tokenizer.ts), the first
 * word picks a command, the argument count is checked against its usage, and the command runs.
 * A refusal becomes one `error: ` line (messages.ts); the caller decides where lines go.
 */
import { basename } from 'node:path';
import { CoterieError, UsageError } from '../../common/errors.js';
import { columns } from '../format.js';
import { explain, type Subject } from '../messages.js';
import { tokenize } from '../tokenizer.js';
import { createUser, login, logout, quit } from './accounts.js';
import type { ClientContext } from './context.js';
import { downloadFile, showDownloads } from './downloads.js';
import { listFiles, stopShare, uploadFile } from './files.js';
import { acceptRequest, createGroup, joinGroup, leaveGroup, listGroups, listRequests, rejectRequest } from './groups.js';

/** The kinds of arguments commands take; a kind names its placeholder and what errors talk about. */
type Param = 'user' | 'passwd' | 'group' | 'file_name' | 'file_path' | 'destination_path';

const PLACEHOLDER: Record<Param, string> = {
  user: '<user_id>', passwd: '<passwd>', group: '<group_id>', file_name: '<file_name>',
  file_path: '<file_path>', destination_path: '<destination_path>',
};

/** One command: its name, its parameters (all required), a one-line summary, and what it does. */
export interface Command {
  name: string;
  params: Param[];
  summary: string;
  run(ctx: ClientContext, args: string[]): Promise<void> | void;
}

function help(ctx: ClientContext): void {
  ctx.out.line('commands (quote names that contain spaces):');
  for (const l of columns(COMMANDS.map((c) => [`  ${usage(c)}`, c.summary]))) ctx.out.line(l);
}

/** Every command, in the order `help` lists them. */
export const COMMANDS: Command[] = [
  { name: 'create_user', params: ['user', 'passwd'], summary: 'create an account', run: createUser },
  { name: 'login', params: ['user', 'passwd'], summary: 'log in; shares and unfinished downloads resume', run: login },
  { name: 'logout', params: [], summary: 'log out; sharing pauses until the next login', run: logout },
  { name: 'create_group', params: ['group'], summary: 'create a group that you own', run: createGroup },
  { name: 'join_group', params: ['group'], summary: 'ask the owner of a group to let you in', run: joinGroup },
  { name: 'leave_group', params: ['group'], summary: 'leave a group and stop sharing in it', run: leaveGroup },
  { name: 'list_requests', params: ['group'], summary: 'pending join requests of a group you own', run: listRequests },
  { name: 'accept_request', params: ['group', 'user'], summary: 'let a user into a group you own', run: acceptRequest },
  { name: 'reject_request', params: ['group', 'user'], summary: "turn down a user's join request", run: rejectRequest },
  { name: 'list_groups', params: [], summary: 'every group in the network', run: listGroups },
  { name: 'list_files', params: ['group'], summary: 'files shared in a group you are a member of', run: listFiles },
  { name: 'upload_file', params: ['file_path', 'group'], summary: 'share a file in a group (it stays where it is)', run: uploadFile },
  {
    name: 'download_file', params: ['group', 'file_name', 'destination_path'],
    summary: 'download a file in the background (to a directory or a file path)', run: downloadFile,
  },
  { name: 'show_downloads', params: [], summary: 'downloads: [D] downloading, [C] complete, [F] failed', run: showDownloads },
  { name: 'stop_share', params: ['group', 'file_name'], summary: 'stop sharing a file in a group', run: stopShare },
  { name: 'help', params: [], summary: 'this list', run: help },
  { name: 'quit', params: [], summary: 'log out and exit', run: quit },
];

const BY_NAME = new Map(COMMANDS.map((c) => [c.name, c]));

export function usage(c: Command): string {
  return [c.name, ...c.params.map((p) => PLACEHOLDER[p])].join(' ');
}

/** Edit distance, for "did you mean". */
function distance(a: string, b: string): number {
  const d = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = d[0]!;
    d[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = d[j]!;
      d[j] = Math.min(d[j]! + 1, d[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return d[b.length]!;
}

function unknownCommand(word: string): UsageError {
  const best = COMMANDS.map((c) => ({ c, d: distance(word.toLowerCase(), c.name) })).sort((x, y) => x.d - y.d)[0]!;
  // Only close misspellings: a short unknown word is close to too many commands to guess.
  const hint = best.d <= 2 && best.d * 2 < word.length ? `did you mean ${best.c.name}? ` : '';
  return new UsageError(`unknown command "${word}" (${hint}type help for the list of commands)`, 'UNKNOWN_COMMAND');
}

/** The words of a line and the command they name. Throws UsageError for bad lines. */
export function parseCommandLine(line: string): { command: Command; args: string[] } | null {
  const words = tokenize(line);
  if (words.length === 0) return null;
  const [name, ...args] = words as [string, ...string[]];
  const command = BY_NAME.get(name);
  if (!command) throw unknownCommand(name);
  if (args.length < command.params.length) {
    throw new UsageError(`missing arguments (usage: ${usage(command)})`);
  }
  if (args.length > command.params.length) {
    throw new UsageError(`too many arguments (usage: ${usage(command)}; quote names that contain spaces)`);
  }
  return { command, args };
}

function subjectOf(command: Command, args: string[]): Subject {
  const s: Subject = { command: command.name };
  command.params.forEach((p, i) => {
    if (p === 'user') s.user = args[i];
    else if (p === 'group') s.group = args[i];
    else if (p === 'file_name') s.name = args[i];
    else if (p === 'file_path') s.name = basename(args[i]!);
  });
  return s;
}

/** What running one line did: nothing (blank or comment), or a command that succeeded or failed. */
export type LineOutcome = { kind: 'empty' } | { kind: 'ok'; command: string } | { kind: 'error'; message: string; error: unknown };

/**
 * Runs one command line. Never throws: a refusal comes back as the text of its `error: ` line.
 * Blank lines and `#` comments do nothing (so scripts can be commented).
 */
export async function runLine(ctx: ClientContext, line: string): Promise<LineOutcome> {
  if (/^\s*(#|$)/.test(line)) return { kind: 'empty' };
  let parsed: ReturnType<typeof parseCommandLine>;
  try { parsed = parseCommandLine(line); } catch (err) {
    return { kind: 'error', message: err instanceof CoterieError ? err.message : String(err), error: err };
  }
  if (!parsed) return { kind: 'empty' };
  const { command, args } = parsed;
  try {
    await command.run(ctx, args);
    return { kind: 'ok', command: command.name };
  } catch (err) {
    if (!(err instanceof CoterieError)) ctx.logger.error({ err, command: command.name }, 'command failed unexpectedly');
    return { kind: 'error', message: explain(err, subjectOf(command, args)), error: err };
  }
}

/** Completions for the word being typed: command names first, then group ids seen in list_groups. */
export function complete(ctx: Pick<ClientContext, 'knownGroups'>, line: string): [string[], string] {
  const m = /(\S*)$/.exec(line)!;
  const word = m[1]!;
  const before = line.slice(0, line.length - word.length);
  if (before.trim() === '') {
    return [COMMANDS.map((c) => c.name).filter((n) => n.startsWith(word)), word];
  }
  const name = before.trim().split(/\s+/)[0]!;
  const command = BY_NAME.get(name);
  const position = before.trim().split(/\s+/).length - 1;
  if (command && command.params[position] === 'group') {
    return [ctx.knownGroups.filter((g) => g.startsWith(word)), word];
  }
  return [[], word];
}
