/**
 * Files daemonic creates beside its pid file or in its runtime directory, made safe against another local
 * user: the runtime directory is private and checked like OpenSSH checks its own, and every file is opened
 * without following a symlink and without blocking on a FIFO.
 *
 * @module
 */
import { type FileInfo, host } from "../ffi/_host.ts";
import { type Libc, libc as systemLibc, O, SystemCallError } from "../ffi/mod.ts";
import { DaemonError } from "./errors.ts";

/** Our uid (0 where the runtime cannot tell). */
export const myUid = (): number => host.uid();

/** What a non-regular file is, for messages: "a FIFO", "a directory", … */
export function kindOf(stats: FileInfo): string {
  if (stats.isSymlink) return "a symbolic link";
  if (stats.isDirectory) return "a directory";
  if (stats.isFifo) return "a FIFO";
  if (stats.isCharDevice) return "a character device";
  if (stats.isBlockDevice) return "a block device";
  if (stats.isSocket) return "a socket";
  return "a regular file";
}

/**
 * The per-user private directory for default pid files and the registry: `/run/daemonic` as root, else
 * `$XDG_RUNTIME_DIR/daemonic` when that is a directory of ours, else `/tmp/daemonic-UID`. Not created here.
 * A root without /run (a distroless image, a bare chroot) uses the same places as any user.
 */
export function runtimeDir(env: Record<string, string | undefined> = host.environ, uid = myUid()): string {
  if (uid === 0 && host.exists("/run") && host.lstat("/run").isDirectory) return "/run/daemonic";
  const xdg = env.XDG_RUNTIME_DIR;
  try {
    const stats = xdg ? host.lstat(xdg) : undefined;
    if (stats?.isDirectory && stats.uid === uid) return `${xdg}/daemonic`;
  } catch {
    // Not there: fall back.
  }
  return `/tmp/daemonic-${uid}`;
}

/** Creates `dir` (0700) when missing, then checks it: a real directory of ours that no one else may write. */
export function ensurePrivateDir(dir: string): void {
  try {
    host.makeDir(dir, { mode: 0o700 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") {
      throw new DaemonError(
        "CANNOT_CREATE",
        `Cannot create directory ${dir}: ${(err as Error).message}: pick another --pid-file`,
        { cause: err },
      );
    }
  }
  checkPrivateDir(dir);
}

/** Throws a one-line CANNOT_CREATE error when `dir` is not a private directory of ours; absent is fine. */
export function checkPrivateDir(dir: string): void {
  let stats: FileInfo;
  try {
    stats = host.lstat(dir);
  } catch {
    return;
  }
  const problem = !stats.isDirectory
    ? `is ${kindOf(stats)}, not a directory`
    : stats.uid !== myUid()
    ? `belongs to uid ${stats.uid}, not to you (uid ${myUid()})`
    : stats.mode & 0o022
    ? `is writable by others (mode ${(stats.mode & 0o777).toString(8)})`
    : null;
  if (problem) {
    throw new DaemonError(
      "CANNOT_CREATE",
      `Unsafe directory ${dir}: it ${problem}: another user could tamper with your daemons; remove it, or pass ` +
        `--pid-file`,
    );
  }
}

/** The inode an open fd refers to (through /proc, which works on both runtimes for a libc fd). */
export function statFd(fd: number): FileInfo {
  return host.stat(`/proc/self/fd/${fd}`);
}

/**
 * Writes `text` to the sidecar file `path`: never through a symlink, never into a FIFO, device or a file
 * of another user (a hard link to a victim's file), created with `mode`.
 */
export function writeSidecar(path: string, text: string, mode = 0o600, libc: Libc = systemLibc): void {
  const refuse = (why: string) =>
    new DaemonError("CANNOT_CREATE", `Cannot write ${path}: it ${why}: remove it, or pick another --pid-file`);
  let fd: number;
  try {
    fd = libc.open(path, O.WRONLY | O.CREAT | O.NOFOLLOW | O.NONBLOCK | O.NOCTTY, mode);
  } catch (err) {
    if (err instanceof SystemCallError && err.code === "ELOOP") throw refuse("is a symbolic link");
    if (err instanceof SystemCallError && err.code === "ENXIO") throw refuse("is a FIFO or a socket");
    throw new DaemonError("CANNOT_CREATE", `Cannot write ${path}: ${(err as Error).message}`, { cause: err });
  }
  try {
    const stats = statFd(fd);
    if (!stats.isFile) throw refuse(`is ${kindOf(stats)}`);
    if (stats.uid !== myUid() || stats.nlink !== 1) throw refuse("is not a file of yours alone");
    libc.truncate(fd, 0);
    libc.write(fd, new TextEncoder().encode(text));
  } finally {
    libc.close(fd);
  }
}
