/**
 * The stage: what a daemonic parent (launcher, master, old master) hands the process it re-executes. It
 * goes through fd 3, a socket pair whose other end the parent holds: the parent writes the stage as one
 * JSON line before it spawns, the environment only says where to read it (`DAEMONIC_STAGE=3`). The same
 * socket then carries the child's reports back (`READY`, `ERROR`, heartbeats). A marker inherited from a
 * caller's environment, without a socket and a valid stage behind it, is dropped with one warning.
 *
 * @module
 */
import { host, resolvePath } from "../ffi/_host.ts";
import { type Libc, libc as systemLibc } from "../ffi/mod.ts";
import { DEFAULTS, OPTIONS, validSetting } from "./cli/option_table.ts";
import type { DaemonSettings } from "./settings.ts";

export { type DaemonSettings, DEFAULTS } from "./settings.ts";

/** Settings of a daemon started by the library's `launch()` or `daemonize()`: only `pidFile` is required. */
export type DaemonOptions = Partial<DaemonSettings> & { pidFile: string };

/**
 * `options` with every default the command line has, its paths made absolute (against the working directory).
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
  for (const key of ["logFile", "user", "group", "workersAuto", "maxMemoryShare", "metrics"] as const) {
    if (options[key] !== undefined) settings[key] = options[key];
  }
  const absolute = (path: string) => resolvePath(host.cwd(), path);
  return {
    ...settings,
    pidFile: absolute(settings.pidFile),
    chdir: absolute(settings.chdir),
    envFiles: settings.envFiles.map(absolute),
    ...settings.logFile ? { logFile: absolute(settings.logFile) } : {},
  };
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
/** The fd of the channel in the child: the stage comes in on it, the reports go out on it. */
export const STAGE_FD = 3;
/** How long the child waits for the stage line; the parent writes it before it spawns, so it is there. */
const STAGE_WAIT_MS = 1000;

/** A socket pair for a child: `parentEnd` keeps the parent's side; `childEnd` goes to the child's fd 3 and
 * must be closed by the parent once spawned. The stages are already written into it, one line each, each
 * taken by the process it is for; `env` marks the child. */
export function handOver(
  stages: Stage | Stage[],
  libc: Libc = systemLibc,
): { parentEnd: number; childEnd: number; env: Record<string, string> } {
  const [parentEnd, childEnd] = libc.socketPair();
  const lines = [stages].flat().map((stage) => JSON.stringify(stage) + "\n").join("");
  libc.write(parentEnd, new TextEncoder().encode(lines));
  return { parentEnd, childEnd, env: { [STAGE_ENV]: String(STAGE_FD) } };
}

const isString = (v: unknown) => typeof v === "string";
const isStrings = (v: unknown) => Array.isArray(v) && v.every(isString);

/** The first daemon setting in `s` that is missing or not a value its option could have set (option_table.ts). */
export function invalidSetting(s: Record<string, unknown>): string | undefined {
  s.envFiles ??= []; // from an older master (USR2 upgrade) that had no --env-file
  s.logTimestamps ??= false;
  s.maxMemory ??= 0;
  if (!isStrings(s.args)) return "args";
  // how auto and % were decided
  for (const key of ["workersAuto", "maxMemoryShare"]) if (s[key] !== undefined && !isString(s[key])) return key;
  const bad = OPTIONS.filter((row) => row.setting).find((row) => {
    const value = s[row.key];
    if (row.negates) return typeof value !== "boolean";
    if (value === undefined) return row.key in DEFAULTS || row.key === "pidFile" || row.key === "name";
    return value !== DEFAULTS[row.key as keyof typeof DEFAULTS] && !validSetting(row, value);
  });
  return bad?.key;
}

/** The stage in `value` when it has every field its role needs, each a value its option allows, else `undefined`. */
export function validStage(value: unknown): Stage | undefined {
  const s = value as Record<string, unknown> | null;
  if (typeof s !== "object" || s === null) return undefined;
  const c = s.command as Record<string, unknown> | null;
  const command = typeof c === "object" && c !== null && isString(c.path) && isStrings(c.args) && isString(c.cwd);
  if (command && s.role === "detach") return s as unknown as DetachStage;
  const common = command && invalidSetting(s) === undefined;
  if (common && s.role === "daemon") return s as unknown as DaemonStage;
  if (common && s.role === "worker" && Number.isInteger(s.id) && Number.isInteger(s.masterPid)) {
    return s as unknown as WorkerStage;
  }
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
    console.error(
      `daemonic: ignoring ${STAGE_ENV} from the environment: no stage was handed over on fd ${STAGE_FD} (daemonic ` +
        `sets it only for the processes it starts): unset it`,
    );
  }
  return stage;
}
