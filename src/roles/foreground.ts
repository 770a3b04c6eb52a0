/**
 * The foreground run: `./mydaemon` without `--daemon` (a terminal, a container, systemd's `Type=notify` or
 * `Type=simple`). The entry runs in this process — or, with `--workers N`, this process is the master and
 * the workers run under it, as Unicorn's master runs without `-D` — with the same signal handlers as a
 * daemon; output goes to `--log-file` when given; systemd hears when it is ready (MAINPID: this process).
 * As a container's PID 1 the runner becomes a tiny init instead (see init.ts).
 *
 * @module
 */
import process from "node:process";
import { libc, O } from "../../ffi/mod.ts";
import { ignoreInspectorSignal, selfCommand } from "../_runtime.ts";
import { watchEnvFiles } from "../env_file.ts";
import { DaemonError } from "../errors.ts";
import { runnerLog, setRunnerLogging } from "../log/lines.ts";
import { recordLogPath } from "../log/show.ts";
import { systemdNotifier } from "../notify.ts";
import type { RunnerOptions } from "../options.ts";
import { PidFile } from "../pidfile.ts";
import { ReadyReporter } from "../ready_pipe.ts";
import { dropPrivileges, identityOf } from "../privileges.ts";
import { type Entry, runEntry } from "../run_entry.ts";
import { handleSignals } from "../signals.ts";
import { withDefaults } from "../stage.ts";
import { checkStartInputs } from "../start_inputs.ts";
import { supervised, supervisionOf } from "../supervision.ts";
import { describe, type StartedDaemon } from "./daemon.ts";
import { serveInit } from "./init.ts";
import { runMaster } from "./master.ts";

/** Puts stdout and stderr on `--log-file` (O_APPEND, created under `--umask`), as a daemon has them. */
/** Returns a descriptor of the stderr it replaced, for a start-up failure to reach the terminal too. */
function logTo(path: string, umask: number): number {
  const callers = libc.umask(umask);
  try {
    const terminal = libc.duplicate(2);
    const fd = libc.open(path, O.WRONLY | O.APPEND | O.CREAT | O.NOCTTY, 0o666);
    libc.dup2(fd, 1);
    libc.dup2(fd, 2);
    libc.close(fd);
    return terminal;
  } finally {
    libc.umask(callers);
  }
}

/** This process's umask (read by setting it and back). */
function currentUmask(): number {
  const mask = libc.umask(0o022);
  libc.umask(mask);
  return mask;
}

/** What a foreground process has before the entry or the workers run; `fail` ends it for an error. */
function startInForeground(opts: RunnerOptions, fail: (err: unknown) => never): StartedDaemon {
  checkStartInputs(opts); // a missing --chdir or --env-file: 66 before anything is done
  identityOf(opts); // --user: refused (77, 67) before anything is done
  // --chdir and --umask apply when asked for; otherwise the foreground keeps what it was started with.
  if (opts.given.has("chdir")) process.chdir(opts.chdir);
  if (opts.given.has("umask")) libc.umask(opts.umask);
  const terminal = opts.logFile ? logTo(opts.logFile, opts.given.has("umask") ? opts.umask : currentUmask()) : 2;
  setRunnerLogging({ level: opts.logLevel, format: opts.logFormat }); // LogTape too, on the entry's first getLogger()
  ignoreInspectorSignal(libc); // a foreground service (systemd Type=simple) is as exposed as a daemon
  let pidFile: PidFile | undefined;
  if (opts.pidFileGiven) {
    const start = { settings: withDefaults(opts), command: selfCommand(), env: { ...process.env } as Record<string, string> };
    const held = pidFile = PidFile.acquire(opts.pidFile, process.pid, undefined, opts.name, start);
    process.on("exit", () => held.release());
  }
  // A start-up failure: in the log, and on the terminal the run was started from.
  const fatal = (err: unknown): never => {
    const error = err instanceof DaemonError ? err : new DaemonError("START_FAILED", `Cannot start: ${describe(err)}`);
    runnerLog(error.message, "fatal");
    if (terminal !== 2) libc.dup2(terminal, 2);
    return fail(error);
  };
  // No launcher waits on a foreground run: its reports go nowhere.
  return { pidFile, reporter: new ReadyReporter(-1), fatal, systemd: systemdNotifier() };
}

/** Runs the entry in this process, or its copies under this one as their master (`--workers`, `--keep-alive`);
 * resolves once it is evaluated. `fail` ends the process with an error's message and code. */
export async function runForeground(opts: RunnerOptions, entry: Entry, fail: (err: unknown) => never): Promise<void> {
  if (process.pid === 1) return serveInit(); // a container's first process: its child runs the entry
  // Before the workers, unlike a daemon's master: this is what points fds 1 and 2, which they inherit, at --log-file.
  const started = startInForeground(opts, fail);
  if (supervised(supervisionOf(opts))) return runMaster({ ...withDefaults(opts), role: "daemon", command: selfCommand() }, () => started);
  dropPrivileges(opts); // after the pid file, before the entry (with workers, each worker drops)
  watchEnvFiles(opts.envFiles, runnerLog); // before handleSignals: SIGHUP re-reads them before onReload hooks
  handleSignals(runnerLog, { logFile: opts.logFile, systemd: started.systemd });
  await runEntry(entry, opts, {
    ready: () => {
      if (opts.pidFileGiven) recordLogPath(opts.pidFile, opts.logFile); // for --logs; a failed start leaves none
      started.systemd.notify(`READY=1\nMAINPID=${process.pid}`);
    },
    fail: started.fatal,
  });
}
