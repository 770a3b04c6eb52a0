/**
 * The runner's own log lines (start, ready, signals), written to stderr: the log file in a daemon.
 *
 * @module
 */
import process from "node:process";

/**
 * Writes one runner line to stderr, stamped with time and pid.
 *
 * @example
 * ```ts
 * import { runnerLog } from "./log.ts";
 * runnerLog("ready");
 * ```
 */
export function runnerLog(line: string): void {
  console.error(`${new Date().toISOString()} daemonic[${process.pid}]: ${line}`);
}
