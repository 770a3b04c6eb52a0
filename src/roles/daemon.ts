/**
 * The daemon: the re-executed process the launcher started, for a single-process daemon (and the first
 * steps of a master). It finishes daemonizing through libc — undoes what /bin/sh set for its background job,
 * applies umask and working directory, takes the pid file over from the launcher — then runs the entry and
 * reports READY (or the entry's error) on the channel.
 *
 * @module
 */
import { host } from "../../ffi/_host.ts";
import { type Libc, libc as systemLibc } from "../../ffi/mod.ts";
import { ignoreInspectorSignal } from "../_runtime.ts";
import { watchEnvFiles } from "../env_file.ts";
import { DaemonError, ExitCode } from "../errors.ts";
import { recordLogPath } from "../log/show.ts";
import { runnerLog, setRunnerLogging } from "../log/lines.ts";
import { type Notifier, systemdNotifier } from "../notify.ts";
import { PidFile } from "../pidfile.ts";
import { dropPrivileges } from "../privileges.ts";
import { ReadyReporter } from "../channel.ts";
import { type Entry, runEntry } from "../run_entry.ts";
import { handleSignals, SIG, stopSignal } from "../signals.ts";
import { type DaemonStage, STAGE_FD } from "../stage.ts";
import { entryFailure, entryStack } from "../startup_error.ts";
import { supervised, supervisionOf } from "../supervision.ts";
import { mark } from "../trace.ts";
import { workerTableFile, writeWorkerTable } from "../master/worker_handle.ts";

/** A running daemon's side of the start-up: holds the pid file and the channel. */
export interface Daemon {
  /** The held pid file (a foreground run holds one only when given `--pid-file`). */
  pidFile?: PidFile;
  /** Reports readiness or failure to the launcher. */
  reporter: ReadyReporter;
  /** Called once the role's own TERM/INT handlers are up: a stop caught before is sent again to them. */
  handlersReady?: () => void;
}

/** From the moment the pid file may be ours until the role's handlers are up, a stop (TERM, INT) is caught
 * here rather than killing the process unreported, and sent again once they are up (the returned call). A
 * role that trapped them already (the master) needs none. */
function catchEarlyStops(): () => void {
  let caught: "SIGTERM" | "SIGINT" | undefined;
  const untrapped = (["SIGTERM", "SIGINT"] as const).filter((signal) => host.signalListeners(signal) === 0);
  const listeners = untrapped.map((signal) => [signal, () => void (caught ??= signal)] as const);
  for (const [signal, listener] of listeners) host.onSignal(signal, listener);
  return () => {
    for (const [signal, listener] of listeners) host.offSignal(signal, listener);
    if (caught) host.kill(host.pid(), caught);
  };
}

/**
 * Finishes daemonizing in the re-executed process: resets what /bin/sh set for its background job,
 * applies umask and working directory, locks and writes the pid file. A failure is reported to the
 * launcher and ends the process.
 */
export function becomeDaemon(stage: DaemonStage, libc: Libc = systemLibc): Daemon {
  // A non-interactive shell starts background jobs with SIGINT and SIGQUIT ignored: undo that (a role that
  // trapped them already, the master, has its handler in place instead).
  if (host.signalListeners("SIGINT") === 0) libc.resetSignal(SIG.INT);
  if (host.signalListeners("SIGQUIT") === 0) libc.resetSignal(SIG.QUIT);
  ignoreInspectorSignal(libc);
  libc.umask(stage.umask);
  libc.setCloseOnExec(STAGE_FD); // the entry's own children must not hold the launcher's socket open
  const reporter = new ReadyReporter(STAGE_FD, libc);
  mark("daemon: signals reset, umask (libc bound)");
  const handlersReady = catchEarlyStops();
  try {
    host.chdir(stage.chdir);
    // A launcher gone (stopped, Ctrl-C) cancels the start; it lets go of its lock once told LOCKED.
    if (!reporter.tell({ kind: "LOCKING" })) host.exit(0);
    const { role: _role, command, ...settings } = stage;
    const env = { ...host.environ } as Record<string, string>; // as started: --restart starts it so again
    const pidFile = PidFile.takeOver(stage.pidFile, host.pid(), libc, stage.name, { settings, command, env });
    if (!reporter.tell({ kind: "LOCKED" })) {
      pidFile.release();
      host.exit(0);
    }
    // A stop, a clean exit or a failed start removes the pid file and what is beside it; a crash once ready
    // leaves the pid file, unlocked, as LSB has it: `--status` says dead (1) until `--stop` or the next start.
    host.onExit((code) => {
      if (code !== 0 && !stopSignal() && !reporter.pending) return;
      pidFile.release();
      recordLogPath(pidFile.path, undefined);
    });
    writeWorkerTable(workerTableFile(stage.pidFile), null); // a killed master's: a master writes its own once ready
    mark("daemon: pid file taken over (LOCKING, LOCKED)");
    recordLogPath(stage.pidFile, stage.logFile);
    mark("daemon: log path recorded");
    // The entry runs here only without a master (--workers, keep-alive): a master stays root, its workers drop.
    if (!supervised(supervisionOf(stage))) dropPrivileges(stage, libc);
    return { pidFile, reporter, handlersReady };
  } catch (err) {
    const e = err instanceof DaemonError
      ? err
      : new DaemonError("START_FAILED", `Cannot start: ${(err as Error).message}`);
    runnerLog(e.message, "fatal");
    reporter.fail(e.code, e.message);
    host.exit(e.exitCode);
  }
}

/** An uncaught error or an exit before readiness is reported to the launcher (and to the log). */
function guardStartup(reporter: ReadyReporter): (err: unknown) => never {
  const fatal = (err: unknown): never => {
    runnerLog(entryStack(err), "fatal"); // the whole stack, in the log; the launcher prints one line
    reporter.fail("START_FAILED", `Cannot start: the entry failed during start-up: ${entryFailure(err)}`);
    host.exit(1);
  };
  host.onFatal(fatal);
  host.onExit((code) => {
    if (!reporter.pending) return;
    const signal = stopSignal();
    const message = signal
      ? `Cannot start: stopped during start-up (${signal})`
      : `Cannot start: the entry exited with code ${code} before it was ready`;
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
  /** Where a master without a pid file (a foreground run) writes its worker table. */
  tableFile?: string;
}

/** The daemon's first steps: the runner's lines set up, {@linkcode becomeDaemon}, start-up guards, systemd. */
export function startDaemon(stage: DaemonStage): StartedDaemon {
  setRunnerLogging({ level: stage.logLevel, format: stage.logFormat });
  const daemon = becomeDaemon(stage);
  return { ...daemon, fatal: guardStartup(daemon.reporter), systemd: systemdNotifier() };
}

/**
 * Runs the daemon side of a single-process daemon: {@linkcode startDaemon}, signal handlers, then the entry;
 * reports READY once the entry is ready. Resolves once the entry is evaluated.
 */
export async function serveDaemon(stage: DaemonStage, entry: Entry): Promise<void> {
  const { reporter, fatal, systemd, handlersReady } = startDaemon(stage);
  try {
    watchEnvFiles(stage.envFiles, runnerLog); // before handleSignals: SIGHUP re-reads them before onReload hooks
  } catch (err) {
    runnerLog((err as Error).message, "fatal");
    reporter.fail("NO_INPUT", (err as Error).message);
    host.exit(ExitCode.NO_INPUT);
  }
  mark("daemon: env files watched");
  handleSignals(runnerLog, { logFile: stage.logFile, systemd, timeout: stage.timeout });
  mark("daemon: signals set up");
  handlersReady?.();
  await runEntry(entry, stage, {
    ready: () => {
      mark("daemon: entry ready");
      runnerLog(`ready (pid ${host.pid()})`);
      reporter.ready();
      mark("daemon: READY reported");
      systemd.notify(`READY=1\nMAINPID=${host.pid()}`);
    },
    fail: (err) => {
      if (!(err instanceof DaemonError)) return fatal(err); // the entry's own error: exit 1, as before
      runnerLog(err.message, "fatal");
      reporter.fail(err.code, err.message);
      host.exit(err.exitCode);
    },
  });
}
