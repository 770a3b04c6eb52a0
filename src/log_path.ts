/**
 * Where a daemon's log is, found from its pid file alone: the daemon records its `--log-file` in a sidecar
 * file `PIDFILE.log-path` next to the pid file, so `--logs --pid-file P` needs nothing else. The sidecar
 * stays after the daemon exits, so the log of a crashed daemon can still be shown; a start without
 * `--log-file` removes it.
 *
 * @module
 */
import { readFileSync, unlinkSync } from "node:fs";
import { writeSidecar } from "./safe_file.ts";

/** The sidecar path for `pidFile`. */
export function logPathFile(pidFile: string): string {
  return `${pidFile}.log-path`;
}

/**
 * Records `logFile` (or its absence) next to `pidFile`. Called by the daemon once it holds the pid file's
 * lock, so it never overwrites the record of another running daemon.
 *
 * @example
 * ```ts ignore
 * recordLogPath("/run/app.pid", "/var/log/app.log"); // writes /run/app.pid.log-path
 * ```
 */
export function recordLogPath(pidFile: string, logFile: string | undefined): void {
  if (logFile) return writeSidecar(logPathFile(pidFile), `${logFile}\n`);
  try {
    unlinkSync(logPathFile(pidFile));
  } catch {
    // None recorded (or not a file: left alone).
  }
}

/**
 * The log path recorded next to `pidFile`, or `undefined` when there is none.
 *
 * @example
 * ```ts ignore
 * const log = recordedLogPath("/run/app.pid"); // "/var/log/app.log"
 * ```
 */
export function recordedLogPath(pidFile: string): string | undefined {
  try {
    return readFileSync(logPathFile(pidFile), "utf8").trim() || undefined;
  } catch {
    return undefined;
  }
}
