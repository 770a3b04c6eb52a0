/**
 * Where a daemon's log is, and `--logs`. The daemon records its `--log-file` in a sidecar `PIDFILE.log-path`
 * beside its pid file, so `--logs --pid-file P` needs nothing else; the record stays after a crash, so the
 * log of a crashed daemon can still be shown, and goes with the pid file on a stop; a start without
 * `--log-file` removes it.
 *
 * `--logs`: the daemon's log on stdout, like `pm2 logs`. GNU `tail` does the work: `-n N` for the last lines,
 * `-F` to follow by name across rotations (a new file after `create`, a truncated one after `copytruncate`),
 * `--pid` so it ends by itself within a fraction of a second once this process is gone, however it died.
 * Where there is no `tail`, tail.ts does the same in this process.
 *
 * @module
 */
import { host } from "../../ffi/_host.ts";
import { DaemonError } from "../errors.ts";
import { findProgram } from "../programs.ts";
import { writeSidecar } from "../safe_file.ts";

/** Options of {@linkcode showLogs}. */
export interface ShowLogsOptions {
  /** How many lines from the end to print first (default 10). */
  lines?: number;
  /** Keep printing what is appended, following the path across rotations. */
  follow?: boolean;
}

/**
 * Prints the last lines of the log at `path` and, with `follow`, everything appended afterwards until the
 * process is interrupted. Returns tail's exit code (0 where it is done without tail).
 *
 * @example
 * ```ts
 * import { showLogs } from "./show.ts";
 * import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
 * const dir = mkdtempSync("/tmp/daemonic-doc-");
 * writeFileSync(`${dir}/app.log`, "one\ntwo\n");
 * await showLogs(`${dir}/app.log`, { lines: 1 }); // prints "two"
 * rmSync(dir, { recursive: true });
 * ```
 */
export async function showLogs(path: string, options: ShowLogsOptions = {}): Promise<number> {
  if (!options.follow && !host.exists(path)) {
    throw new DaemonError(
      "NO_INPUT",
      `Cannot show logs: ${path} does not exist: the daemon has not written to it yet, or add -f to wait for it`,
    );
  }
  if (host.exists(path) && !host.stat(path).isFile) {
    throw new DaemonError(
      "NO_INPUT",
      `Cannot show logs: ${path} is not a regular file: give the daemon's log file to --log-file`,
    );
  }
  const tail = findProgram("tail");
  // Imported here: every launcher and daemon loads this module for the log-path record, not to show logs.
  if (!tail) return await (await import("./tail.ts")).tailLog(path, options.lines ?? 10, options.follow ?? false);
  const args = ["-n", String(options.lines ?? 10)];
  if (options.follow) args.push("-F", `--pid=${host.pid()}`, "-s", "0.2");
  const { spawnSync } = await import("node:child_process");
  const result = spawnSync(tail, [...args, "--", path], { stdio: "inherit" });
  if (result.error) {
    throw new DaemonError(
      "OS_FILE",
      `Cannot show logs: cannot run ${tail}: ${result.error.message}: install GNU coreutils`,
    );
  }
  return result.status ?? 1;
}

/** The sidecar path for `pidFile`. */
export function logPathFile(pidFile: string): string {
  return `${pidFile}.log-path`;
}

/**
 * Records `logFile` (or its absence) next to `pidFile`. Called by the daemon once it holds the pid file's
 * lock, so it never overwrites the record of another running daemon.
 *
 * @example
 * ```ts
 * import { recordedLogPath, recordLogPath } from "./show.ts";
 * import { mkdtempSync, rmSync } from "node:fs";
 * const dir = mkdtempSync("/tmp/daemonic-doc-");
 * recordLogPath(`${dir}/app.pid`, "/var/log/app.log"); // writes app.pid.log-path beside it
 * console.log(recordedLogPath(`${dir}/app.pid`)); // /var/log/app.log
 * rmSync(dir, { recursive: true });
 * ```
 */
export function recordLogPath(pidFile: string, logFile: string | undefined): void {
  if (logFile) return writeSidecar(logPathFile(pidFile), `${logFile}\n`);
  try {
    host.unlink(logPathFile(pidFile));
  } catch {
    // None recorded (or not a file: left alone).
  }
}

/**
 * The log path recorded next to `pidFile`, or `undefined` when there is none.
 *
 * @example
 * ```ts
 * import { recordedLogPath } from "./show.ts";
 * console.log(recordedLogPath("/nonexistent/app.pid")); // undefined: nothing recorded there
 * ```
 */
export function recordedLogPath(pidFile: string): string | undefined {
  try {
    return host.readText(logPathFile(pidFile)).trim() || undefined;
  } catch {
    return undefined;
  }
}
