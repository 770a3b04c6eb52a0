/**
 * The launcher: the process a user starts with `--daemon`. It cannot fork (the child of a fork() from JS dies
 * as soon as it returns into JS), so it re-executes its own command line in the background, holds the pid
 * file until the daemon takes it over, and waits on the channel until the daemon is ready.
 *
 *   launcher ── posix_spawn(SETSID, SETSIGDEF, empty mask, fds 0-3 only; fd 3 the channel) ──▶ /bin/sh
 *   /bin/sh (session leader) ── `cmd &` ──▶ daemon (in the new session, not its leader; reparented to init)
 *   launcher: exits 0 on READY; on ERROR, end of file, timeout or a stop signal it prints why and leaves
 *   nothing behind.
 *
 * /bin/sh is the second fork: it costs about a millisecond where a second runtime start would cost twenty.
 * Without a shell (distroless images), a re-execution of this command in the detach stage (detach.ts) is.
 *
 * @module
 */
import { host, parentDir } from "../../ffi/_host.ts";
import { type ChildFd, type Libc, libc as systemLibc, O, SystemCallError } from "../../ffi/mod.ts";
import { selfCommand } from "../_runtime.ts";
import { DaemonError, pathProblem } from "../errors.ts";
import { appendToLog } from "../log/lines.ts";
import { recordedLogPath, recordLogPath } from "../log/show.ts";
import { cannotCreate, holdPidFile, readPidFile, removeStalePidFile } from "../pidfile.ts";
import { findProgram } from "../programs.ts";
import { identityOf } from "../privileges.ts";
import { waitForReady } from "../channel.ts";
import { ensurePrivateDir, runtimeDir } from "../safe_file.ts";
import { type DaemonOptions, type DaemonStage, handOver, invalidSetting, STAGE_FD, withDefaults } from "../stage.ts";
import { checkStartInputs } from "../start_inputs.ts";
import { terminate } from "../terminate.ts";
import { mark } from "../trace.ts";

function openLog(path: string | undefined, umask: number, libc: Libc): number | { path: string; flags: number } {
  if (!path) return { path: "/dev/null", flags: O.WRONLY };
  // A FIFO would block the open (and the daemon's every write); a socket cannot be opened at all.
  const type = host.exists(path) ? host.stat(path) : undefined;
  if (type?.isFifo || type?.isSocket) {
    throw new DaemonError(
      "CANNOT_CREATE",
      `Cannot open log file ${path}: it is a ${type.isFifo ? "FIFO" : "socket"}: give a regular file to --log-file`,
    );
  }
  const callers = libc.umask(umask); // the log is the daemon's file: its --umask, not the caller's shell's
  try {
    return libc.open(path, O.WRONLY | O.APPEND | O.CREAT | O.NOCTTY, 0o666);
  } catch (err) {
    const problem = pathProblem(
      "--log-file",
      path,
      err instanceof SystemCallError ? err.code : "",
      (err as Error).message,
    );
    throw new DaemonError("CANNOT_CREATE", `Cannot open log file ${path}: ${problem}`, { cause: err });
  } finally {
    libc.umask(callers);
  }
}

function checkPidFileFree(pidFile: string, libc: Libc): void {
  if (parentDir(pidFile) === runtimeDir()) ensurePrivateDir(parentDir(pidFile));
  let state;
  try {
    state = readPidFile(pidFile, libc);
  } catch (err) {
    throw err instanceof SystemCallError ? cannotCreate(pidFile, err) : err;
  }
  if (state.state === "running") {
    const where = state.missing
      ? `its pid file ${pidFile} is missing, found in the registry`
      : `pid file ${pidFile} is locked`;
    throw new DaemonError(
      "ALREADY_RUNNING",
      `Cannot start: already running as pid ${state.pid} (${where}): stop it with --stop, or pick another --pid-file`,
      { pid: state.pid },
    );
  }
  const dir = parentDir(pidFile);
  if (!libc.accessible(dir, "write")) {
    throw new DaemonError(
      "CANNOT_CREATE",
      `Cannot create pid file: directory ${dir} ${
        host.exists(dir) ? "is not writable" : "does not exist"
      }: pick another --pid-file`,
    );
  }
}

/** Makes sure a daemon that failed to start is gone, and its pid file with it. One that reported its error
 * is exiting already; one that never became ready gets a chance to run its shutdown hooks before SIGKILL. */
function cleanUpFailedStart(pid: number | undefined, pidFile: string, libc: Libc): void {
  if (pid) {
    try {
      const pidfd = libc.pidfdOpen(pid);
      terminate(pidfd, pid, 2000, { waitFirstMs: 100 }, libc);
      libc.close(pidfd);
    } catch {
      // Already gone.
    }
  }
  removeStalePidFile(pidFile, libc);
}

/** Spawns /bin/sh — or, without one, this same command as the detach stage (roles/detach.ts) — which starts
 * the daemon with the channel on fd 3 and reports its pid there. Returns the launcher's end of it. */
function spawnDaemon(
  stage: DaemonStage,
  log: ChildFd,
  environment: Record<string, string | undefined>,
  libc: Libc = systemLibc,
): number {
  const sh = findProgram("/bin/sh");
  const { path, args } = stage.command;
  const { parentEnd, childEnd, env } = handOver(sh ? stage : [{ role: "detach", command: stage.command }, stage], libc);
  let second: number;
  try {
    second = libc.spawn({
      path: sh ?? path,
      // The daemon is the shell's (or the detach stage's) child, so not the session leader; that one reports its pid.
      argv: sh ? ["sh", "-c", `"$0" "$@" &\necho "PID $!" >&${STAGE_FD}`, path, ...args] : [path, ...args],
      env: { ...environment, ...env },
      fds: [{ path: "/dev/null", flags: O.RDONLY }, log, log, childEnd],
      setsid: true,
    });
  } catch (err) {
    libc.close(parentEnd);
    throw err;
  } finally {
    libc.close(childEnd);
  }
  libc.waitpid(second);
  return parentEnd;
}

/**
 * Starts this same command line again as a daemon and waits until it is ready. Returns the daemon's pid;
 * throws a {@linkcode DaemonError} (with the daemon's own error text) when it failed, having left no
 * process and no pid file behind. Until the daemon takes over, the launcher holds the pid file's lock, so a
 * `--stop` meanwhile stops the launcher, which cancels the start (as SIGINT, Ctrl-C, does).
 *
 * @example
 * ```ts ignore
 * // ignore: it starts a daemon (test/daemon.test.ts does, through the runner)
 * import { launch } from "./launcher.ts";
 * const pid = await launch({ pidFile: "/run/app.pid", logFile: "/var/log/app.log" });
 * console.log(pid);
 * ```
 */
export async function launch(
  options: DaemonOptions,
  libc: Libc = systemLibc,
  environment: Record<string, string | undefined> = host.environ,
): Promise<number> {
  const settings = withDefaults(options);
  const invalid = invalidSetting(settings as unknown as Record<string, unknown>);
  if (invalid) {
    throw new DaemonError(
      "USAGE",
      `Invalid ${invalid} ${
        JSON.stringify(settings[invalid as keyof typeof settings])
      }: not a value its option takes (see --help)`,
    );
  }
  checkStartInputs(settings); // 66 before anything
  identityOf(settings, libc); // 77 or 67 before anything
  mark("launcher: inputs and identity checked");
  checkPidFileFree(settings.pidFile, libc);
  mark("launcher: pid file checked");
  const recorded = recordedLogPath(settings.pidFile);
  const log = openLog(settings.logFile, settings.umask, libc);
  // Listening before the pid file is ours: a --stop from the moment it finds this process cancels the start.
  let stoppedBy: string | undefined;
  const stop = (signal: string) => () => void (stoppedBy ??= signal);
  const listeners = (["SIGTERM", "SIGINT", "SIGHUP"] as const).map((signal) => [signal, stop(signal)] as const);
  for (const [signal, listener] of listeners) host.onSignal(signal, listener);
  let lock: number | undefined;
  let readEnd: number;
  try {
    lock = holdPidFile(settings.pidFile, host.pid(), libc);
    readEnd = spawnDaemon({ ...settings, role: "daemon", command: selfCommand() }, log, environment, libc);
  } catch (err) {
    for (const [signal, listener] of listeners) host.offSignal(signal, listener);
    if (lock !== undefined) libc.close(lock);
    removeStalePidFile(settings.pidFile, libc);
    throw err;
  } finally {
    if (typeof log === "number") libc.close(log);
  }
  mark("launcher: daemon spawned (/bin/sh waited)");
  const release = () => {
    if (lock !== undefined) libc.close(lock); // the daemon's own locked file has replaced ours (LOCKED)
    lock = undefined;
  };
  const hint = settings.logFile ? ` (see ${settings.logFile})` : " (pass --log-file to see its output)";
  const { pid, error, reported } = await waitForReady(readEnd, settings.startTimeout * 1000, hint, libc, {
    onLocked: release,
    stoppedBy: () => stoppedBy,
  });
  mark("launcher: READY (or error) received");
  for (const [signal, listener] of listeners) host.offSignal(signal, listener);
  libc.close(readEnd); // a daemon still starting sees its launcher gone and gives up
  if (!error) return pid!;
  cleanUpFailedStart(pid, settings.pidFile, libc);
  release();
  recordLogPath(settings.pidFile, recorded); // a failed start leaves the log-path record as it found it
  // The daemon logs the failures it reports; one killed or timed out could not, so the launcher does.
  if (!reported && settings.logFile) appendToLog(settings.logFile, error.message, settings.logFormat);
  throw error;
}
