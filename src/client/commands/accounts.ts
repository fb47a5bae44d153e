/**
 * Account commands: create_user, login, logout, quit. Login is where a client picks up where it
 * left off for that user: it re-shares the files it shared (files.ts `reshareAll`) and resumes the
 * downloads it had not finished (downloads.ts `resumeAll`).
 */
import { CoterieError, describe } from '../../common/errors.js';
import { checkId } from '../../common/names.js';
import { plural } from '../format.js';
import { requireUser, type ClientContext } from './context.js';
import { resumeAll } from './downloads.js';
import { reshareAll } from './files.js';

export async function createUser(ctx: ClientContext, [user, password]: string[]): Promise<void> {
  checkId('user id', user!);
  await ctx.link.call('create_user', { user: user!, password: password! });
  ctx.out.line(`created user ${user}`);
}

export async function login(ctx: ClientContext, [user, password]: string[]): Promise<void> {
  const current = ctx.link.user;
  if (current !== undefined) {
    throw new CoterieError('ALREADY_LOGGED_IN', `already logged in as ${current} (logout first)`);
  }
  checkId('user id', user!);
  const r = await ctx.link.call('login', { user: user!, password: password!, peer: ctx.peer, clientId: ctx.clientId });
  ctx.access.addKeys(r.trackerKeys);
  ctx.link.startSession(r.user, r.token, password!);
  ctx.out.line(`logged in as ${r.user}`);
  // Picking up this user's shares and downloads must not turn a successful login into an error:
  // each problem is a warning line and the rest goes on.
  await reshareAll(ctx, r.user);
  const resumed = await resumeAll(ctx, r.user);
  if (resumed > 0) ctx.out.line(`resuming ${plural(resumed, 'download')}`);
  void ctx.link.heartbeatNow();
}

/**
 * Ends the session on this client: stops serving, pauses downloads (they resume at the next login),
 * tells the tracker. The local session ends even when no tracker can be told: its presence lease
 * then runs out by itself within seconds.
 */
export async function endSession(ctx: ClientContext): Promise<void> {
  ctx.engine.unseedAll();
  await ctx.engine.pauseAll();
  ctx.serving.clear();
  try {
    await ctx.link.call('logout', { clientId: ctx.clientId });
  } catch (err) {
    ctx.logger.warn({ err: describe(err) }, 'logout not acknowledged by a tracker');
  }
  ctx.link.endSession();
}

export async function logout(ctx: ClientContext): Promise<void> {
  requireUser(ctx);
  await endSession(ctx);
  ctx.out.line('logged out');
}

export async function quit(ctx: ClientContext): Promise<void> {
  if (ctx.link.user !== undefined) await endSession(ctx);
  ctx.quitRequested = true;
  ctx.out.line('bye');
}
