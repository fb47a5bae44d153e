/**
 * The shell: reads command lines and prints what commands say.
 *
 * On a terminal: a prompt (`coterie> `, or `alice@coterie> ` when logged in), history kept in the
 * data dir, tab completion, colours (unless NO_COLOR is set) and live progress lines. Not on a
 * terminal (piped input): no prompt, no colours, no progress, no background notices; each line is
 * run to completion, its output written, before the next line is read, so a script's output is
 * deterministic.
 */
import { createInterface, type Interface } from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import { complete, runLine } from './commands/index.js';
import type { ClientContext, Output } from './commands/context.js';
import type { HistoryFile } from './local-state.js';

export interface ShellIO {
  input: Readable;
  stdout: Writable;
  stderr: Writable;
  /** Interactive: prompt, history, completion, progress, notices. */
  terminal: boolean;
  /** ANSI colours (a terminal without NO_COLOR). */
  color: boolean;
}

/** Why the shell stopped reading. */
export type ShellEnd = 'quit' | 'eof';

const RED = '\x1b[31m';
const YELLOW = '\x1b[33m';
const BOLD = '\x1b[1m';
const RESET = '\x1b[0m';
const CLEAR_LINE = '\r\x1b[K';
/** Progress redraws at most this often: a terminal cannot show more, and each one is a write. */
const PROGRESS_INTERVAL_MS = 100;

/** Whether colours are wanted: only on a terminal, and never when NO_COLOR is set to anything. */
export function wantColor(isTTY: boolean, env: NodeJS.ProcessEnv = process.env): boolean {
  return isTTY && (env['NO_COLOR'] === undefined || env['NO_COLOR'] === '');
}

export class Shell {
  /** What commands print through. */
  readonly out: Output;
  private rl: Interface | null = null;
  private prompting = false;
  private progressShown = false;
  private lastProgress = 0;

  constructor(private readonly io: ShellIO, private readonly now: () => number = Date.now) {
    this.out = {
      line: (text) => this.write(this.io.stdout, text),
      warn: (text) => this.write(this.io.stderr, this.paint(YELLOW, `warning: ${text}`)),
      progress: (text) => this.progress(text),
      notify: (text) => this.notify(text),
    };
  }

  /** Prints an `error: ` line on stderr. */
  error(text: string): void {
    this.write(this.io.stderr, this.paint(RED, `error: ${text}`));
  }

  /** Reads and runs lines until `quit` or the end of input. */
  async run(ctx: ClientContext, history?: HistoryFile): Promise<ShellEnd> {
    const t = this.io.terminal;
    const rl = createInterface({
      input: this.io.input,
      output: t ? this.io.stdout : undefined,
      terminal: t,
      history: t && history ? history.load() : [],
      historySize: 1000,
      removeHistoryDuplicates: true,
      completer: t ? (line: string) => complete(ctx, line) : undefined,
    } as Parameters<typeof createInterface>[0]);
    this.rl = rl;
    // Ctrl-C at the prompt ends the session the way Ctrl-D does (quit), after clearing the line.
    if (t) rl.on('SIGINT', () => { this.io.stdout.write('^C\n'); rl.close(); });
    const prompt = (): void => {
      if (!t) return;
      const user = ctx.link.user;
      rl.setPrompt(this.paint(BOLD, user !== undefined ? `${user}@coterie> ` : 'coterie> '));
      this.prompting = true;
      rl.prompt();
    };
    let end: ShellEnd = 'eof';
    try {
      prompt();
      for await (const line of rl) {
        this.prompting = false;
        if (t) this.keepHistory(rl, line, history);
        const outcome = await runLine(ctx, line);
        if (outcome.kind === 'error') this.error(outcome.message);
        if (ctx.quitRequested) { end = 'quit'; break; }
        prompt();
      }
    } finally {
      this.prompting = false;
      this.rl = null;
      rl.close();
    }
    return end;
  }

  /**
   * History: a line carrying a password (login, create_user) is kept without it in memory, so
   * the up arrow does not show it, and never written to the history file.
   */
  private keepHistory(rl: Interface, line: string, file: HistoryFile | undefined): void {
    const h = (rl as unknown as { history?: string[] }).history;
    const m = /^\s*(login|create_user)\s+(\S+)/.exec(line);
    if (m && h && h[0] === line) h[0] = `${m[1]} ${m[2]} `;
    file?.append(line);
  }

  private paint(code: string, text: string): string {
    return this.io.color ? `${code}${text}${RESET}` : text;
  }

  private write(stream: Writable, text: string): void {
    if (this.progressShown) { this.io.stdout.write(CLEAR_LINE); this.progressShown = false; }
    stream.write(text + '\n');
  }

  private progress(text: string): void {
    if (!this.io.terminal) return;
    const now = this.now();
    if (this.progressShown && now - this.lastProgress < PROGRESS_INTERVAL_MS) return;
    this.lastProgress = now;
    this.io.stdout.write(CLEAR_LINE + text);
    this.progressShown = true;
  }

  /** A background notice: above the prompt on a terminal; dropped on a pipe (see module comment). */
  private notify(text: string): void {
    if (!this.io.terminal) return;
    if (this.prompting && this.rl) {
      this.io.stdout.write(CLEAR_LINE + text + '\n');
      this.rl.prompt(true);
    } else {
      this.write(this.io.stdout, text);
    }
  }
}
