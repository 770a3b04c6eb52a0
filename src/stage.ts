/**
 * The stage: what a daemonic parent (launcher, master, old master) hands the process it re-executes. It
 * goes through fd 3, a socket pair whose other end the parent holds: the parent writes the stage as one
 * JSON line before it spawns, the environment only says where to read it (`DAEMONIC_STAGE=3`). The same
 * socket then carries the child's reports back (`READY`, `ERROR`, heartbeats). A marker inherited from a
 * caller's environment, without a socket and a valid stage behind it, is dropped with one warning.
 *
 * @module
 */
import { host } from "../ffi/_host.ts";
import { type Libc, libc as systemLibc } from "../ffi/mod.ts";
import type { LogFormat, LogLevel } from "./log/lines.ts";

/** A daemon's settings, every default applied: where the command line is parsed (options.ts), or by
 * {@linkcode withDefaults} for the library's {@linkcode DaemonOptions}. */
export interface DaemonSettings {
  /** The daemon's name: default pid file, process titles, messages. */
  name: string;
  /** Absolute pid file path. */
  pidFile: string;
  /** Absolute log file path for stdout and stderr; `undefined` for /dev/null. */
  logFile?: string;
  /** Lowest level of `getLogger()` records and the runner's lines. */
  logLevel: LogLevel;
  /** `text` or `json` (JSON Lines). */
  logFormat: LogFormat;
  /** Working directory of the daemon. */
  chdir: string;
  /** File mode creation mask of the daemon. */
  umask: number;
  /** Seconds `--stop` (and a graceful worker stop) waits before SIGKILL. */
  timeout: number;
  /** Seconds the launcher waits for the daemon to become ready. */
  startTimeout: number;
  /** `auto`: ready when the entry listens (or calls `ready()`); `manual`: only when it calls `ready()`. */
  ready: "auto" | "manual";
  /** Pre-forked workers sharing the entry's port; 0 runs the entry in one worker (keep-alive) or the daemon. */
  workers: number;
  /** With `workers` 0: a supervisor restarts the entry when it dies (`false`: `--no-keep-alive`, one process). */
  keepAlive: boolean;
  /** Seconds without a worker heartbeat before the master kills it. */
  workerTimeout: number;
  /** Arguments for the entry (everything after `--`). */
  args: string[];
  /** `--user`, `--group`: who runs the entry (see privileges.ts); `undefined`: who started it. */
  user?: string;
  group?: string;
  /** Absolute paths of `--env-file`s, read again for every new worker and on every reload. */
  envFiles: string[];
  /** Bytes of RSS above which a worker is replaced (`--max-memory`); 0 for no limit. */
  maxMemory: number;
  /** Each line the entry writes to stdout and stderr gets a time prefix (`--log-timestamps`). */
  logTimestamps: boolean;
}

/** Settings of a daemon started by the library's `launch()` or `daemonize()`: only `pidFile` is required. */
export type DaemonOptions = Partial<DaemonSettings> & { pidFile: string };

/** The default of every setting but the pid file (options.ts derives that one from the name) and the
 * entry's arguments: the command line's defaults and the library's. */
export const DEFAULTS = {
  name: "daemon", logLevel: "info", logFormat: "text", chdir: "/", umask: 0o022, timeout: 10, startTimeout: 60,
  ready: "auto", workers: 0, keepAlive: true, workerTimeout: 60, maxMemory: 0, logTimestamps: false,
} as const satisfies Omit<DaemonSettings, "pidFile" | "args" | "logFile" | "user" | "group" | "envFiles">;

/**
 * `options` with every default the command line has.
 *
 * @example
 * ```ts
 * import { withDefaults } from "./stage.ts";
 * console.log(withDefaults({ pidFile: "/run/app.pid" }).timeout); // 10
 * ```
 */
export function withDefaults(options: DaemonOptions): DaemonSettings {
  const settings: DaemonSettings = { ...DEFAULTS, pidFile: options.pidFile, args: [], envFiles: [] };
  // Only the settings, so a caller's wider object (the parsed command line) does not travel in the stage.
  for (const key of Object.keys(settings) as (keyof DaemonSettings)[]) {
    if (options[key] !== undefined) Object.assign(settings, { [key]: options[key] });
  }
  for (const key of ["logFile", "user", "group"] as const) if (options[key] !== undefined) settings[key] = options[key];
  return settings;
}

/** The command as the user started it: what a daemon runs again for its workers and its upgrades. */
export interface Command {
  path: string;
  args: string[];
  cwd: string;
}

/** What the launcher (or an old master, on USR2) hands the re-executed daemon. */
export interface DaemonStage extends DaemonSettings {
  role: "daemon";
  command: Command;
}

/** What the master hands a worker: the daemon's own settings, and which worker it is. */
export interface WorkerStage extends DaemonSettings {
  role: "worker";
  command: Command;
  /** The worker's slot, 1-based, stable across restarts of that slot. */
  id: number;
  masterPid: number;
}

/** What the launcher hands the short-lived process that starts the daemon where there is no /bin/sh to do it
 * (roles/detach.ts); the daemon's own stage follows it on the same socket. */
export interface DetachStage {
  role: "detach";
  command: Command;
}

/** Any stage a daemonic parent hands over. */
export type Stage = DaemonStage | WorkerStage | DetachStage;

/** The environment variable that marks a re-executed process; its value is the stage's fd. */
export const STAGE_ENV = "DAEMONIC_STAGE";
/** The fd of the stage socket in the child: the stage comes in on it, the reports go out on it. */
export const STAGE_FD = 3;
/** How long the child waits for the stage line; the parent writes it before it spawns, so it is there. */
const STAGE_WAIT_MS = 1000;

/** A socket pair for a child: `parentEnd` keeps the parent's side; `childEnd` goes to the child's fd 3 and
 * must be closed by the parent once spawned. The stages are already written into it, one line each, each
 * taken by the process it is for; `env` marks the child. */
export function handOver(stages: Stage | Stage[], libc: Libc = systemLibc): { parentEnd: number; childEnd: number; env: Record<string, string> } {
  const [parentEnd, childEnd] = libc.socketPair();
  const lines = [stages].flat().map((stage) => JSON.stringify(stage) + "\n").join("");
  libc.write(parentEnd, new TextEncoder().encode(lines));
  return { parentEnd, childEnd, env: { [STAGE_ENV]: String(STAGE_FD) } };
}

const isString = (v: unknown) => typeof v === "string";
const isStrings = (v: unknown) => Array.isArray(v) && v.every(isString);
const isNumber = (v: unknown) => typeof v === "number" && Number.isFinite(v);

/** The stage in `value` when it has every field its role needs, else `undefined`. */
function validStage(value: unknown): Stage | undefined {
  const s = value as Record<string, unknown> | null;
  if (typeof s !== "object" || s === null) return undefined;
  const c = s.command as Record<string, unknown> | null;
  const command = typeof c === "object" && c !== null && isString(c.path) && isStrings(c.args) && isString(c.cwd);
  if (command && s.role === "detach") return s as unknown as DetachStage;
  const common = command && isString(s.name) && isString(s.pidFile) && (s.pidFile as string).startsWith("/") && isStrings(s.args) && isString(s.chdir) &&
    (s.logFile === undefined || isString(s.logFile)) && isNumber(s.workers) && isNumber(s.timeout) &&
    isNumber(s.workerTimeout) && isNumber(s.startTimeout) && isNumber(s.umask) && (s.ready === "auto" || s.ready === "manual") &&
    [s.user, s.group].every((v) => v === undefined || isString(v)) &&
    (s.envFiles === undefined || isStrings(s.envFiles));
  s.envFiles ??= []; // from an older master (USR2 upgrade) that had no --env-file
  if (common && s.role === "daemon") return s as unknown as DaemonStage;
  if (common && s.role === "worker" && Number.isInteger(s.id) && Number.isInteger(s.masterPid)) return s as unknown as WorkerStage;
  return undefined;
}

/** Reads one line from `fd`, waiting at most `ms`; `undefined` when none comes. It reads no byte past the
 * newline: a line that follows is the stage of the process this one starts (see roles/detach.ts). */
function readLine(fd: number, ms: number, libc: Libc): string | undefined {
  const deadline = Date.now() + ms;
  for (;;) {
    const left = deadline - Date.now();
    if (left <= 0 || !libc.waitReadable(fd, left)) return undefined;
    const seen = libc.peek(fd, 65536);
    if (seen.length === 0) return undefined;
    const end = seen.indexOf(10);
    if (end >= 0) return new TextDecoder().decode(libc.read(fd, end + 1).subarray(0, end));
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1); // the parent writes whole lines: rare
  }
}

/**
 * Reads and removes the stage marker: the stage a daemonic parent handed over on fd 3 in a re-executed
 * daemon or worker, `undefined` in a launcher. A marker without a valid stage behind it is dropped with one
 * warning on stderr, and the process goes on as if it had not been set.
 */
export function takeStage(env?: Record<string, string | undefined>, libc: Libc = systemLibc): Stage | undefined {
  const marker = env ? env[STAGE_ENV] : host.env(STAGE_ENV);
  if (marker === undefined) return undefined;
  if (env) delete env[STAGE_ENV];
  else host.deleteEnv(STAGE_ENV);
  let stage: Stage | undefined;
  try {
    if (marker === String(STAGE_FD) && host.readLink(`/proc/self/fd/${STAGE_FD}`).startsWith("socket:")) {
      const line = readLine(STAGE_FD, STAGE_WAIT_MS, libc);
      if (line !== undefined) stage = validStage(JSON.parse(line));
    }
  } catch {
    // No fd 3, not a socket we can read, or not JSON: not handed over.
  }
  if (!stage) {
    console.error(`daemonic: ignoring ${STAGE_ENV} from the environment: no stage was handed over on fd ${STAGE_FD} (daemonic sets it only for the processes it starts): unset it`);
  }
  return stage;
}
