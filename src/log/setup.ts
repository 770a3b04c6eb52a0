/**
 * The entry's logging: LogTape, configured from `--log-level` and `--log-format` to write to fd 2 — the
 * terminal in the foreground, the log file in a daemon, so the same entry code logs to either with no change.
 * It is configured when the entry first asks for a logger: an entry that never does never loads LogTape
 * (~2 ms and ~2.5 MiB of every worker's start). The runner's own lines are lines.ts's, in the same format.
 *
 * @module
 */
import { configureSync, getLogger as getLogTapeLogger, type Logger } from "@logtape/logtape";
import { type LogFormat, type LogLevel, runnerLogging, setRunnerLogging } from "./lines.ts";
import { formatterFor, getFdSink } from "./sink.ts";

export type { Logger } from "@logtape/logtape";
export type { LogFormat, LogLevel } from "./lines.ts";

/** Logging settings of a process. */
export interface LoggingOptions {
  /** The lowest level written (default `info`). */
  level?: LogLevel;
  /** `text` (default) or `json` (JSON Lines). */
  format?: LogFormat;
}

let configured = false;

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
  setRunnerLogging(options);
  configured = true;
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
  const settings = configured ? undefined : runnerLogging();
  if (settings) configureLogging(settings);
  return getLogTapeLogger(category);
}
