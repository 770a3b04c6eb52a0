/**
 * The runner's own log lines (start, ready, signals) through LogTape under category `daemonic`, so they
 * obey `--log-level` and `--log-format`; and the reopen of the log file that logrotate's postrotate asks for.
 *
 * @module
 */
import type { LogLevel } from "@logtape/logtape";
import { appendFileSync } from "node:fs";
import { dirname } from "node:path";
import { type Libc, libc as systemLibc, O, SystemCallError } from "../ffi/mod.ts";
import { getLogger } from "./logger.ts";
import { formatterFor, type LogFormat } from "./log_sink.ts";

/**
 * Writes one runner line at `level` (default `info`) under category `daemonic`.
 *
 * @example
 * ```ts
 * import { runnerLog } from "./log.ts";
 * runnerLog("ready");
 * runnerLog("hook failed: boom", "error");
 * ```
 */
export function runnerLog(line: string, level: LogLevel = "info"): void {
  // A plain message with braces doubled: LogTape would read "{x}" as a placeholder.
  getLogger("daemonic")[level](line.replaceAll("{", "{{").replaceAll("}", "}}"));
}

/**
 * Opens `path` again (O_WRONLY|O_APPEND|O_CREAT) and puts it on fds 1 and 2, so after logrotate moved the
 * file away (`create`) the next line goes to the new file. Nothing is lost: every write before the dup2
 * lands in the old file, every write after it in the new one. Returns whether it worked; when it cannot,
 * it says why in the old log, which stays in use.
 *
 * @example
 * ```ts ignore
 * process.on("SIGUSR1", () => reopenLogs("/var/log/app.log"));
 * ```
 */
export function reopenLogs(path: string, libc: Libc = systemLibc): boolean {
  let fd: number;
  try {
    fd = libc.open(path, O.WRONLY | O.APPEND | O.CREAT | O.NOCTTY, 0o644);
  } catch (err) {
    const why = err instanceof SystemCallError && err.code === "ENOENT" ? `directory ${dirname(path)} does not exist` : (err as Error).message;
    runnerLog(`Cannot reopen log file ${path}: ${why}: still writing to the old file; fix it, then send SIGUSR1 again`, "error");
    return false;
  }
  try {
    libc.dup2(fd, 1);
    libc.dup2(fd, 2);
  } finally {
    libc.close(fd);
  }
  runnerLog(`reopened log file ${path}`);
  return true;
}

/**
 * Appends one runner line at `fatal` to the log file at `path`, formatted as the daemon would have: for the
 * launcher, to record a start-up failure the daemon could not write itself (killed, or died silently).
 * Never throws: the failure is already on the launcher's terminal.
 *
 * @example
 * ```ts ignore
 * appendToLog("/var/log/app.log", "Cannot start: the entry was not ready within 60 s", "text");
 * ```
 */
export function appendToLog(path: string, line: string, format: LogFormat = "text"): void {
  const record = { category: ["daemonic"], level: "fatal", message: [line], rawMessage: line, properties: {}, timestamp: Date.now() } as const;
  try {
    appendFileSync(path, formatterFor(format)(record));
  } catch {
    // The log file is what failed; the terminal has the message.
  }
}
