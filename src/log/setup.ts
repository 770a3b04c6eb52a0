/**
 * Logging set up in every process: LogTape, configured by the runner from `--log-level` and `--log-format` to
 * write to fd 2 — the terminal in the foreground, the log file in a daemon, so the same entry code logs to
 * either with no change — and the runner's own lines (start, ready, signals) under category `daemonic`.
 *
 * @module
 */
import { configureSync, getLogger as getLogTapeLogger, isLogLevel, type Logger, type LogLevel } from "@logtape/logtape";
import { appendFileSync } from "node:fs";
import { formatterFor, getFdSink, LOG_FORMATS, type LogFormat } from "./sink.ts";

export type { Logger, LogLevel } from "@logtape/logtape";
export { LOG_FORMATS, type LogFormat } from "./sink.ts";

/** The levels `--log-level` accepts, most verbose first. */
export const LOG_LEVELS: readonly LogLevel[] = ["trace", "debug", "info", "warning", "error", "fatal"];

/** Logging settings of a process. */
export interface LoggingOptions {
  /** The lowest level written (default `info`). */
  level?: LogLevel;
  /** `text` (default) or `json` (JSON Lines). */
  format?: LogFormat;
}

/** Whether `value` names a level, for option parsing. */
export function isLevel(value: string): value is LogLevel {
  return isLogLevel(value) && LOG_LEVELS.includes(value);
}

/** Whether `value` names a format, for option parsing. */
export function isFormat(value: string): value is LogFormat {
  return (LOG_FORMATS as readonly string[]).includes(value);
}

/**
 * Configures LogTape for this process: every category at `level` and above to fd 2 in `format`; LogTape's
 * own diagnostics only from `warning` up. Replaces any earlier configuration.
 *
 * @example
 * ```ts
 * import { configureLogging, getLogger } from "./setup.ts";
 * configureLogging({ level: "debug", format: "json" });
 * getLogger("app").debug("one JSON line on stderr");
 * ```
 */
export function configureLogging(options: LoggingOptions = {}): void {
  const sink = getFdSink(2, formatterFor(options.format ?? "text"));
  configureSync({
    reset: true,
    sinks: { stderr: sink },
    loggers: [
      { category: [], sinks: ["stderr"], lowestLevel: options.level ?? "info" },
      { category: ["logtape", "meta"], sinks: ["stderr"], lowestLevel: "warning", parentSinks: "override" },
    ],
  });
}

/**
 * A LogTape logger for `category` (default `"app"`). Under the runner its records go to the terminal in the
 * foreground and to the log file in a daemon, filtered by `--log-level`, formatted by `--log-format`.
 * Outside the runner nothing is configured and records are dropped, as LogTape does.
 *
 * @example
 * ```ts
 * import { getLogger } from "./setup.ts";
 * const log = getLogger(["app", "db"]);
 * log.info("connected to {host}", { host: "db1" });
 * log.debug("only with --log-level debug");
 * ```
 */
export function getLogger(category: string | readonly string[] = "app"): Logger {
  return getLogTapeLogger(category);
}

/**
 * Writes one runner line at `level` (default `info`) under category `daemonic`.
 *
 * @example
 * ```ts
 * import { runnerLog } from "./setup.ts";
 * runnerLog("ready");
 * runnerLog("hook failed: boom", "error");
 * ```
 */
export function runnerLog(line: string, level: LogLevel = "info"): void {
  // A plain message with braces doubled: LogTape would read "{x}" as a placeholder.
  getLogger("daemonic")[level](line.replaceAll("{", "{{").replaceAll("}", "}}"));
}

/**
 * Appends one runner line at `fatal` to the log file at `path`, formatted as the daemon would have: for the
 * launcher, to record a start-up failure the daemon could not write itself (killed, or died silently).
 * Never throws: the failure is already on the launcher's terminal.
 *
 * @example
 * ```ts
 * import { appendToLog } from "./setup.ts";
 * import { mkdtempSync, readFileSync } from "node:fs";
 * const log = `${mkdtempSync("/tmp/daemonic-doc-")}/app.log`;
 * appendToLog(log, "Cannot start: the entry was not ready within 60 s", "text");
 * console.log(readFileSync(log, "utf8")); // 2026-…Z FATAL daemonic[1234]: Cannot start: …
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
