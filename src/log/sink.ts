/**
 * How a log record becomes one line on fd 2: LogTape's own text or JSON Lines formatter, stamped with the
 * pid (and worker id), written with a single write(2). In a daemon fd 2 is the log file opened O_APPEND, so
 * every record is one append that never interleaves with another process's inside a line, and a reopen
 * (dup2 onto fd 2) redirects the very next record.
 *
 * @module
 */
import { host } from "../../ffi/_host.ts";
import { getJsonLinesFormatter, getTextFormatter, type Sink, type TextFormatter } from "@logtape/logtape";
import { type Libc, libc as systemLibc } from "../../ffi/mod.ts";
import { type LogFormat, whoAmI } from "./lines.ts";

/**
 * The formatter for `format`, for the calling process (its pid and `DAEMONIC_WORKER_ID` are read now).
 *
 * text: `2026-01-02T03:04:05.678Z INFO app[1234]: message` (`app[1234 worker 2]` in a worker).
 * json: LogTape's JSON Lines with `pid` and `worker` (when set) added: `{"pid":1234,"worker":2,
 * "@timestamp":"…","level":"INFO","message":"…","logger":"app","properties":{…}}`.
 *
 * @example
 * ```ts
 * import { formatterFor } from "./sink.ts";
 * const format = formatterFor("json", { DAEMONIC_WORKER_ID: "2" }, 1234);
 * console.log(
 *   format({ category: ["app"], level: "info", message: ["hi"], rawMessage: "hi", properties: {}, timestamp: 0 }),
 * );
 * ```
 */
export function formatterFor(
  format: LogFormat,
  env: Record<string, string | undefined> = host.environ,
  pid = host.pid(),
): TextFormatter {
  const { worker } = whoAmI(env, pid);
  if (format === "json") {
    const jsonLines = getJsonLinesFormatter();
    // LogTape's object always starts with "{": splice our fields in front instead of re-serialising it.
    const head = `{"pid":${pid},${worker === undefined ? "" : `"worker":${JSON.stringify(worker)},`}`;
    return (record) => head + jsonLines(record).slice(1);
  }
  const who = worker === undefined ? `${pid}` : `${pid} worker ${worker}`;
  return getTextFormatter({
    timestamp: "rfc3339",
    level: "FULL",
    category: ".",
    value: "bare",
    format: ({ timestamp, level, category, message }) => `${timestamp} ${level} ${category}[${who}]: ${message}`,
  });
}

/**
 * A LogTape sink writing each formatted record to `fd` with one write(2) (a record is never split, never
 * buffered, so nothing is lost when the process exits or the log is reopened).
 *
 * @example
 * ```ts
 * import { configureSync, getLogger } from "@logtape/logtape";
 * import { formatterFor, getFdSink } from "./sink.ts";
 * configureSync({
 *   reset: true,
 *   sinks: { stderr: getFdSink(2, formatterFor("text")) },
 *   loggers: [{ category: [], sinks: ["stderr"] }],
 * });
 * getLogger("app").info("one line on stderr, in one write(2)");
 * ```
 */
export function getFdSink(fd: number, formatter: TextFormatter, libc: Libc = systemLibc): Sink {
  const encoder = new TextEncoder();
  return (record) => {
    try {
      libc.write(fd, encoder.encode(formatter(record)));
    } catch {
      // fd 2 is where we would report it; a log line that cannot be written must not take the daemon down.
    }
  };
}
