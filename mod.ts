/**
 * daemonic: any Bun or Deno script as a classic Unix daemon.
 *
 * Most users never import this: `daemonic build server.ts -o mydaemon` wraps an unchanged entry. An entry
 * may import it to take part in its lifecycle, and a script may daemonize itself with {@linkcode daemonize}.
 *
 * @example Taking part in the lifecycle
 * ```ts
 * import { getLogger, onReload, onShutdown, ready } from "./mod.ts";
 * const log = getLogger("app"); // to the terminal in the foreground, to --log-file as a daemon
 * onShutdown(() => log.info("closing connections"));
 * onReload(() => log.info("re-reading the configuration"));
 * ready(); // only needed with --ready manual, or when the entry never listens
 * ```
 *
 * @module
 */
export { daemonize, type DaemonOptions, launch } from "./src/daemonize.ts";
export { DaemonError, type DaemonErrorCode, ExitCode } from "./src/errors.ts";
export { onReload, onShutdown, ready } from "./src/lifecycle.ts";
export { getLogger, type Logger, type LogLevel } from "./src/log/setup.ts";
export { reopenLogs } from "./src/log/rotate.ts";
export { type PidFileState, readPidFile } from "./src/pidfile.ts";
export { signalDaemon, stopDaemon, type StopResult } from "./src/roles/control.ts";
export { SystemCallError } from "./ffi/mod.ts";
