/**
 * `--logs`: the daemon's log on stdout, like `pm2 logs`. GNU `tail` does the work: `-n N` for the last lines,
 * `-F` to follow by name across rotations (a new file after `create`, a truncated one after `copytruncate`),
 * `--pid` so it ends by itself within a fraction of a second once this process is gone, however it died.
 *
 * @module
 */
import { spawnSync } from "node:child_process";
import { existsSync, statSync } from "node:fs";
import process from "node:process";
import { DaemonError } from "./errors.ts";

/** Options of {@linkcode showLogs}. */
export interface ShowLogsOptions {
  /** How many lines from the end to print first (default 10). */
  lines?: number;
  /** Keep printing what is appended, following the path across rotations. */
  follow?: boolean;
}

/**
 * Prints the last lines of the log at `path` and, with `follow`, everything appended afterwards until the
 * process is interrupted. Returns tail's exit code.
 *
 * @example
 * ```ts ignore
 * showLogs("/var/log/app.log", { lines: 50, follow: true });
 * ```
 */
export function showLogs(path: string, options: ShowLogsOptions = {}): number {
  if (!options.follow && !existsSync(path)) {
    throw new DaemonError("NO_INPUT", `Cannot show logs: ${path} does not exist: the daemon has not written to it yet, or add -f to wait for it`);
  }
  if (existsSync(path) && !statSync(path).isFile()) {
    throw new DaemonError("NO_INPUT", `Cannot show logs: ${path} is not a regular file: give the daemon's log file to --log-file`);
  }
  const args = ["-n", String(options.lines ?? 10)];
  if (options.follow) args.push("-F", `--pid=${process.pid}`, "-s", "0.2");
  const result = spawnSync("tail", [...args, "--", path], { stdio: "inherit" });
  if (result.error) {
    throw new DaemonError("NO_INPUT", `Cannot show logs: cannot run tail: ${result.error.message}: install GNU coreutils`);
  }
  return result.status ?? 1;
}
