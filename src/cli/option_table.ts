/**
 * Every flag of the runner, declared once. The parser (options.ts), `--help` (usage.ts), the stage check
 * (stage.ts), `--restart`'s remembered settings (remembered.ts), the systemd unit (service.ts), the README's
 * options table and the option × path test (test/option_paths.test.ts) are all derived from these rows.
 *
 * To add an option, add one row to {@linkcode OPTIONS}: its `paths` say what each way of running the daemon
 * does with it ("applied", or "refused" with an entry of options.ts's `RULES` that refuses it there), and the
 * test checks every cell. A daemon setting also gets its field (and default) in settings.ts; a new action
 * gets a row in {@linkcode ACTIONS} and its case in runner.ts. Then `bun scripts/readme-options.ts`
 * rewrites the README's tables. A row:
 *
 * - `name`, `short`: `--name` and `-s`; `arg`: the value's name in `--help` (none: a boolean flag);
 * - `parse`: the value's text to the setting, throwing a usage error that names the fix; `format`: back to
 *   text (the unit's `ExecStart`); `example`: a valid value other than the default;
 * - `key`: the {@linkcode RunnerOptions} field it fills; `setting`: it is a daemon setting, handed to the
 *   daemon in the stage and remembered by `--restart`;
 * - `with`: the actions it goes with (any other refuses it, but a control action takes a daemon setting,
 *   so one flag set serves a script's start and its `--status`); `unit`: how a systemd unit carries it: an
 *   `ExecStart` argument (`"exec"`), a directive (`"User="`), or nothing (`"none"`);
 * - `help`, `group`, `default`: its lines in `--help` and the README.
 *
 * @module
 */
import { isFormat, isLevel, LOG_FORMATS, LOG_LEVELS } from "../log/lines.ts";
import {
  accountName,
  decidedBy,
  fail,
  memoryLimit,
  octal,
  parseMetricsAddress,
  path,
  seconds,
  size,
  whole,
  workerCount,
} from "./option_values.ts";
import type { DaemonSettings } from "../settings.ts";
import type { Action, Cell, OptionRow, Path } from "./option_types.ts";

export { type DaemonSettings, DEFAULTS } from "../settings.ts";
export { ACTIONS } from "./action_table.ts";
export {
  type Action,
  type ActionRow,
  type Cell,
  type Group,
  type OptionRow,
  type Path,
  PATHS,
  type RunnerOptions,
} from "./option_types.ts";

const STARTS = ["foreground", "daemon", "restart", "install-service", "print-service"] as const satisfies Action[];
/** Applied on every path (and carried by an upgraded master's stage). */
// deno-fmt-ignore -- a row of cells
const EVERYWHERE: Record<Path, Cell> = {
  foreground: "applied", daemon: "applied", "no-keep-alive": "applied", workers: "applied", restart: "applied",
  unit: "applied", upgrade: "applied",
};
/** Options of other actions: refused wherever a daemon starts. */
// deno-fmt-ignore -- a row of cells
const NOT_A_START: Record<Path, Cell> = {
  foreground: "refused", daemon: "refused", "no-keep-alive": "refused", workers: "refused", restart: "refused",
  unit: "refused", upgrade: "n/a",
};
/** What needs a supervisor apart from the entry: `--workers`' master, or keep-alive's (a unit runs one too). */
// deno-fmt-ignore -- a row of cells
const NEEDS_SUPERVISOR: Record<Path, Cell> = { ...EVERYWHERE, foreground: "refused", "no-keep-alive": "refused" };
/** The unit's own settings. */
const UNIT_ONLY: Record<Path, Cell> = { ...NOT_A_START, unit: "applied" };

/** The options (`--help` and the README list them by group; a unit's ExecStart has them in this order). */
// deno-fmt-ignore -- a table: one row an option, its fields on a few lines
export const OPTIONS: readonly OptionRow[] = [
  {
    name: "pid-file", arg: "PATH", parse: path, example: "run/app.pid", key: "pidFile", setting: true, unit: "exec",
    group: "Files and identity",
    with: [...STARTS, "stop", "status", "reload", "upgrade", "reopen-logs", "hold-logs", "logs"], paths: EVERYWHERE,
    help: "the locked pid file",
    default: "/run/NAME.pid as root, else $XDG_RUNTIME_DIR/daemonic/NAME.pid (a private 0700 directory), else " +
      "/tmp/daemonic-UID/NAME.pid",
  },
  {
    name: "log-file", arg: "PATH", parse: path, example: "log/app.log", key: "logFile", setting: true, unit: "exec",
    group: "Files and identity",
    with: [...STARTS, "reopen-logs", "hold-logs", "logs"], paths: { ...EVERYWHERE, unit: "refused" },
    help: "stdout and stderr of the daemon, appended; reopened on --reopen-logs (a unit without --workers: the " +
      "journal has them)",
    default: "/dev/null",
  },
  {
    name: "name", arg: "NAME", example: "web", key: "name", setting: true, unit: "exec", group: "Files and identity",
    parse: (text, flag) =>
      /^[\w.@+-]+$/.test(text) ? text : fail(`Invalid --${flag} '${text}': use letters, digits and . _ - @ + only`),
    with: [...STARTS, "stop", "status", "reload", "upgrade", "reopen-logs", "hold-logs", "logs", "uninstall-service",
      "help", "version"], paths: EVERYWHERE,
    help: "name for the default pid file, the process titles and the unit", default: "the executable's base name",
  },
  {
    name: "chdir", arg: "DIR", parse: path, example: "/tmp", key: "chdir", setting: true, unit: "WorkingDirectory=",
    group: "Files and identity",
    with: STARTS, paths: EVERYWHERE,
    help: "working directory of the daemon (the foreground keeps its own unless given)", default: "/",
  },
  {
    name: "umask", arg: "OCTAL", example: "077", key: "umask", setting: true, unit: "UMask=", format: octal,
    group: "Files and identity",
    parse: (text, flag) => /^0?[0-7]{1,3}$/.test(text) ? parseInt(text, 8)
      : fail(`Invalid --${flag} '${text}': give an octal mask such as 022 or 077`),
    with: STARTS, paths: EVERYWHERE, help: "file mode creation mask of the daemon", default: "022",
  },
  {
    name: "user", arg: "USER", parse: accountName, example: "nobody", key: "user", setting: true, unit: "exec",
    group: "Files and identity",
    with: STARTS, paths: EVERYWHERE,
    help: "run the entry as USER (as root): pid file and log are opened as root first, the entry keeps " +
      "CAP_NET_BIND_SERVICE; a master stays root, its workers switch",
  },
  {
    name: "group", arg: "GROUP", parse: accountName, example: "nogroup", key: "group", setting: true, unit: "exec",
    group: "Files and identity",
    with: STARTS, paths: EVERYWHERE, help: "with --user: this group instead of USER's own",
  },
  {
    name: "ready", arg: "MODE", example: "manual", key: "ready", setting: true, unit: "exec", group: "Start and stop",
    parse: (text, flag) =>
      text === "auto" || text === "manual" ? text : fail(`Invalid --${flag} '${text}': use auto or manual`),
    with: STARTS, paths: EVERYWHERE, default: "auto",
    help: "auto: ready when the entry listens on a socket, calls ready(), or has run 1 s without failing; manual: " +
      "only ready()",
  },
  {
    name: "start-timeout", arg: "SEC", parse: seconds(0.001), example: "30", key: "startTimeout", setting: true,
    unit: "TimeoutStartSec=", group: "Start and stop",
    with: STARTS, paths: { ...EVERYWHERE, foreground: "refused" }, help: "how long --daemon waits for readiness",
    default: "60",
  },
  {
    name: "timeout", arg: "SEC", parse: seconds(0), example: "7", key: "timeout", setting: true,
    unit: "TimeoutStopSec=", group: "Start and stop",
    with: [...STARTS, "stop"], paths: EVERYWHERE,
    help: "how long a stop waits: --stop before SIGKILL, the entry's onShutdown hooks before exit 1 (in the " +
      "foreground too, e.g. as a container's PID 1); --stop without it uses the daemon's",
    default: "10",
  },
  {
    name: "update-env", example: "", key: "updateEnv", setting: false, unit: "none", group: "Start and stop",
    with: ["restart"], paths: { ...NOT_A_START, restart: "applied" },
    help: "--restart: with the caller's environment, not the one remembered",
  },
  {
    name: "workers", short: "w", arg: "N", parse: workerCount, example: "2", key: "workers", setting: true,
    unit: "exec", group: "Supervision",
    format: (n: number, s) => s?.workersAuto ? "auto" : String(n), derive: (text) => decidedBy("workers", text),
    with: STARTS, paths: { ...EVERYWHERE, "no-keep-alive": "refused" },
    default: "0: one copy of the entry, restarted when it dies",
    help: "pre-fork N workers sharing the entry's port (SO_REUSEPORT) under a master that runs no entry code; auto: " +
      "the CPU limit of the cgroup (a container's), rounded up, else the CPUs of the affinity mask",
  },
  {
    name: "no-keep-alive", negates: true, example: "", key: "keepAlive", setting: true, unit: "Restart=",
    group: "Supervision",
    with: STARTS, paths: { ...EVERYWHERE, foreground: "refused", workers: "refused" },
    help: "without --workers: the entry runs in the daemon process itself and stays dead when it dies",
  },
  {
    name: "keep-alive", example: "", key: "keepAlive", setting: true, unit: "exec", group: "Supervision",
    with: STARTS, paths: { ...EVERYWHERE, "no-keep-alive": "refused" },
    help: "in the foreground (what a systemd unit runs): a supervisor of one copy of the entry, as --daemon has by " +
      "default, so --reload replaces it successor first",
  },
  {
    name: "worker-timeout", arg: "SEC", parse: seconds(0.001), example: "5", key: "workerTimeout", setting: true,
    unit: "exec", group: "Supervision",
    with: STARTS, paths: NEEDS_SUPERVISOR,
    help: "kill and replace a worker (or the kept-alive entry) whose heartbeat is older than this", default: "60",
  },
  {
    name: "max-memory", arg: "SIZE", example: "300M", key: "maxMemory", setting: true, unit: "exec",
    group: "Supervision",
    parse: memoryLimit, format: (bytes: number, s) => s?.maxMemoryShare?.split(" ")[0] ?? size(bytes),
    derive: (text) => decidedBy("max-memory", text), with: STARTS, paths: NEEDS_SUPERVISOR,
    help: "replace a worker (or the kept-alive entry) whose RSS stays above SIZE (K, M or G; or 80%: that share of " +
      "the cgroup's memory limit) for 3 s, its successor first",
  },
  {
    name: "metrics", arg: "ADDR", example: "9464", key: "metrics", setting: true, unit: "exec", group: "Supervision",
    parse: (text, flag) => parseMetricsAddress(text) ? text
      : fail(`Invalid --${flag} '${text}': give PORT, HOST:PORT or [IPv6]:PORT, e.g. --${flag} 9464 or --${flag} ` +
        `127.0.0.1:9464`),
    with: STARTS, paths: NEEDS_SUPERVISOR,
    help: "serve Prometheus metrics at http://ADDR/metrics, and /ready and /live for HTTP probes, from the " +
      "supervisor (never the entry)",
  },
  {
    name: "log-level", arg: "LEVEL", example: "debug", key: "logLevel", setting: true, unit: "exec", group: "Logs",
    parse: (text, flag) => isLevel(text) ? text : fail(`Invalid --${flag} '${text}': use ${LOG_LEVELS.join(", ")}`),
    with: STARTS, paths: EVERYWHERE, help: `lowest level getLogger() and the runner write: ${LOG_LEVELS.join(", ")}`,
    default: "info",
  },
  {
    name: "log-format", arg: "FMT", example: "json", key: "logFormat", setting: true, unit: "exec", group: "Logs",
    parse: (text, flag) => isFormat(text) ? text : fail(`Invalid --${flag} '${text}': use ${LOG_FORMATS.join(" or ")}`),
    with: STARTS, paths: EVERYWHERE,
    help: "text, or json: one object a line (@timestamp, level, pid, worker, logger, message)", default: "text",
  },
  {
    name: "log-timestamps", example: "", key: "logTimestamps", setting: true, unit: "exec", group: "Logs", with: STARTS,
    paths: NEEDS_SUPERVISOR,
    help: "prefix each line the entry writes with the time, its pid and worker id (the supervisor writes them)",
  },
  {
    name: "lines", short: "n", arg: "N", parse: whole(1_000_000, "up to 1000000, e.g. -n 50"), example: "50",
    key: "lines", setting: false, unit: "none", group: "Logs",
    with: ["logs"], paths: NOT_A_START, help: "--logs: how many lines from the end", default: "10",
  },
  {
    name: "follow", short: "f", example: "", key: "follow", setting: false, unit: "none", group: "Logs", with: ["logs"],
    paths: NOT_A_START,
    help: "--logs: keep printing new lines, across rotations, until interrupted",
  },
  {
    name: "json", example: "", key: "json", setting: false, unit: "none", group: "Logs", with: ["list", "status"],
    paths: NOT_A_START,
    help: "--list, --status: JSON instead of text",
  },
  {
    name: "now", example: "", key: "now", setting: false, unit: "none", group: "systemd units",
    with: ["install-service"], paths: UNIT_ONLY,
    help: "--install-service: start the service as well",
  },
  {
    name: "user-service", example: "", key: "userService", setting: false, unit: "none", group: "systemd units",
    with: ["install-service", "uninstall-service", "print-service"], paths: UNIT_ONLY,
    help: "the user's systemd (systemctl --user), not the system's",
  },
  {
    name: "service-user", arg: "USER", parse: accountName, example: "www-data", key: "serviceUser", setting: false,
    unit: "User=", group: "systemd units",
    with: ["install-service", "print-service"], paths: UNIT_ONLY,
    help: "the unit's User=: systemd starts everything as USER (who may bind ports below 1024)",
  },
  {
    name: "service-group", arg: "GROUP", parse: accountName, example: "www-data", key: "serviceGroup", setting: false,
    unit: "Group=", group: "systemd units",
    with: ["install-service", "print-service"], paths: UNIT_ONLY, help: "the unit's Group=",
  },
  {
    name: "watchdog-sec", arg: "SEC", parse: seconds(0), example: "3", key: "watchdogSec", setting: false,
    unit: "WatchdogSec=", group: "systemd units",
    with: ["install-service", "print-service"], paths: UNIT_ONLY,
    help: "the unit's WatchdogSec=: systemd restarts an entry whose event loop blocks",
  },
  {
    name: "env-file", arg: "PATH", multiple: true, parse: path, example: "app.env", key: "envFiles", setting: true,
    unit: "exec", group: "Files and identity",
    with: STARTS, paths: EVERYWHERE,
    help: "KEY=value lines (.env) for the entry's environment, read again for each new worker and on --reload; " +
      "repeatable, a later file wins",
  },
];

/** The row of `--name`. */
export const optionRow = (name: string): OptionRow | undefined => OPTIONS.find((o) => o.name === name);

/** `value` as the command line gives it (the reverse of the row's `parse`). */
export function formatValue(row: OptionRow, value: unknown, settings?: Partial<DaemonSettings>): string {
  return row.format ? row.format(value as never, settings) : String(value);
}

/** Whether `value`, found in a stage, is a value `row` can set. */
export function validSetting(row: OptionRow, value: unknown): boolean {
  if (!row.arg) return typeof value === "boolean";
  // bytes, any: the library's too
  if (row.key === "maxMemory") return Number.isSafeInteger(value) && (value as number) > 0;
  if (row.multiple) return Array.isArray(value) && value.every((v) => validSetting({ ...row, multiple: false }, v));
  if (typeof value !== "string" && typeof value !== "number") return false;
  try {
    const again = row.parse!(formatValue(row, value), row.name, "/");
    return again === value && (row.parse !== path || (value as string).startsWith("/"));
  } catch {
    return false;
  }
}
