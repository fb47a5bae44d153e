/**
 * Logging: pino, synchronous destinations only (no worker-thread transports, which cost a thread
 * on a 2-core machine and lose lines on kill -9). The tracker logs to stderr; the client logs to a
 * file in its data dir because stdout and stderr belong to the shell.
 */
import { pino, type Logger } from 'pino';

export type { Logger };

export function stderrLogger(name: string, level = process.env['COTERIE_LOG'] ?? 'info'): Logger {
  return pino({ name, level, base: { pid: process.pid } }, pino.destination({ fd: 2, sync: true }));
}

export function fileLogger(name: string, path: string, level = process.env['COTERIE_LOG'] ?? 'info'): Logger {
  return pino({ name, level, base: { pid: process.pid } }, pino.destination({ dest: path, sync: true, mkdir: true }));
}

export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
