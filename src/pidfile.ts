/**
 * The pid file: created without following symlinks, holding the daemon's pid, write-locked with fcntl for
 * the daemon's lifetime. The lock, not the number inside, says whether the daemon runs and which pid it has:
 * the kernel reports the holder, so a recycled pid is never mistaken for the daemon.
 *
 * @module
 */
import { existsSync, readFileSync, renameSync, statSync, unlinkSync } from "node:fs";
import { dirname } from "node:path";
import process from "node:process";
import { type Libc, libc as systemLibc, O, SystemCallError } from "../ffi/mod.ts";
import { DaemonError } from "./errors.ts";

/** What a pid file says about its daemon. */
export type PidFileState =
  | { state: "running"; pid: number }
  | { state: "stale"; pid: number | null }
  | { state: "absent" };

/** The error for a pid file that cannot be created at `path`, with the fix. */
export function cannotCreate(path: string, err: SystemCallError): DaemonError {
  const dir = dirname(path);
  const why: Record<string, string> = {
    ELOOP: `${path} is a symbolic link: daemonic does not follow it; remove it or pick another --pid-file`,
    ENOENT: existsSync(dir) ? `${dir} does not take new files: pick another --pid-file` : `directory ${dir} does not exist: create it or pick another --pid-file`,
    EACCES: `directory ${dir} is not writable: pick a writable --pid-file`,
    EROFS: `${dir} is read-only: pick a writable --pid-file`,
    EISDIR: `${path} is a directory: give a file path to --pid-file`,
    ENOTDIR: `a parent of ${path} is not a directory: pick another --pid-file`,
    ENXIO: `${path} is a socket: pick another --pid-file`,
  };
  return new DaemonError("CANNOT_CREATE", `Cannot create pid file: ${why[err.code] ?? err.message}`, { cause: err });
}

/**
 * A held pid file. Create it with {@linkcode PidFile.acquire}; {@linkcode PidFile.release} removes it.
 *
 * @example
 * ```ts ignore
 * const pidFile = PidFile.acquire("/run/app.pid"); // throws DaemonError ALREADY_RUNNING when held
 * process.on("exit", () => pidFile.release());
 * ```
 */
export class PidFile {
  private constructor(private current: string, private readonly fd: number, private readonly libc: Libc) {}

  /** Where the file is now. */
  get path(): string {
    return this.current;
  }

  /** Moves the held file (the lock goes with it), e.g. to `.oldbin` while a new master starts. */
  rename(to: string): void {
    renameSync(this.current, to);
    this.current = to;
  }

  /** Opens (O_NOFOLLOW), locks and writes `pid` into `path`. A file left by a dead daemon is unlocked, so it
   * is taken over. Note: fcntl locks drop when the process closes any fd of the file, so the holder must
   * never open its own pid file again. */
  static acquire(path: string, pid = process.pid, libc: Libc = systemLibc): PidFile {
    let fd: number;
    try {
      fd = libc.open(path, O.RDWR | O.CREAT | O.NOFOLLOW | O.NOCTTY, 0o644);
    } catch (err) {
      throw err instanceof SystemCallError ? cannotCreate(path, err) : err;
    }
    if (!libc.tryLock(fd)) {
      const holder = libc.lockHolder(fd);
      libc.close(fd);
      throw new DaemonError(
        "ALREADY_RUNNING",
        `Cannot start: already running as pid ${holder} (pid file ${path} is locked): stop it with --stop, or pick another --pid-file`,
        { pid: holder ?? undefined },
      );
    }
    libc.truncate(fd, 0);
    libc.write(fd, new TextEncoder().encode(`${pid}\n`));
    return new PidFile(path, fd, libc);
  }

  /** Removes the file if it is still this one (not replaced by another daemon), then unlocks it. */
  release(): void {
    try {
      const mine = statSync(`/proc/self/fd/${this.fd}`), there = statSync(this.path);
      if (mine.ino === there.ino && mine.dev === there.dev) unlinkSync(this.path);
    } catch {
      // Already gone.
    }
    this.libc.close(this.fd);
  }
}

/**
 * Reads the state of the daemon behind `path`: running (the lock is held, by the pid the kernel reports),
 * stale (the file exists but nobody holds its lock), or absent.
 *
 * @example
 * ```ts ignore
 * const s = readPidFile("/run/app.pid");
 * if (s.state === "running") process.kill(s.pid, "SIGHUP");
 * ```
 */
export function readPidFile(path: string, libc: Libc = systemLibc): PidFileState {
  let fd: number;
  try {
    fd = libc.open(path, O.RDONLY | O.NOFOLLOW | O.NOCTTY);
  } catch (err) {
    if (err instanceof SystemCallError && err.code === "ENOENT") return { state: "absent" };
    throw err;
  }
  try {
    const holder = libc.lockHolder(fd);
    if (holder !== null) return { state: "running", pid: holder };
    const pid = parseInt(readFileSync(path, "utf8"), 10);
    return { state: "stale", pid: Number.isInteger(pid) && pid > 0 ? pid : null };
  } finally {
    libc.close(fd);
  }
}

/** Removes a pid file nobody holds; returns whether one was removed. */
export function removeStalePidFile(path: string, libc: Libc = systemLibc): boolean {
  if (readPidFile(path, libc).state !== "stale") return false;
  try {
    unlinkSync(path);
    return true;
  } catch {
    return false;
  }
}
