/**
 * The runner's command line: `mydaemon [action] [flags] [-- entry args]`, parsed with `node:util` parseArgs.
 *
 * @module
 */
import { existsSync, statSync } from "node:fs";
import { basename, resolve } from "node:path";
import process from "node:process";
import { parseArgs } from "node:util";
import { DaemonError } from "./errors.ts";
import { runtimeDir } from "./safe_file.ts";
import { isFormat, isLevel, LOG_FORMATS, LOG_LEVELS, type LogFormat, type LogLevel } from "./log/setup.ts";

/** What the command line asks for. */
export type Action =
  | "foreground"
  | "daemon"
  | "stop"
  | "status"
  | "restart"
  | "reload"
  | "reopen-logs"
  | "hold-logs"
  | "logs"
  | "help"
  | "version"
  | "install-service"
  | "uninstall-service"
  | "print-service";

/** Runner settings after parsing and validation; paths are absolute. */
export interface RunnerOptions {
  action: Action;
  /** The daemon's name: pid file default, process title, messages. */
  name: string;
  /** Absolute pid file path (a default is derived from `name`). */
  pidFile: string;
  /** Whether `pidFile` was given explicitly (a foreground run writes it only then). */
  pidFileGiven: boolean;
  /** Absolute log file path; `undefined` means /dev/null. */
  logFile?: string;
  /** The lowest level the logger writes. */
  logLevel: LogLevel;
  /** `text` or `json` (JSON Lines). */
  logFormat: LogFormat;
  /** `--logs`: how many lines from the end to print. */
  lines: number;
  /** `--logs`: keep following the log across rotations. */
  follow: boolean;
  /** Working directory of the daemon. */
  chdir: string;
  /** File mode creation mask of the daemon. */
  umask: number;
  /** Seconds `--stop` waits after SIGTERM before SIGKILL. */
  timeout: number;
  /** Seconds the launcher waits for the daemon to become ready. */
  startTimeout: number;
  /** `auto`: ready when the entry listens (or calls `ready()`); `manual`: only when it calls `ready()`. */
  ready: "auto" | "manual";
  /** Pre-forked workers sharing the entry's port; 0 runs the entry in the daemon itself. */
  workers: number;
  /** Seconds without a worker heartbeat before the master kills it. */
  workerTimeout: number;
  /** Arguments for the entry (everything after `--`). */
  args: string[];
  /** `--install-service`: into the user's systemd (`systemctl --user`) instead of the system's. */
  userService: boolean;
  /** `--install-service`: start it now, not only at boot. */
  now: boolean;
  /** The unit's `User=` and `Group=`. */
  serviceUser?: string;
  serviceGroup?: string;
  /** The unit's `WatchdogSec=`. */
  watchdogSec?: number;
}

const FLAGS = {
  daemon: { type: "boolean", short: "d" },
  stop: { type: "boolean" },
  status: { type: "boolean" },
  restart: { type: "boolean" },
  reload: { type: "boolean" },
  "reopen-logs": { type: "boolean" },
  "hold-logs": { type: "boolean" },
  logs: { type: "boolean" },
  help: { type: "boolean", short: "h" },
  version: { type: "boolean", short: "V" },
  "pid-file": { type: "string" },
  "log-file": { type: "string" },
  "log-level": { type: "string" },
  "log-format": { type: "string" },
  follow: { type: "boolean", short: "f" },
  lines: { type: "string", short: "n" },
  chdir: { type: "string" },
  umask: { type: "string" },
  timeout: { type: "string" },
  "start-timeout": { type: "string" },
  ready: { type: "string" },
  name: { type: "string" },
  workers: { type: "string", short: "w" },
  "worker-timeout": { type: "string" },
  "install-service": { type: "boolean" },
  "uninstall-service": { type: "boolean" },
  "print-service": { type: "boolean" },
  "user-service": { type: "boolean" },
  now: { type: "boolean" },
  "service-user": { type: "string" },
  "service-group": { type: "string" },
  "watchdog-sec": { type: "string" },
} as const;

const ACTIONS = ["daemon", "stop", "status", "restart", "reload", "reopen-logs", "hold-logs", "logs", "help", "version", "install-service", "uninstall-service", "print-service"] as const;

/** The usage text of a compiled daemon (`--help`). */
export function usage(name: string): string {
  return `Usage: ${name} [action] [options] [-- args for the entry]

Actions (one at most; none runs the entry in the foreground):
  -d, --daemon          detach per daemon(7); exit 0 once the entry is ready, printing its pid
      --stop            SIGTERM, wait --timeout seconds, then SIGKILL; exit 0 once stopped
      --status          LSB codes: 0 running, 1 dead but pid file left, 3 not running, 4 unknown
      --restart         --stop, then --daemon with the same options
      --reload          send SIGHUP to the daemon (its onReload hooks run)
      --reopen-logs     send SIGURG to the daemon: it reopens --log-file (for logrotate's postrotate)
      --hold-logs       for copytruncate's prerotate: the daemon and its workers write nowhere near the log
                        until --reopen-logs, which writes the held lines first; so no line is lost
      --logs            print the last lines of the daemon's log (the path is found next to the pid file,
                        in PIDFILE.log-path, or given with --log-file); -f follows it across rotations
      --install-service write a systemd unit running this binary with these options and -- args, reload
                        systemd and enable it (--now: start it too); /etc/systemd/system/NAME.service,
                        or ~/.config/systemd/user/ with --user-service
      --uninstall-service  stop, disable and remove that unit
      --print-service   print that unit without installing it
  -h, --help            this text
  -V, --version         the version

Options:
      --pid-file PATH   locked pid file (default: /run/NAME.pid as root, else in a private 0700 directory:
                        $XDG_RUNTIME_DIR/daemonic/NAME.pid, else /tmp/daemonic-UID/NAME.pid)
      --log-file PATH   stdout and stderr of the daemon, appended (default: /dev/null); reopened on --reopen-logs
      --log-level LEVEL lowest level getLogger() and the runner write: trace, debug, info, warning, error,
                        fatal (default: info)
      --log-format FMT  text, or json: one JSON object a line with @timestamp, level, pid, worker (in a
                        worker), logger, message, properties (default: text)
  -n, --lines N         --logs: how many lines from the end (default: 10)
  -f, --follow          --logs: keep printing new lines, across rotations, until interrupted
      --chdir DIR       working directory of the daemon (default: /)
      --umask OCTAL     file mode creation mask of the daemon (default: 022)
      --timeout SEC     how long --stop waits before SIGKILL (default: 10)
      --start-timeout SEC  how long --daemon waits for readiness (default: 60)
      --ready MODE      auto: ready when the entry listens on a socket or calls ready(), or has run 1 s
                        without failing; manual: only when it calls ready() (default: auto)
      --name NAME       name for the default pid file and the process title (default: ${name})
  -w, --workers N       pre-fork N workers sharing the entry's port (SO_REUSEPORT), supervised by a master
                        that runs no entry code (default: 0, the entry runs in the daemon itself)
      --worker-timeout SEC  kill and replace a worker whose heartbeat is older than this (default: 60)
      --now             --install-service: start the service as well
      --user-service    --install-service, --uninstall-service: the user's systemd, not the system's
      --service-user USER, --service-group GROUP  the unit's User= and Group=; it may bind ports below 1024
      --watchdog-sec SEC  the unit's WatchdogSec=: systemd kills and restarts an entry whose event loop blocks

Signals to a master with workers: TERM/INT quick stop, QUIT graceful stop, HUP rolling restart,
TTIN/TTOU one worker more/less, URG (USR1 on Bun too) reopen logs.

Exit codes: 0 ok, 64 usage, 66 entry, directory or log missing, 69 start-up failed, 73 cannot create the pid
or log file, 75 already running, 77 not permitted, 7 not running (--reload, --reopen-logs, --hold-logs).`;
}

function fail(message: string): never {
  throw new DaemonError("USAGE", message);
}

/** Longest duration a flag takes: timers and poll() count milliseconds in 32 bits, which a day fits. */
const MAX_SECONDS = 86_400;

function seconds(flag: string, value: string | undefined, fallback: number, min: "zero" | "positive" = "zero"): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  const least = min === "zero" ? 0 : 0.001;
  if (!/^\d+(\.\d+)?$/.test(value) || n < least || n > MAX_SECONDS) {
    fail(`Invalid --${flag} '${value}': give seconds from ${min === "zero" ? 0 : 0.001} to ${MAX_SECONDS}, e.g. --${flag} 10`);
  }
  return n;
}

function count(flag: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!/^\d+$/.test(value) || Number(value) > 1024) fail(`Invalid --${flag} '${value}': give a whole number from 0 to 1024`);
  return Number(value);
}

const SHORT_FLAGS = new Map(Object.entries(FLAGS).flatMap(([name, f]) => "short" in f ? [[`-${f.short}`, name]] : []));

/**
 * `--workers -1` becomes `--workers=-1` (parseArgs calls a value with a dash ambiguous; the checks below name
 * the fix); a flag whose value is missing, or is another flag, fails here with the fix.
 */
function joinDashValues(argv: readonly string[], programName: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--") return [...out, ...argv.slice(i)];
    const flag = /^--([\w-]+)$/.exec(argv[i])?.[1] ?? SHORT_FLAGS.get(argv[i]);
    const next = argv[i + 1];
    if (flag === undefined || FLAGS[flag as keyof typeof FLAGS]?.type !== "string" || !(next === undefined || next.startsWith("-"))) {
      out.push(argv[i]);
      continue;
    }
    if (next === undefined || next === "--" || /^--?[a-zA-Z]/.test(next)) {
      fail(`Missing value for --${flag}: give it one, e.g. --${flag}=VALUE (see ${programName} --help)`);
    }
    out.push(`--${flag}=${next}`);
    i++;
  }
  return out;
}

/** A path flag given as '' would silently fall back to its default: refuse it. */
function refuseEmptyPath(flag: string, value: string | undefined): void {
  if (value !== undefined && !value.trim()) fail(`Invalid --${flag} '${value}': give a path, or leave the flag out for the default`);
}

/** The default pid file for `name`: /run as root (systemd's PIDFile), a private directory otherwise. */
export function defaultPidFile(name: string, env: Record<string, string | undefined> = process.env): string {
  return (process.getuid?.() ?? 0) === 0 ? `/run/${name}.pid` : `${runtimeDir(env)}/${name}.pid`;
}

/**
 * Parses the runner's argv (without the executable). Relative paths resolve against `baseDir`.
 * Throws a {@linkcode DaemonError} with code `USAGE` (exit 64) or `NO_INPUT` (66) on bad input.
 *
 * @example
 * ```ts
 * import { parseRunnerArgs } from "./options.ts";
 * const opts = parseRunnerArgs(["--daemon", "--pid-file", "app.pid", "--", "8080"], { name: "app", baseDir: "/srv" });
 * console.log(opts.action, opts.pidFile, opts.args); // daemon /srv/app.pid [ "8080" ]
 * ```
 */
export function parseRunnerArgs(argv: readonly string[], context: { name: string; baseDir?: string }): RunnerOptions {
  const baseDir = context.baseDir ?? process.cwd();
  const args = joinDashValues(argv, context.name);
  let parsed;
  try {
    parsed = parseArgs({ args, options: FLAGS, allowPositionals: true, strict: true });
  } catch (cause) {
    const message = (cause as Error).message.split("\n")[0].replace(/\.? ?To specify a positional argument.*$/, "").replace(/\.$/, "");
    if (message.startsWith("Unknown option")) {
      fail(`${message}: to pass options to the entry, put them after --, e.g. ${context.name} -- --port 8080`);
    }
    if (message.includes("does not take an argument")) fail(`${message}: give it without a value`);
    fail(`${message}: see ${context.name} --help`);
  }
  const { values, positionals } = parsed;
  const entryArgs = argv.includes("--") ? argv.slice(argv.indexOf("--") + 1) : [];
  const misplaced = entryArgs.map((a) => a.split("=")[0]).find((a) => a.startsWith("--") && a.slice(2) in FLAGS);
  if (misplaced) console.error(`warning: ${misplaced} after -- goes to the entry, not to the runner: put runner flags before --`);
  const chosen = ACTIONS.filter((a) => values[a]);
  if (chosen.length > 1) fail(`Conflicting actions --${chosen.join(" and --")}: give one at most`);
  const action: Action = (chosen[0] as Action | undefined) ?? "foreground";
  for (const flag of ["pid-file", "log-file", "chdir"] as const) refuseEmptyPath(flag, values[flag]);
  const name = values.name ?? context.name;
  if (!/^[\w.@+-]+$/.test(name)) fail(`Invalid --name '${name}': use letters, digits and . _ - @ + only`);

  let umask = 0o022;
  if (values.umask !== undefined) {
    if (!/^0?[0-7]{1,3}$/.test(values.umask)) fail(`Invalid --umask '${values.umask}': give an octal mask such as 022 or 077`);
    umask = parseInt(values.umask, 8);
  }
  const logLevel = values["log-level"] ?? "info";
  if (!isLevel(logLevel)) fail(`Invalid --log-level '${logLevel}': use ${LOG_LEVELS.join(", ")}`);
  const logFormat = values["log-format"] ?? "text";
  if (!isFormat(logFormat)) fail(`Invalid --log-format '${logFormat}': use ${LOG_FORMATS.join(" or ")}`);
  const lines = values.lines === undefined ? 10 : Number(values.lines);
  if (!/^\d+$/.test(values.lines ?? "0") || lines > 1_000_000) fail(`Invalid --lines '${values.lines}': give a whole number up to 1000000, e.g. -n 50`);
  if (action !== "logs" && (values.follow || values.lines !== undefined)) fail(`Invalid ${values.follow ? "--follow" : "--lines"}: it only goes with --logs`);
  serviceFlagsCheck(values, action);
  const ready = values.ready ?? "auto";
  if (ready !== "auto" && ready !== "manual") fail(`Invalid --ready '${ready}': use auto or manual`);

  const chdir = resolve(baseDir, values.chdir ?? "/");
  if (values.chdir !== undefined && (action === "daemon" || action === "restart" || action === "foreground")) {
    if (!existsSync(chdir) || !statSync(chdir).isDirectory()) {
      throw new DaemonError("NO_INPUT", `Invalid --chdir '${values.chdir}': ${chdir} is not a directory: create it or pick another`);
    }
  }
  return {
    action,
    name,
    pidFile: values["pid-file"] ? resolve(baseDir, values["pid-file"]) : defaultPidFile(name),
    pidFileGiven: values["pid-file"] !== undefined,
    logFile: values["log-file"] ? resolve(baseDir, values["log-file"]) : undefined,
    logLevel,
    logFormat,
    lines,
    follow: values.follow ?? false,
    chdir,
    umask,
    timeout: seconds("timeout", values.timeout, 10),
    startTimeout: seconds("start-timeout", values["start-timeout"], 60, "positive"),
    ready,
    workers: count("workers", values.workers, 0),
    workerTimeout: seconds("worker-timeout", values["worker-timeout"], 60, "positive"),
    args: positionals,
    userService: values["user-service"] ?? false,
    now: values.now ?? false,
    serviceUser: values["service-user"],
    serviceGroup: values["service-group"],
    watchdogSec: values["watchdog-sec"] === undefined ? undefined : seconds("watchdog-sec", values["watchdog-sec"], 0),
  };
}

/** The service flags go only with the service actions, and a user's systemd has no User= to switch to. */
function serviceFlagsCheck(values: Record<string, string | boolean | undefined>, action: Action): void {
  const install = action === "install-service" || action === "print-service";
  for (const flag of ["now", "service-user", "service-group", "watchdog-sec"]) {
    if (values[flag] !== undefined && !install) fail(`Invalid --${flag}: it only goes with --install-service or --print-service`);
  }
  if (values["user-service"] && !install && action !== "uninstall-service") fail("Invalid --user-service: it only goes with --install-service, --uninstall-service or --print-service");
  if (values.now && action !== "install-service") fail("Invalid --now: it only goes with --install-service");
  for (const flag of ["service-user", "service-group"]) {
    const v = values[flag];
    if (typeof v === "string" && !/^[a-zA-Z_][\w.-]{0,31}$/.test(v)) fail(`Invalid --${flag} '${v}': give a user or group name such as www-data`);
    if (v !== undefined && values["user-service"]) fail(`Invalid --${flag} with --user-service: a user's systemd runs services as that user only`);
  }
  if (install && values.workers && values.workers !== "0" && values["watchdog-sec"] !== undefined) {
    fail("Invalid --watchdog-sec with --workers: the unit runs workers with --daemon, which systemd's watchdog cannot reach yet");
  }
  if (install && values["log-file"] !== undefined && !(values.workers && values.workers !== "0")) {
    fail("Invalid --log-file with --install-service: systemd's journal keeps the entry's output (journalctl -u NAME); drop --log-file");
  }
}

/** The name of a daemon built from `entryPath` or running as `execPath`. */
export function nameOf(path: string): string {
  return basename(path).replace(/\.[cm]?[jt]sx?$/, "") || "daemon";
}
