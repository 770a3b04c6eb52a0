/**
 * Log rotation, both ends: the daemon's reopen of its log file after logrotate moved it (`create`), or its
 * hold while logrotate copies and truncates it (`copytruncate` with `--hold-logs`); and the controller's
 * side of `--hold-logs` and `--reopen-logs`.
 *
 * @module
 */
import { host, parentDir } from "../../ffi/_host.ts";
import { type Libc, libc as systemLibc, O, SystemCallError } from "../../ffi/mod.ts";
import { DaemonError } from "../errors.ts";
import { writeSidecar } from "../safe_file.ts";
import { runnerLog } from "./lines.ts";

/**
 * Opens `path` again (O_WRONLY|O_APPEND|O_CREAT) and puts it on fds 1 and 2, so after logrotate moved the
 * file away (`create`) the next line goes to the new file. Nothing is lost: every write before the dup2
 * lands in the old file, every write after it in the new one. Returns whether it worked; when it cannot,
 * it says why in the old log, which stays in use.
 *
 * While `--hold-logs` has left its {@linkcode holdMarker}, it holds instead: lines go to a file of this
 * process's own until the next call, which writes them to the log first (copytruncate without a loss).
 *
 * @example
 * ```ts ignore
 * // ignore: it moves this process's stdout and stderr onto the log file
 * import { reopenLogs } from "./rotate.ts";
 * process.on("SIGURG", () => reopenLogs("/var/log/app.log"));
 * ```
 */
export function reopenLogs(path: string, libc: Libc = systemLibc): boolean {
  if (host.exists(holdMarker(path))) return holdLines(path, libc);
  let fd: number;
  try {
    fd = libc.open(path, O.WRONLY | O.APPEND | O.CREAT | O.NOCTTY, 0o666); // mode: the daemon's --umask
  } catch (err) {
    const why = err instanceof SystemCallError && err.code === "ENOENT"
      ? `directory ${parentDir(path)} does not exist`
      : (err as Error).message;
    runnerLog(
      `Cannot reopen log file ${path}: ${why}: still writing to the old file; fix it, then run --reopen-logs again`,
      "error",
    );
    return false;
  }
  const held = heldFile(path);
  const wasHolding = isOn(held);
  try {
    // Lines held while logrotate copied and truncated go first. This handler runs to its end before the
    // entry writes again, so none of its lines can slip between them.
    if (wasHolding) libc.write(fd, host.readBytes(held));
    libc.dup2(fd, 1);
    libc.dup2(fd, 2);
  } finally {
    libc.close(fd);
  }
  if (wasHolding) host.remove(held);
  runnerLog(`reopened log file ${path}${wasHolding ? " (and wrote the lines held during the rotation)" : ""}`);
  return true;
}

/** The marker `--hold-logs` leaves beside the log: while it exists, SIGURG means "hold", not "reopen". */
export function holdMarker(path: string): string {
  return `${path}.hold`;
}

/** Where a process holds its lines while the log is copied and truncated; it exists while it holds. */
export function heldFile(path: string, pid = host.pid()): string {
  return `${path}.held.${pid}`;
}

/** Whether stdout is the file at `path`. */
function isOn(path: string): boolean {
  try {
    return host.readLink("/proc/self/fd/1") === path;
  } catch {
    return false;
  }
}

/**
 * Moves fds 1 and 2 to this process's own {@linkcode heldFile} until the next reopen, so nothing is written
 * to the log between logrotate's copy and its truncate (`copytruncate` with `--hold-logs` in prerotate).
 */
function holdLines(path: string, libc: Libc): boolean {
  const held = heldFile(path);
  if (isOn(held)) return true;
  let fd: number;
  try {
    fd = libc.open(held, O.WRONLY | O.APPEND | O.CREAT | O.NOFOLLOW | O.NONBLOCK | O.NOCTTY, 0o600);
  } catch (err) {
    // E.g. a --user daemon in root's log directory: keep writing to the log, and --hold-logs fails.
    runnerLog(
      `Cannot hold log lines in ${held}: ${
        (err as Error).message
      }: the log's directory must be writable by the daemon's user`,
      "error",
    );
    return false;
  }
  try {
    libc.dup2(fd, 1);
    libc.dup2(fd, 2);
  } finally {
    libc.close(fd);
  }
  return true;
}

/**
 * The controller's `--hold-logs`: leaves the {@linkcode holdMarker}, signals the daemon (`signal()` returns its
 * pid), and returns once it and its workers (`workersOf(pid)`) hold their lines, so logrotate may copy and
 * truncate. When one does not answer within 5 s it lets them all go again and fails, and logrotate skips the
 * rotation (a failed prerotate does). Returns the pids that hold.
 */
export function askToHold(path: string, signal: () => number, workersOf: (pid: number) => number[]): number[] {
  writeSidecar(holdMarker(path), "");
  let pid: number;
  try {
    pid = signal();
  } catch (err) {
    host.remove(holdMarker(path));
    throw err;
  }
  const deadline = Date.now() + 5000;
  const holding = [pid, ...workersOf(pid)];
  let waiting = holding;
  while ((waiting = waiting.filter((p) => !host.exists(heldFile(path, p)) && host.exists(`/proc/${p}`))).length) {
    if (Date.now() > deadline) {
      host.remove(holdMarker(path));
      signal();
      throw new DaemonError(
        "START_FAILED",
        `Cannot hold logs: pid ${
          waiting.join(", ")
        } did not answer within 5 s: let logrotate skip this rotation and look at the log`,
      );
    }
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
  }
  return holding;
}

/**
 * The controller's `--reopen-logs`: ends a hold, signals the daemon (`signal()` returns its pid), and succeeds
 * once the daemon's stdout is the file now at `daemonLog` (the path it reopens): a reopen that failed (the
 * daemon logs why) leaves it on the old file, and logrotate must hear of it (exit 73). Unverifiable without
 * access to /proc/PID/fd. Returns the daemon's pid.
 */
export function askToReopen(
  name: string,
  path: string | undefined,
  daemonLog: string | undefined,
  signal: () => number,
): number {
  try {
    if (path) host.remove(holdMarker(path));
  } catch {
    // No marker can be there (its directory is gone): nothing held.
  }
  const pid = signal();
  if (!daemonLog) return pid;
  const deadline = Date.now() + 5000;
  for (;;) {
    try {
      const now = host.stat(daemonLog), out = host.stat(`/proc/${pid}/fd/1`);
      if (now.ino === out.ino && now.dev === out.dev) return pid;
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === "EACCES" || code === "EPERM" || !host.exists(`/proc/${pid}`)) return pid;
    }
    if (Date.now() > deadline) {
      throw new DaemonError(
        "CANNOT_CREATE",
        `Cannot reopen logs: ${name} (pid ${pid}) still writes to the old file, not ${daemonLog}: its log says why; ` +
          `fix the path, then run --reopen-logs again`,
      );
    }
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
  }
}
