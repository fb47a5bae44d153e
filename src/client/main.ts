/**
 * Entry point of `./client <IP>:<PORT> <tracker_info_file> [options]`. All wiring is in app.ts.
 */
import { runClient } from './app.js';

runClient(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`error: the client failed to start: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
