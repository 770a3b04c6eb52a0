/**
 * The pid file: created without following symlinks, holding the daemon's pid, write-locked with fcntl for
 * the daemon's lifetime. The lock, not the number inside, says whether the daemon runs and which pid it has:
 * the kernel reports the holder, so a recycled pid is never mistaken for the daemon. Only a write lock
 * held by a process of the file's owner (or on a file only root may write: see `holdsFor`) counts (anyone
 * who can read a file can take a read lock), and
 * only a file of ours or root's is trusted. daemonic never truncates or removes a path that is not a
 * regular file holding only a pid; it refuses FIFOs, devices, directories and sockets without opening them.
 *
 * @module
 */
import { baseName, type FileInfo, host, parentDir } from "../ffi/_host.ts";
import { type Libc, libc as systemLibc, O, SystemCallError } from "../ffi/mod.ts";
import { DaemonError } from "./errors.ts";
import { findRegistered, holdsFor, Registration, type StartRecord } from "./registry.ts";
import { checkPrivateDir, ensurePrivateDir, kindOf, myUid, runtimeDir, statFd } from "./safe_file.ts";

/** What a pid file says about its daemon; `missing` when the pid file is gone and the registry found it. */
export type PidFileState =
  | { state: "running"; pid: number; missing?: boolean }
  | { state: "stale"; pid: number | null }
  | { state: "absent" };

/** The error for a pid file that cannot be created at `path`, with the fix. */
export function cannotCreate(path: string, err: SystemCallError): DaemonError {
  const dir = parentDir(path);
  const why: Record<string, string> = {
    ELOOP: `${path} is a symbolic link: daemonic does not follow it; remove it or pick another --pid-file`,
    ENOENT: host.exists(dir)
      ? `${dir} does not take new files: pick another --pid-file`
      : `directory ${dir} does not exist: create it or pick another --pid-file`,
    EACCES: `directory ${dir} is not writable: pick a writable --pid-file`,
    EROFS: `${dir} is read-only: pick a writable --pid-file`,
    EISDIR: `${path} is a directory: give a file path to --pid-file`,
    ENOTDIR: `a parent of ${path} is not a directory: pick another --pid-file`,
    ENXIO: `${path} is a socket: pick another --pid-file`,
  };
  return new DaemonError("CANNOT_CREATE", `Cannot create pid file: ${why[err.code] ?? err.message}`, { cause: err });
}

function notPidFile(path: string, why: string): DaemonError {
  return new DaemonError(
    "CANNOT_CREATE",
    `${path} is not a pid file: ${why}; daemonic leaves it alone: remove it yourself or pick another --pid-file`,
  );
}

/** An existing pid file, open read-only: its inode, the pid inside, and whether its daemon holds it. */
interface Inspected {
  stats: FileInfo;
  pid: number | null;
  holder: number | null;
}

/** Opens `path` without following a symlink or blocking, and checks it is a pid file we may trust. */
function inspect(path: string, libc: Libc, tries = 3): Inspected | null {
  if (parentDir(path) === runtimeDir()) checkPrivateDir(parentDir(path));
  let before: FileInfo;
  try {
    before = host.lstat(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") return null;
    throw err;
  }
  if (!before.isFile) throw notPidFile(path, `it is ${kindOf(before)}`);
  const fd = libc.open(path, O.RDONLY | O.NOFOLLOW | O.NONBLOCK | O.NOCTTY);
  try {
    const stats = statFd(fd);
    // Replaced by a rename (a daemon taking its pid file over from the launcher, an upgrade): look again.
    if (stats.isFile && stats.ino !== before.ino && tries > 0) return inspect(path, libc, tries - 1);
    if (!stats.isFile || stats.ino !== before.ino) throw notPidFile(path, "it changed while daemonic looked at it");
    // Root may look after any user's daemon (the holder must still run as the file's owner); a user trusts
    // only their own files and root's.
    if (myUid() !== 0 && stats.uid !== myUid() && stats.uid !== 0) {
      throw notPidFile(path, `it belongs to uid ${stats.uid}, neither you nor root, so its lock proves nothing`);
    }
    const text = stats.size > 24 ? "-" : new TextDecoder().decode(libc.read(fd, 32));
    if (!/^(\d+\n?)?$/.test(text)) throw notPidFile(path, `it holds something other than a pid (${stats.size} bytes)`);
    const owner = libc.lockOwner(fd);
    const holder = owner?.type === "write" && holdsFor(owner.pid, stats) ? owner.pid : null;
    return { stats, pid: text ? Number.parseInt(text, 10) || null : null, holder };
  } finally {
    libc.close(fd);
  }
}

/** Unlinks `path` if it still is the inode `stats` describes. */
function unlinkIfSame(path: string, stats: FileInfo): boolean {
  try {
    const now = host.lstat(path);
    return now.ino === stats.ino && now.dev === stats.dev && (host.unlink(path), true);
  } catch {
    return false;
  }
}

function alreadyRunning(path: string, pid: number, missing = false): DaemonError {
  const where = missing ? `its pid file ${path} is missing, found in the registry` : `pid file ${path} is locked`;
  return new DaemonError(
    "ALREADY_RUNNING",
    `Cannot start: already running as pid ${pid} (${where}): stop it with --stop, or pick another --pid-file`,
    { pid },
  );
}

/** Opens `file` read-write, created 0644, never through a symlink (plus `flags`); a failure is the one-line
 * CANNOT_CREATE error for the pid file at `path`. */
function openForWriting(file: string, flags: number, path: string, libc: Libc): number {
  try {
    return libc.open(file, O.RDWR | O.CREAT | O.NOFOLLOW | O.NOCTTY | flags, 0o644);
  } catch (err) {
    throw err instanceof SystemCallError ? cannotCreate(path, err) : err;
  }
}

/** Creates a locked pid file holding `pid` at `path`: written and locked under a temporary name, then
 * linked into place (`replace`: renamed over what is there), so no one ever sees it empty or unlocked; without
 * `replace` an existing file is never overwritten (`null`). */
function create(path: string, pid: number, libc: Libc, replace = false): number | null {
  const temporary = `${path}.${pid}.new`;
  const fd = openForWriting(temporary, O.EXCL, path, libc);
  try {
    libc.tryLock(fd);
    libc.write(fd, new TextEncoder().encode(`${pid}\n`));
    (replace ? host.rename : host.link)(temporary, path);
    return fd;
  } catch (err) {
    libc.close(fd);
    if ((err as NodeJS.ErrnoException).code === "EEXIST") return null;
    throw err;
  } finally {
    host.remove(temporary); // renamed away already when it replaced the file
  }
}

/** Removes the held pid file at `path` if it still is the one open as `fd`, and closes `fd` (unlocking it). */
function dropFile(path: string, fd: number, libc: Libc): void {
  try {
    unlinkIfSame(path, statFd(fd));
  } finally {
    libc.close(fd);
  }
}

/**
 * A held pid file. Create it with {@linkcode PidFile.acquire}; {@linkcode PidFile.release} removes it.
 *
 * @example
 * ```ts
 * import { PidFile } from "./pidfile.ts";
 * import { mkdtempSync, rmSync } from "node:fs";
 * const dir = mkdtempSync("/tmp/daemonic-doc-");
 * const pidFile = PidFile.acquire(`${dir}/app.pid`); // ALREADY_RUNNING when held
 * pidFile.release();
 * rmSync(dir, { recursive: true });
 * ```
 */
export class PidFile {
  private constructor(
    private current: string,
    private readonly fd: number,
    private readonly registration: Registration,
    private readonly libc: Libc,
  ) {}

  /** Where the file is now. */
  get path(): string {
    return this.current;
  }

  /** Moves the held file (the lock goes with it), e.g. to `.oldbin` while a new master starts. */
  rename(to: string): void {
    host.rename(this.current, to);
    this.current = to;
    this.registration.move(to);
  }

  /** Creates, locks and writes `pid` into `path` (see {@linkcode holdPidFile}), and registers the daemon
   * (see registry.ts). Note: fcntl locks drop when the process closes any fd of the file, so the holder
   * must never open its own pid file again. */
  static acquire(
    path: string,
    pid = host.pid(),
    libc: Libc = systemLibc,
    name = baseName(path, ".pid"),
    start: StartRecord = {},
  ): PidFile {
    return PidFile.registered(path, holdPidFile(path, pid, libc), pid, name, libc, start);
  }

  /** Takes over the pid file a launcher holds for this daemon: a new file holding `pid`, locked before it is
   * renamed over the launcher's, so the path names a locked pid file at every moment of the hand-over (a
   * `--stop` then always finds someone to stop); then registers the daemon. The launcher lets go of its
   * lock, on the old file, once told. */
  static takeOver(
    path: string,
    pid = host.pid(),
    libc: Libc = systemLibc,
    name = baseName(path, ".pid"),
    start: StartRecord = {},
  ): PidFile {
    if (host.exists(path) && !host.lstat(path).isFile) throw notPidFile(path, `it is ${kindOf(host.lstat(path))}`);
    return PidFile.registered(path, create(path, pid, libc, true)!, pid, name, libc, start);
  }

  private static registered(
    path: string,
    fd: number,
    pid: number,
    name: string,
    libc: Libc,
    start: StartRecord = {},
  ): PidFile {
    try {
      return new PidFile(path, fd, Registration.claim(path, name, pid, libc, start), libc);
    } catch (err) {
      dropFile(path, fd, libc);
      throw err;
    }
  }

  /** Removes the file if it is still this one (not replaced by another daemon), then unlocks it. */
  release(): void {
    this.registration.remove();
    dropFile(this.path, this.fd, this.libc);
  }
}

/**
 * Reads the state of the daemon behind `path`: running (the lock is held, by the pid the kernel reports),
 * stale (the file exists but nobody holds its lock), or absent. When the file is gone but the registry
 * knows a daemon for `path`, that one is running with `missing: true`. Throws a DaemonError (exit 73)
 * when `path` is not a pid file daemonic may trust.
 *
 * @example
 * ```ts
 * import { readPidFile } from "./pidfile.ts";
 * const s = readPidFile("/nonexistent/app.pid");
 * if (s.state === "running") process.kill(s.pid, "SIGHUP");
 * console.log(s.state); // absent
 * ```
 */
export function readPidFile(path: string, libc: Libc = systemLibc): PidFileState {
  const found = inspect(path, libc);
  if (found?.holder) return { state: "running", pid: found.holder };
  const registered = findRegistered(path, libc);
  if (registered) return { state: "running", pid: registered.pid, missing: true };
  const upgrading = found ? null : upgradingHolder(path, libc);
  if (upgrading) return { state: "running", pid: upgrading };
  return found ? { state: "stale", pid: found.pid } : { state: "absent" };
}

/** The master holding `PATH.oldbin` while the new master of a USR2 upgrade starts (upgrade.ts): until the new
 * one takes `path`, that master is the daemon, so `--status` must not say "not running" nor a start begin. */
function upgradingHolder(path: string, libc: Libc): number | null {
  try {
    return inspect(`${path}.oldbin`, libc)?.holder ?? null;
  } catch {
    return null; // not a pid file of ours: nothing proves an upgrade
  }
}

/** Removes a pid file nobody holds, only a regular file holding only a pid; returns whether one was removed. */
export function removeStalePidFile(path: string, libc: Libc = systemLibc): boolean {
  try {
    const found = inspect(path, libc);
    return found !== null && found.holder === null && unlinkIfSame(path, found.stats);
  } catch {
    return false;
  }
}

/**
 * Creates a new pid file at `path` holding `pid`, write-locked on the returned descriptor, which must stay
 * open as long as the lock is wanted: the launcher holds the pid file this way while its daemon boots (the
 * daemon then {@linkcode PidFile.takeOver}s it). A stale pid file (nobody write-locks it) is replaced by a new
 * inode, so a read lock someone keeps on it is harmless. Throws ALREADY_RUNNING when a daemon holds it.
 */
export function holdPidFile(path: string, pid: number, libc: Libc = systemLibc): number {
  if (parentDir(path) === runtimeDir()) ensurePrivateDir(parentDir(path));
  for (let attempt = 0; attempt < 5; attempt++) {
    const found = inspect(path, libc);
    if (found?.holder) throw alreadyRunning(path, found.holder);
    const registered = findRegistered(path, libc);
    if (registered) throw alreadyRunning(path, registered.pid, true);
    const upgrading = found ? null : upgradingHolder(path, libc);
    if (upgrading) throw alreadyRunning(path, upgrading);
    if (found) unlinkIfSame(path, found.stats);
    const fd = create(path, pid, libc);
    if (fd !== null) return fd;
    // another daemon linked its file first: look again
  }
  throw new DaemonError(
    "ALREADY_RUNNING",
    `Cannot start: the pid file ${path} keeps changing: another daemon is starting with it`,
  );
}
