/**
 * Group commands: create_group, join_group, leave_group, list_requests, accept_request,
 * reject_request, list_groups. The tracker enforces ownership and membership; these print.
 */
import { checkId } from '../../common/names.js';
import { groupLine, printable } from '../format.js';
import { requireUser, type ClientContext } from './context.js';

export async function createGroup(ctx: ClientContext, [group]: string[]): Promise<void> {
  requireUser(ctx);
  checkId('group id', group!);
  await ctx.link.call('create_group', { group: group! });
  ctx.out.line(`created group ${group}`);
}

export async function joinGroup(ctx: ClientContext, [group]: string[]): Promise<void> {
  requireUser(ctx);
  checkId('group id', group!);
  await ctx.link.call('join_group', { group: group! });
  ctx.out.line(`join request sent to the owner of ${group}`);
}

/** Leaves a group; this client stops sharing everything it shared there. */
export async function leaveGroup(ctx: ClientContext, [group]: string[]): Promise<void> {
  const user = requireUser(ctx);
  checkId('group id', group!);
  const r = await ctx.link.call('leave_group', { group: group! });
  for (const s of ctx.state.shares(user, group!)) {
    ctx.engine.unseed(s.group, s.infoHash);
    ctx.serving.delete(s.group, s.infoHash);
    ctx.state.removeShare(user, s.group, s.infoHash);
  }
  void ctx.link.heartbeatNow();
  ctx.out.line(`left group ${group}` + (r.newOwner !== undefined ? `; ${printable(r.newOwner)} is now the owner` : ''));
}

export async function listRequests(ctx: ClientContext, [group]: string[]): Promise<void> {
  requireUser(ctx);
  checkId('group id', group!);
  const { users } = await ctx.link.call('list_requests', { group: group! });
  if (users.length === 0) { ctx.out.line('(no pending requests)'); return; }
  for (const u of users) ctx.out.line(printable(u));
}

export async function acceptRequest(ctx: ClientContext, [group, user]: string[]): Promise<void> {
  requireUser(ctx);
  checkId('group id', group!);
  checkId('user id', user!);
  await ctx.link.call('accept_request', { group: group!, user: user! });
  ctx.out.line(`accepted ${user} into ${group}`);
}

export async function rejectRequest(ctx: ClientContext, [group, user]: string[]): Promise<void> {
  requireUser(ctx);
  checkId('group id', group!);
  checkId('user id', user!);
  await ctx.link.call('reject_request', { group: group!, user: user! });
  ctx.out.line(`rejected ${user}'s request to join ${group}`);
}

export async function listGroups(ctx: ClientContext): Promise<void> {
  requireUser(ctx);
  const { groups } = await ctx.link.call('list_groups', {});
  ctx.knownGroups = groups.map((g) => g.group);
  if (groups.length === 0) { ctx.out.line('(no groups)'); return; }
  for (const g of groups) ctx.out.line(groupLine(g));
}
