/**
 * The errors daemonic reports, each with the exit code the command line uses for it.
 *
 * @module
 */
import { BrandedError, MissingLibcError } from "../ffi/errors.ts";
import { RUNTIME } from "./_runtime.ts";

/**
 * Exit codes: LSB for `--status`, sysexits(3) for everything else, so scripts can tell failures apart.
 *
 * @example
 * ```ts
 * import { ExitCode } from "./errors.ts";
 * console.log(ExitCode.ALREADY_RUNNING); // 75: another daemon holds the pid file's lock
 * ```
 */
export const ExitCode = {
  OK: 0,
  /** `--status`: not running, but a pid file remains. */
  DEAD_PID_FILE: 1,
  /** `--status`: not running. */
  NOT_RUNNING: 3,
  /** `--status`: the state cannot be told (the pid file is unreadable). */
  UNKNOWN: 4,
  /** `--reload` and friends: the daemon is not running (LSB). */
  RELOAD_NOT_RUNNING: 7,
  /** A bad flag or value. */
  USAGE: 64,
  /** The build failed (the entry does not compile, or the runtime's compiler is missing a part). */
  BUILD_FAILED: 65,
  /** The entry script or the working directory does not exist. */
  NO_INPUT: 66,
  /** `--user` or `--group` names no user or group (EX_NOUSER). */
  NO_USER: 67,
  /** The entry failed during start-up (threw, exited, or never became ready). */
  START_FAILED: 69,
  /** Something inside daemonic failed. */
  SOFTWARE: 70,
  /** A system file daemonic needs is missing: a program it runs, libc or a function in it (EX_OSFILE). */
  OS_FILE: 72,
  /** The pid file or the log file cannot be created. */
  CANNOT_CREATE: 73,
  /** Another daemon holds the pid file's lock. */
  ALREADY_RUNNING: 75,
  /** Not permitted to signal the daemon. */
  NO_PERMISSION: 77,
} as const;

/** What went wrong, as a literal callers can switch on. */
export type DaemonErrorCode =
  | "USAGE"
  | "BUILD_FAILED"
  | "NO_INPUT"
  | "NO_USER"
  | "START_FAILED"
  | "OS_FILE"
  | "CANNOT_CREATE"
  | "ALREADY_RUNNING"
  | "NOT_RUNNING"
  | "NO_PERMISSION";

const EXIT_CODES: Record<DaemonErrorCode, number> = {
  USAGE: ExitCode.USAGE,
  BUILD_FAILED: ExitCode.BUILD_FAILED,
  NO_INPUT: ExitCode.NO_INPUT,
  NO_USER: ExitCode.NO_USER,
  START_FAILED: ExitCode.START_FAILED,
  OS_FILE: ExitCode.OS_FILE,
  CANNOT_CREATE: ExitCode.CANNOT_CREATE,
  ALREADY_RUNNING: ExitCode.ALREADY_RUNNING,
  NOT_RUNNING: ExitCode.RELOAD_NOT_RUNNING,
  NO_PERMISSION: ExitCode.NO_PERMISSION,
};

/**
 * A failure a caller is expected to handle. The message says what failed and how to fix it.
 *
 * @example Telling "already running" apart
 * ```ts
 * import { DaemonError } from "./errors.ts";
 * const err = new DaemonError("ALREADY_RUNNING", "Cannot start: already running as pid 42", { pid: 42 });
 * console.log(err.code, err.exitCode, err.pid); // ALREADY_RUNNING 75 42
 * ```
 */
export class DaemonError extends BrandedError {
  static override readonly brand = "DaemonError";
  /** The exit code the command line ends with for this error. */
  readonly exitCode: number;
  /** The daemon's pid, where one is known. */
  readonly pid?: number;
  constructor(readonly code: DaemonErrorCode, message: string, options: { pid?: number; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = "DaemonError";
    this.exitCode = EXIT_CODES[code];
    this.pid = options.pid;
  }
}

/**
 * A failure of a system call on a path the user gave (a node:fs error: it has `code` and `path` or `syscall`) as a
 * one-line {@linkcode DaemonError} (exit 73) naming the path, and a missing program or libc function (exit
 * 72, see {@linkcode missingSystemFile}), instead of an internal error with a stack. Anything else stays as
 * it is: an internal error.
 *
 * @example
 * ```ts
 * import { userPathError } from "./errors.ts";
 * import { SystemCallError } from "../ffi/errors.ts";
 * const err = userPathError(new SystemCallError("posix_spawn", 2, "No such file or directory", "/usr/bin/setsid"));
 * console.log(err?.exitCode); // 72
 * console.log(err?.message);
 * // Cannot run /usr/bin/setsid: posix_spawn /usr/bin/setsid: No such file or directory (ENOENT): this system
 * // lacks a program daemonic needs: install it
 * ```
 */
export function userPathError(err: unknown): DaemonError | undefined {
  if (err instanceof DaemonError) return err;
  const missing = missingSystemFile(err);
  if (missing) return missing;
  const e = err as { code?: unknown; path?: unknown; syscall?: unknown; message?: unknown } | null;
  if (
    typeof e?.code !== "string" || !/^E[A-Z]+$/.test(e.code) ||
    (typeof e.path !== "string" && typeof e.syscall !== "string")
  ) return undefined;
  const why = String(e.message).split("\n")[0];
  return new DaemonError(
    "CANNOT_CREATE",
    `Cannot use ${e.path ?? "a file"}: ${why}: check the paths given to --pid-file and --log-file`,
    { cause: err },
  );
}

/** A program that could not be started (posix_spawn, or node's spawn: not there, not executable), libc or a
 * function in it missing: one line naming it (exit 72). */
function missingSystemFile(err: unknown): DaemonError | undefined {
  if (err instanceof MissingLibcError) {
    return new DaemonError(
      "OS_FILE",
      `Cannot run here: ${err.message.split("\n")[0]}: daemonic needs Linux with glibc 2.17 or newer`,
      { cause: err },
    );
  }
  const e = err as { code?: unknown; path?: unknown; syscall?: unknown; message?: unknown } | null;
  const spawned = typeof e?.syscall === "string" && /^(posix_spawn|spawn)/.test(e.syscall);
  if (!spawned || !["ENOENT", "EACCES", "ENOEXEC", "ENOTDIR", "ELOOP"].includes(String(e!.code))) return undefined;
  const program = typeof e!.path === "string" ? e!.path : String(e!.syscall).split(" ").pop();
  return new DaemonError(
    "OS_FILE",
    `Cannot run ${program}: ${
      String(e!.message).split("\n")[0]
    }: this system lacks a program daemonic needs: install it`,
    { cause: err },
  );
}

/** What is wrong with `path` given to `flag` when open() failed with errno `code`, with the fix. */
export function pathProblem(flag: string, path: string, code: string, fallback: string): string {
  const dir = path.slice(0, path.lastIndexOf("/")) || "/";
  const why: Record<string, string> = {
    ENOENT: RUNTIME.sys.exists(dir)
      ? `${dir} does not take new files`
      : `directory ${dir} does not exist: create it or pick another ${flag}`,
    ENOTDIR: `a parent of ${path} is not a directory`,
    ELOOP: `${path} goes through a symbolic link loop`,
    EISDIR: `${path} is a directory: give a file path`,
    EACCES: `${path} or its directory is not writable`,
    EROFS: `${dir} is on a read-only file system`,
    ENXIO: `${path} is a socket or a device without a reader`,
  };
  const text = why[code] ?? fallback;
  return text.includes(flag) ? text : `${text}: pick another ${flag}`;
}

/**
 * The text an uncaught error is reported with in the log: its stack where it has one.
 *
 * @example
 * ```ts
 * import { describe } from "./errors.ts";
 * console.log(describe("plain").length, describe(new Error("boom")).startsWith("Error: boom")); // 5 true
 * ```
 */
export function describe(err: unknown): string {
  return err instanceof Error ? err.stack ?? String(err) : String(err);
}
