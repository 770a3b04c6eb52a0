/**
 * The runner's command line: `mydaemon [action] [flags] [-- entry args]`, parsed with `node:util` parseArgs.
 *
 * @module
 */
import { existsSync, statSync } from "node:fs";
import { resolve } from "node:path";
import process from "node:process";
import { parseArgs } from "node:util";
import { FLAGS } from "./flags.ts";
import { DaemonError } from "./errors.ts";
import { runtimeDir } from "./safe_file.ts";
import { isFormat, isLevel, LOG_FORMATS, LOG_LEVELS } from "./log/lines.ts";
import { type DaemonSettings, DEFAULTS } from "./stage.ts";
import { readEnvFiles } from "./env_file.ts";
import { parseSize } from "./memory_limit.ts";
import { supervised, supervisionOf } from "./supervision.ts";

/** What the command line asks for. */
export type Action =
  | "foreground"
  | "daemon"
  | "stop"
  | "status"
  | "restart"
  | "reload"
  | "upgrade"
  | "reopen-logs"
  | "hold-logs"
  | "logs"
  | "help"
  | "version"
  | "install-service"
  | "uninstall-service"
  | "print-service"
  | "list";

/** Runner settings after parsing and validation; paths are absolute. The daemon's own settings are the
 * stage's (see stage.ts), declared once there. */
export interface RunnerOptions extends DaemonSettings {
  action: Action;
  /** Whether `pidFile` was given explicitly (a foreground run writes it only then). */
  pidFileGiven: boolean;
  /** The flags given on the command line (long names), for what applies only when asked for. */
  given: ReadonlySet<string>;
  /** `--logs`: how many lines from the end to print. */
  lines: number;
  /** `--list`, `--status`: JSON instead of text. */
  json: boolean;
  /** `--logs`: keep following the log across rotations. */
  follow: boolean;
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


const ACTIONS = ["daemon", "stop", "status", "restart", "reload", "upgrade", "reopen-logs", "hold-logs", "logs", "help", "version", "install-service", "uninstall-service", "print-service", "list"] as const;


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
export function defaultPidFile(name: string, env: Record<string, string | undefined> = process.env, uid = process.getuid?.() ?? 0): string {
  return uid === 0 ? `/run/${name}.pid` : `${runtimeDir(env, uid)}/${name}.pid`;
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

  let umask: number = DEFAULTS.umask;
  if (values.umask !== undefined) {
    if (!/^0?[0-7]{1,3}$/.test(values.umask)) fail(`Invalid --umask '${values.umask}': give an octal mask such as 022 or 077`);
    umask = parseInt(values.umask, 8);
  }
  const logLevel = values["log-level"] ?? DEFAULTS.logLevel;
  if (!isLevel(logLevel)) fail(`Invalid --log-level '${logLevel}': use ${LOG_LEVELS.join(", ")}`);
  const logFormat = values["log-format"] ?? DEFAULTS.logFormat;
  if (!isFormat(logFormat)) fail(`Invalid --log-format '${logFormat}': use ${LOG_FORMATS.join(" or ")}`);
  const lines = values.lines === undefined ? 10 : Number(values.lines);
  if (!/^\d+$/.test(values.lines ?? "0") || lines > 1_000_000) fail(`Invalid --lines '${values.lines}': give a whole number up to 1000000, e.g. -n 50`);
  if (action !== "logs" && (values.follow || values.lines !== undefined)) fail(`Invalid ${values.follow ? "--follow" : "--lines"}: it only goes with --logs`);
  // A master of N workers, whatever keep-alive says: the policy decides (supervision.ts).
  const pool = supervisionOf({ workers: count("workers", values.workers, DEFAULTS.workers), keepAlive: true }).kind === "workers";
  serviceFlagsCheck(values, action, pool);
  // Every flag works in every mode or is refused where it cannot: the start of a foreground run is timed by
  // whoever started it (systemd's TimeoutStartSec).
  if (action === "foreground" && values["start-timeout"] !== undefined) {
    fail("Invalid --start-timeout in the foreground: it times --daemon's start; under systemd set TimeoutStartSec=, or add --daemon");
  }
  if (values.group !== undefined && values.user === undefined) fail(`Invalid --group '${values.group}': it goes with --user, e.g. --user ${values.group} --group ${values.group}`);
  if (values["no-keep-alive"] && pool) fail("Invalid --no-keep-alive with --workers: a master always restarts its workers; drop one of them");
  if (values["no-keep-alive"] && values["keep-alive"]) fail("Conflicting --keep-alive and --no-keep-alive: give one at most");
  if (values.json && action !== "list" && action !== "status") fail("Invalid --json: it only goes with --list or --status");
  const ready = values.ready ?? DEFAULTS.ready;
  if (ready !== "auto" && ready !== "manual") fail(`Invalid --ready '${ready}': use auto or manual`);

  const chdir = resolve(baseDir, values.chdir ?? DEFAULTS.chdir);
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
    given: new Set(Object.keys(values)),
    logFile: values["log-file"] ? resolve(baseDir, values["log-file"]) : undefined,
    logLevel,
    logFormat,
    lines,
    follow: values.follow ?? false,
    json: values.json ?? false,
    chdir,
    umask,
    timeout: seconds("timeout", values.timeout, DEFAULTS.timeout),
    startTimeout: seconds("start-timeout", values["start-timeout"], DEFAULTS.startTimeout, "positive"),
    ready,
    workers: count("workers", values.workers, DEFAULTS.workers),
    // The foreground runs the entry in itself unless --keep-alive asks for a supervisor (a unit does).
    keepAlive: action === "foreground" ? values["keep-alive"] ?? false : !values["no-keep-alive"],
    workerTimeout: seconds("worker-timeout", values["worker-timeout"], DEFAULTS.workerTimeout, "positive"),
    ...entryFlags(values, action, baseDir),
    args: positionals,
    user: values.user,
    group: values.group,
    userService: values["user-service"] ?? false,
    now: values.now ?? false,
    serviceUser: values["service-user"],
    serviceGroup: values["service-group"],
    watchdogSec: values["watchdog-sec"] === undefined ? undefined : seconds("watchdog-sec", values["watchdog-sec"], 0),
  };
}

/** `--max-memory`, `--log-timestamps` (both need a master: of `--workers`, or keep-alive's supervisor) and
 * `--env-file` (read now, so a missing file fails before anything starts). */
function entryFlags(values: { workers?: string; "max-memory"?: string; "log-timestamps"?: boolean; "env-file"?: string[]; "no-keep-alive"?: boolean; "keep-alive"?: boolean }, action: Action, baseDir: string) {
  const given = values["max-memory"];
  const maxMemory = given === undefined ? 0 : parseSize(given) ?? fail(`Invalid --max-memory '${given}': give a size in K, M or G, e.g. --max-memory 300M`);
  const starts = ["daemon", "restart", "foreground", "install-service", "print-service"].includes(action);
  const workers = count("workers", values.workers, DEFAULTS.workers);
  // The foreground has a supervisor only with --keep-alive; --daemon, --restart and a unit unless --no-keep-alive.
  const keepAlive = action === "foreground" ? values["keep-alive"] === true : !values["no-keep-alive"];
  for (const [flag, set] of [["max-memory", maxMemory > 0], ["log-timestamps", values["log-timestamps"]]] as const) {
    if (!set || !starts || supervised(supervisionOf({ workers, keepAlive }))) continue;
    if (values["no-keep-alive"]) fail(`Invalid --${flag} with --no-keep-alive: the supervisor does it; drop --no-keep-alive (or add --workers 1)`);
    fail(`Invalid --${flag} without --workers in the foreground: a supervisor does it; add --keep-alive (or --workers 1)`);
  }
  const envFiles = (values["env-file"] ?? []).map((path) => {
    refuseEmptyPath("env-file", path);
    return resolve(baseDir, path);
  });
  if (starts) readEnvFiles(envFiles);
  return { maxMemory, logTimestamps: values["log-timestamps"] ?? false, envFiles };
}

/** The service flags go only with the service actions, and a user's systemd has no User= to switch to. */
function serviceFlagsCheck(values: Record<string, string | string[] | boolean | undefined>, action: Action, pool: boolean): void {
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
  if (install && pool && values["watchdog-sec"] !== undefined) {
    fail("Invalid --watchdog-sec with --workers: the unit runs workers with --daemon, which systemd's watchdog cannot reach yet");
  }
  if (install && values["log-file"] !== undefined && !pool) {
    fail("Invalid --log-file with --install-service: systemd's journal keeps the entry's output (journalctl -u NAME); drop --log-file");
  }
}
