/**
 * The daemon dance, as fork-exec: the launcher re-executes its own command line in the background
 * (fork() from JS is impossible: the child dies as soon as it returns into JS), and the re-executed process
 * finishes the job through libc before the entry runs.
 *
 *   launcher ── posix_spawn(SETSID, SETSIGDEF, empty mask, fds 0-3 only; fd 3 the stage socket) ──▶ /bin/sh (session leader)
 *   /bin/sh ── `cmd &` ──▶ daemon (in the new session, not its leader; reparented to init once sh exits)
 *   daemon: umask, chdir, lock + write the pid file, run the entry, report READY on the stage socket (fd 3)
 *   launcher: exits 0 on READY; on ERROR, end of file or timeout it prints why and leaves nothing behind.
 *
 * /bin/sh is the second fork: it costs about a millisecond where a second runtime start would cost twenty.
 *
 * @module
 */
import { accessSync, constants, existsSync, statSync } from "node:fs";
import { dirname } from "node:path";
import process from "node:process";
import { type Libc, libc as systemLibc, O, SystemCallError } from "../ffi/mod.ts";
import { ignoreInspectorSignal, selfCommand } from "./_runtime.ts";
import { DaemonError, ExitCode, pathProblem } from "./errors.ts";
import { cannotCreate, holdPidFile, PidFile, readPidFile, removeStalePidFile } from "./pidfile.ts";
import { appendToLog, runnerLog } from "./log/setup.ts";
import { configureLogging, type LogFormat, type LogLevel } from "./log/setup.ts";
import { recordedLogPath, recordLogPath } from "./log/show.ts";
import { ensurePrivateDir, runtimeDir } from "./safe_file.ts";
import { type Notifier, systemdNotifier } from "./notify.ts";
import { failWhenIdle, ReadyReporter, waitForReady, watchReadiness } from "./readiness.ts";
import { handleSignals, SIG, stopSignal } from "./signals.ts";
import { spawnDaemon, STAGE_FD, takeStage } from "./stage.ts";
import type { WorkerStage } from "./worker.ts";

/** Settings of a daemon. */
export interface DaemonOptions {
  /** Absolute pid file path. */
  pidFile: string;
  /** Absolute log file path for stdout and stderr; `undefined` for /dev/null. Reopened on SIGURG. */
  logFile?: string;
  /** Lowest level of `getLogger()` records and the runner's lines (default `info`). */
  logLevel?: LogLevel;
  /** `text` (default) or `json` (JSON Lines). */
  logFormat?: LogFormat;
  /** Working directory (default `/`). */
  chdir?: string;
  /** umask (default 0o022). */
  umask?: number;
  /** Seconds to wait for readiness (default 60). */
  startTimeout?: number;
  /** Readiness mode (default `auto`). */
  ready?: "auto" | "manual";
  /** Arguments for the entry, carried to the re-executed daemon. */
  args?: string[];
  /** Pre-forked workers (0: the entry runs in the daemon). */
  workers?: number;
  /** Seconds without a worker heartbeat before it is killed. */
  workerTimeout?: number;
  /** Seconds a graceful stop may take. */
  timeout?: number;
  /** The daemon's name (process titles). */
  name?: string;
}

/** What the launcher hands the re-executed daemon, on the stage socket (see stage.ts). */
export interface DaemonStage extends DaemonOptions {
  role: "daemon";
  readyFd: number;
  /** The command as the user started it, to start workers and upgrades with. */
  command: { path: string; args: string[]; cwd: string };
}

/** The stage socket's fd in the daemon: the stage comes in on it, `PID n`, `READY` or `ERROR` go out. */
export const READY_FD = STAGE_FD;
export { takeStage };

function openLog(path: string | undefined, umask: number, libc: Libc): number | { path: string; flags: number } {
  if (!path) return { path: "/dev/null", flags: O.WRONLY };
  // A FIFO would block the open (and the daemon's every write); a socket cannot be opened at all.
  const type = existsSync(path) ? statSync(path) : undefined;
  if (type?.isFIFO() || type?.isSocket()) {
    throw new DaemonError("CANNOT_CREATE", `Cannot open log file ${path}: it is a ${type.isFIFO() ? "FIFO" : "socket"}: give a regular file to --log-file`);
  }
  const callers = libc.umask(umask); // the log is the daemon's file: its --umask, not the caller's shell's
  try {
    return libc.open(path, O.WRONLY | O.APPEND | O.CREAT | O.NOCTTY, 0o666);
  } catch (err) {
    const problem = pathProblem("--log-file", path, err instanceof SystemCallError ? err.code : "", (err as Error).message);
    throw new DaemonError("CANNOT_CREATE", `Cannot open log file ${path}: ${problem}`, { cause: err });
  } finally {
    libc.umask(callers);
  }
}

function checkPidFileFree(pidFile: string, libc: Libc): void {
  if (dirname(pidFile) === runtimeDir()) ensurePrivateDir(dirname(pidFile));
  let state;
  try {
    state = readPidFile(pidFile, libc);
  } catch (err) {
    throw err instanceof SystemCallError ? cannotCreate(pidFile, err) : err;
  }
  if (state.state === "running") {
    const where = state.missing ? `its pid file ${pidFile} is missing, found in the registry` : `pid file ${pidFile} is locked`;
    throw new DaemonError("ALREADY_RUNNING", `Cannot start: already running as pid ${state.pid} (${where}): stop it with --stop, or pick another --pid-file`, { pid: state.pid });
  }
  try {
    accessSync(dirname(pidFile), constants.W_OK);
  } catch {
    const dir = dirname(pidFile);
    throw new DaemonError("CANNOT_CREATE", `Cannot create pid file: directory ${dir} ${existsSync(dir) ? "is not writable" : "does not exist"}: pick another --pid-file`);
  }
}

/** Makes sure a daemon that failed to start is gone, and its pid file with it. */
export function cleanUpFailedStart(pid: number | undefined, pidFile: string, libc: Libc): void {
  if (pid) {
    try {
      // One that reported its error is exiting already; one that never became ready gets a chance to run
      // its shutdown hooks before SIGKILL.
      const pidfd = libc.pidfdOpen(pid);
      if (!libc.waitReadable(pidfd, 100)) {
        libc.pidfdSignal(pidfd, SIG.TERM);
        if (!libc.waitReadable(pidfd, 2000)) {
          libc.pidfdSignal(pidfd, SIG.KILL);
          libc.waitReadable(pidfd, 2000);
        }
      }
      libc.close(pidfd);
    } catch {
      // Already gone.
    }
  }
  removeStalePidFile(pidFile, libc);
}

/**
 * Starts this same command line again as a daemon and waits until it is ready. Returns the daemon's pid;
 * throws a {@linkcode DaemonError} (with the daemon's own error text) when it failed, having left no
 * process and no pid file behind. Until the daemon takes over, the launcher holds the pid file's lock, so a
 * `--stop` meanwhile stops the launcher, which cancels the start (as SIGINT, Ctrl-C, does).
 *
 * @example
 * ```ts ignore
 * const pid = await launch({ pidFile: "/run/app.pid", logFile: "/var/log/app.log" });
 * console.log(pid);
 * ```
 */
export async function launch(options: DaemonOptions, libc: Libc = systemLibc): Promise<number> {
  checkPidFileFree(options.pidFile, libc);
  const recorded = recordedLogPath(options.pidFile);
  const log = openLog(options.logFile, options.umask ?? 0o022, libc);
  let lock: number | undefined;
  let readEnd: number;
  try {
    lock = holdPidFile(options.pidFile, process.pid, libc);
    readEnd = spawnDaemon({ ...options, role: "daemon", readyFd: READY_FD, command: selfCommand() }, log, libc);
  } catch (err) {
    if (lock !== undefined) libc.close(lock);
    removeStalePidFile(options.pidFile, libc);
    throw err;
  } finally {
    if (typeof log === "number") libc.close(log);
  }
  let stoppedBy: string | undefined;
  const stop = (signal: string) => () => void (stoppedBy ??= signal);
  const listeners = (["SIGTERM", "SIGINT", "SIGHUP"] as const).map((signal) => [signal, stop(signal)] as const);
  for (const [signal, listener] of listeners) process.on(signal, listener);
  const release = () => {
    if (lock !== undefined) libc.close(lock); // the daemon waits for it (LOCKING); the file stays
    lock = undefined;
  };
  const hint = options.logFile ? ` (see ${options.logFile})` : " (pass --log-file to see its output)";
  const { pid, error, reported } = await waitForReady(readEnd, (options.startTimeout ?? 60) * 1000, hint, libc, { onLocking: release, stoppedBy: () => stoppedBy });
  for (const [signal, listener] of listeners) process.off(signal, listener);
  libc.close(readEnd); // a daemon still starting sees its launcher gone and gives up
  if (!error) return pid!;
  cleanUpFailedStart(pid, options.pidFile, libc);
  release();
  recordLogPath(options.pidFile, recorded); // a failed start leaves the log-path record as it found it
  // The daemon logs the failures it reports; one killed or timed out could not, so the launcher does.
  if (!reported && options.logFile) appendToLog(options.logFile, error.message, options.logFormat);
  throw error;
}

/** A running daemon's side of the start-up: holds the pid file and the ready socket. */
export interface Daemon {
  /** The held pid file. */
  pidFile: PidFile;
  /** Reports readiness or failure to the launcher. */
  reporter: ReadyReporter;
}

/**
 * Finishes daemonizing in the re-executed process: resets what /bin/sh set for its background job,
 * applies umask and working directory, locks and writes the pid file. A failure is reported to the
 * launcher and ends the process.
 */
export function becomeDaemon(stage: DaemonStage, libc: Libc = systemLibc): Daemon {
  // A non-interactive shell starts background jobs with SIGINT and SIGQUIT ignored: undo that.
  libc.resetSignal(SIG.INT);
  libc.resetSignal(SIG.QUIT);
  ignoreInspectorSignal(libc);
  libc.umask(stage.umask ?? 0o022);
  libc.setCloseOnExec(READY_FD); // the entry's own children must not hold the launcher's socket open
  const reporter = new ReadyReporter(READY_FD, libc);
  try {
    process.chdir(stage.chdir ?? "/");
    // The launcher holds the lock until it reads LOCKING; a launcher gone (stopped, Ctrl-C) cancels the start.
    if (!reporter.tell("LOCKING")) process.exit(0);
    const pidFile = PidFile.takeOver(stage.pidFile, process.pid, libc, stage.name);
    if (!reporter.tell("LOCKED")) {
      pidFile.release();
      process.exit(0);
    }
    process.on("exit", () => pidFile.release());
    recordLogPath(stage.pidFile, stage.logFile);
    return { pidFile, reporter };
  } catch (err) {
    const e = err instanceof DaemonError ? err : new DaemonError("START_FAILED", `Cannot start: ${(err as Error).message}`);
    runnerLog(e.message, "fatal");
    reporter.fail(e.code, e.message);
    process.exit(e.exitCode);
  }
}

/** The text an uncaught error is reported with: its stack where it has one. */
export function describe(err: unknown): string {
  return err instanceof Error ? err.stack ?? String(err) : String(err);
}

/** An uncaught error or an exit before readiness is reported to the launcher (and to the log). */
function guardStartup(reporter: ReadyReporter): (err: unknown) => never {
  const fatal = (err: unknown): never => {
    const text = describe(err);
    runnerLog(text, "fatal");
    reporter.fail("START_FAILED", `Cannot start: the entry failed during start-up: ${text}`);
    process.exit(1);
  };
  process.on("uncaughtException", fatal);
  process.on("unhandledRejection", fatal);
  process.on("exit", (code) => {
    if (!reporter.pending) return;
    const signal = stopSignal();
    const message = signal ? `Cannot start: stopped during start-up (${signal})` : `Cannot start: the entry exited with code ${code} before it was ready`;
    runnerLog(message, "fatal");
    reporter.fail("START_FAILED", message);
  });
  return fatal;
}

/** What every daemon (single process or master) has once started: see {@linkcode startDaemon}. */
export interface StartedDaemon extends Daemon {
  /** Reports an error as a start-up failure (before readiness) and exits. */
  fatal: (err: unknown) => never;
  /** systemd's notify socket, when it listens. */
  systemd: Notifier;
}

/** The daemon's first steps: logging configured, {@linkcode becomeDaemon}, start-up guards, systemd. */
export function startDaemon(stage: DaemonStage): StartedDaemon {
  configureLogging({ level: stage.logLevel, format: stage.logFormat });
  const daemon = becomeDaemon(stage);
  return { ...daemon, fatal: guardStartup(daemon.reporter), systemd: systemdNotifier() };
}

/**
 * Runs the daemon side of a single-process daemon: {@linkcode startDaemon}, signal handlers, then `run`
 * (which evaluates the entry); reports READY once the entry is ready. Resolves when `run` does.
 */
export async function serveDaemon(stage: DaemonStage, run: () => Promise<unknown>): Promise<void> {
  const { reporter, fatal, systemd } = startDaemon(stage);
  handleSignals(runnerLog, { logFile: stage.logFile, systemd });
  const evaluated = run().catch(fatal);
  failWhenIdle(() => !reporter.pending, (message) => {
    runnerLog(`Cannot start: ${message}`, "fatal");
    reporter.fail("START_FAILED", `Cannot start: ${message}`);
    process.exit(ExitCode.START_FAILED);
  });
  watchReadiness(stage.ready ?? "auto", evaluated, () => {
    runnerLog(`ready (pid ${process.pid})`);
    reporter.ready();
    systemd.notify(`READY=1\nMAINPID=${process.pid}`);
  });
  await evaluated;
}

/**
 * Daemonizes the calling script, go-daemon style. In the launcher it starts the script again as a daemon,
 * waits until that is ready, prints its pid and exits (0, or the error's exit code with its message). In the
 * daemon it returns, with stdio on the log file, the pid file locked and SIGTERM/SIGHUP handled; the
 * script goes on and counts as ready when it listens on a socket or calls `ready()`.
 *
 * @example
 * ```ts ignore
 * import { daemonize } from "daemonic";
 * await daemonize({ pidFile: "/tmp/app.pid", logFile: "/tmp/app.log" });
 * Bun.serve({ port: 8080, fetch: () => new Response("hi") });
 * ```
 */
export async function daemonize(options: DaemonOptions): Promise<void> {
  const stage = takeStage();
  if (stage?.role === "daemon") return await serveDaemon(stage, () => Promise.resolve());
  try {
    console.log(await launch(options));
    process.exit(0);
  } catch (err) {
    console.error((err as Error).message);
    process.exit(err instanceof DaemonError ? err.exitCode : 70);
  }
}
