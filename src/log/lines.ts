/**
 * The runner's own log lines (start, ready, signals, workers), in the very format LogTape's formatters give
 * `getLogger()` records (see sink.ts), but without loading LogTape: the launcher, the master and the
 * controller run no entry code, and LogTape's import and configuration cost each of them ~2 ms and ~2.5 MiB.
 * Each line is one write(2) on fd 2. Until a process sets its logging up, lines are dropped, as LogTape drops
 * records before it is configured.
 *
 * @module
 */
import { host } from "../../ffi/_host.ts";
import { libc } from "../../ffi/mod.ts";

/** The levels `--log-level` accepts, most verbose first (LogTape's). */
export const LOG_LEVELS = ["trace", "debug", "info", "warning", "error", "fatal"] as const;
/** A log level. */
export type LogLevel = typeof LOG_LEVELS[number];
/** The two log formats `--log-format` accepts. */
export const LOG_FORMATS = ["text", "json"] as const;
/** `text` (one human line) or `json` (JSON Lines). */
export type LogFormat = typeof LOG_FORMATS[number];
/** The environment variable a worker supervisor sets to each worker's id. */
export const WORKER_ID_ENV = "DAEMONIC_WORKER_ID";

/** Whether `value` names a level, for option parsing. */
export function isLevel(value: string): value is LogLevel {
  return (LOG_LEVELS as readonly string[]).includes(value);
}

/** Whether `value` names a format, for option parsing. */
export function isFormat(value: string): value is LogFormat {
  return (LOG_FORMATS as readonly string[]).includes(value);
}

/** This process's id in log lines: `1234`, or `1234 worker 2` in a worker (JSON: the worker id apart). */
export function whoAmI(
  env?: Record<string, string | undefined>,
  pid = host.pid(),
): { pid: number; worker?: number | string } {
  const raw = env ? env[WORKER_ID_ENV] : host.env(WORKER_ID_ENV);
  return raw === undefined || raw === "" ? { pid } : { pid, worker: /^\d+$/.test(raw) ? Number(raw) : raw };
}

/**
 * One runner line as LogTape's text formatter (sink.ts) or JSON Lines formatter would write it.
 *
 * @example
 * ```ts
 * import { formatLine } from "./lines.ts";
 * console.log(formatLine("text", "warning", "hello", { pid: 7, worker: 2 }, 0));
 * // 1970-01-01T00:00:00.000Z WARNING daemonic[7 worker 2]: hello
 * ```
 */
export function formatLine(
  format: LogFormat,
  level: LogLevel,
  message: string,
  who = whoAmI(),
  timestamp = Date.now(),
): string {
  const time = new Date(timestamp).toISOString();
  if (format === "text") {
    // As LogTape's text formatter: control characters but tab and newlines escaped, so a line cannot forge others'.
    const text = message.replace(
      /[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]/g,
      (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`,
    );
    return `${time} ${level.toUpperCase()} daemonic[${who.pid}${
      who.worker === undefined ? "" : ` worker ${who.worker}`
    }]: ${text}\n`;
  }
  const head = `{"pid":${who.pid},${who.worker === undefined ? "" : `"worker":${JSON.stringify(who.worker)},`}`;
  const level_ = JSON.stringify(level === "warning" ? "WARN" : level.toUpperCase());
  // LogTape escapes the C1 controls JSON.stringify leaves raw: the same bytes for the same message.
  const text = JSON.stringify(message).replace(
    /[\u007f-\u009f]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
  return `${head}"@timestamp":"${time}","level":${level_},"message":${text},"logger":"daemonic","properties":{}}\n`;
}

type Settings = { level: LogLevel; lowest: number; format: LogFormat; who: ReturnType<typeof whoAmI> };
// On globalThis, as the lifecycle hooks are: an entry importing daemonic from another copy of the package
// than the runner's (say the sources beside an installed package) logs with the runner's settings.
const KEY = Symbol.for("daemonic.logging");
const shared = globalThis as { [KEY]?: Settings };
const encoder = new TextEncoder();

/** Sets this process's logging up: the lowest level written and the format, for the runner's lines now and
 * for LogTape once the entry asks for a logger (setup.ts). */
export function setRunnerLogging(options: { level?: LogLevel; format?: LogFormat } = {}): void {
  const level = options.level ?? "info";
  shared[KEY] = { level, lowest: LOG_LEVELS.indexOf(level), format: options.format ?? "text", who: whoAmI() };
}

/** What {@linkcode setRunnerLogging} set, or `undefined` outside the runner. */
export function runnerLogging(): { level: LogLevel; format: LogFormat } | undefined {
  const settings = shared[KEY];
  return settings && { level: settings.level, format: settings.format };
}

/**
 * Writes one runner line at `level` (default `info`) under category `daemonic`, with one write(2) on fd 2.
 *
 * @example
 * ```ts
 * import { runnerLog, setRunnerLogging } from "./lines.ts";
 * setRunnerLogging({ level: "info" });
 * runnerLog("ready");
 * runnerLog("hook failed: boom", "error");
 * ```
 */
export function runnerLog(line: string, level: LogLevel = "info"): void {
  const settings = shared[KEY];
  if (!settings || LOG_LEVELS.indexOf(level) < settings.lowest) return;
  try {
    libc.write(2, encoder.encode(formatLine(settings.format, level, line, settings.who)));
  } catch {
    // fd 2 is where we would report it; a log line that cannot be written must not take the daemon down.
  }
}

/**
 * Appends one runner line at `fatal` to the log file at `path`, formatted as the daemon would have: for the
 * launcher, to record a start-up failure the daemon could not write itself (killed, or died silently).
 * Never throws: the failure is already on the launcher's terminal.
 *
 * @example
 * ```ts
 * import { appendToLog } from "./lines.ts";
 * import { mkdtempSync, readFileSync, rmSync } from "node:fs";
 * const dir = mkdtempSync("/tmp/daemonic-doc-");
 * appendToLog(`${dir}/app.log`, "Cannot start: the entry was not ready within 60 s", "text");
 * console.log(readFileSync(`${dir}/app.log`, "utf8")); // 2026-…Z FATAL daemonic[1234]: Cannot start: …
 * rmSync(dir, { recursive: true });
 * ```
 */
export function appendToLog(path: string, line: string, format: LogFormat = "text"): void {
  try {
    host.appendText(path, formatLine(format, "fatal", line));
  } catch {
    // The log file is what failed; the terminal has the message.
  }
}
