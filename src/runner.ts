/**
 * The runner: the command line of a built daemon (`./mydaemon --daemon …`) and of `daemonic run`.
 * It picks the action, and in the daemon and foreground cases runs the entry with its own argv.
 *
 * @module
 */
import { existsSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import process from "node:process";
import { setEntryArgv, setTitle } from "./_runtime.ts";
import { type DaemonStage, launch, serveDaemon, takeStage } from "./daemonize.ts";
import { serveMaster, workerTableFile } from "./master.ts";
import { DaemonError, ExitCode, userPathError } from "./errors.ts";
import { type RunnerOptions, parseRunnerArgs, usage } from "./options.ts";
import { PidFile, readPidFile } from "./pidfile.ts";
import { runnerLog } from "./log.ts";
import { systemdNotifier } from "./notify.ts";
import { watchReadiness } from "./readiness.ts";
import { heldFile, holdMarker } from "./log.ts";
import { recordedLogPath } from "./log_path.ts";
import { showLogs } from "./log_show.ts";
import { configureLogging } from "./logger.ts";
import { handleSignals, SIG, signalDaemon, stopDaemon } from "./signals.ts";
import { readWorkerTable } from "./supervisor.ts";
import { serveWorker } from "./worker.ts";

/** The program the runner runs. */
export interface App {
  /** Default daemon name (the binary's or the entry's base name). */
  name: string;
  /** daemonic's version, for `--version`. */
  version: string;
  /** Absolute path of the entry script, for the entry's `process.argv[1]`. */
  entryPath: string;
  /** Imports (evaluates) the entry. */
  load: () => Promise<unknown>;
  /** The runner's arguments (default: `process.argv.slice(2)`). */
  argv?: string[];
  /** Where relative paths on the command line resolve (default: the working directory). */
  baseDir?: string;
}

function exitWith(err: unknown): never {
  const userError = userPathError(err);
  if (userError) {
    console.error(userError.message);
    process.exit(userError.exitCode);
  }
  console.error(`daemonic: internal error: ${(err as Error)?.stack ?? err}`);
  process.exit(ExitCode.SOFTWARE);
}

async function runDaemon(app: App, stage: DaemonStage): Promise<void> {
  if (stage.workers) return serveMaster(stage);
  await serveDaemon(stage, () => {
    setTitle(app.name);
    setEntryArgv(app.entryPath, stage.args ?? []);
    return app.load();
  });
}

async function runForeground(app: App, opts: RunnerOptions): Promise<void> {
  configureLogging({ level: opts.logLevel, format: opts.logFormat });
  if (opts.pidFileGiven) {
    const pidFile = PidFile.acquire(opts.pidFile);
    process.on("exit", () => pidFile.release());
  }
  const systemd = systemdNotifier();
  handleSignals(runnerLog, { systemd });
  setEntryArgv(app.entryPath, opts.args);
  const evaluated = app.load();
  if (systemd.active) watchReadiness(opts.ready, evaluated, () => systemd.notify(`READY=1\nMAINPID=${process.pid}`));
  await evaluated;
}

function start(opts: RunnerOptions): void {
  const pid = launch({
    pidFile: opts.pidFile,
    logFile: opts.logFile,
    logLevel: opts.logLevel,
    logFormat: opts.logFormat,
    chdir: opts.chdir,
    umask: opts.umask,
    startTimeout: opts.startTimeout,
    ready: opts.ready,
    args: opts.args,
    workers: opts.workers,
    workerTimeout: opts.workerTimeout,
    timeout: opts.timeout,
    name: opts.name,
  });
  console.log(pid);
}

function status(opts: RunnerOptions): number {
  let state;
  try {
    state = readPidFile(opts.pidFile);
  } catch (err) {
    console.error(`${opts.name}: unknown: cannot read pid file ${opts.pidFile}: ${(err as Error).message}`);
    return ExitCode.UNKNOWN;
  }
  if (state.state === "running") {
    console.log(`${opts.name}: running (pid ${state.pid})`);
    const table = readWorkerTable(workerTableFile(opts.pidFile));
    if (table?.master === state.pid) {
      for (const w of table.workers) {
        const age = ((Date.now() - w.startedAt) / 1000).toFixed(0);
        console.log(`  worker[${w.id}] pid ${w.pid}, up ${age} s, ${w.restarts} restarts, RSS ${rssOf(w.pid)}`);
      }
    }
    return ExitCode.OK;
  }
  if (state.state === "stale") {
    console.log(`${opts.name}: not running, but pid file ${opts.pidFile} remains (stale, not locked)`);
    return ExitCode.DEAD_PID_FILE;
  }
  console.log(`${opts.name}: not running`);
  return ExitCode.NOT_RUNNING;
}

function rssOf(pid: number): string {
  try {
    const line = readFileSync(`/proc/${pid}/status`, "utf8").split("\n").find((l) => l.startsWith("VmRSS:"));
    return line ? line.slice(6).trim() : "?";
  } catch {
    return "gone";
  }
}

/**
 * `--hold-logs`: asks the daemon, and through its master every worker, to hold their lines, and returns once
 * each of them does, so logrotate may copy and truncate. When one does not answer within 5 s it lets them
 * all go again and fails, and logrotate skips the rotation (a failed prerotate does).
 */
function holdLogs(opts: RunnerOptions): void {
  const path = logPathOf(opts, "hold logs");
  writeFileSync(holdMarker(path), "");
  const pid = signalDaemon(opts.pidFile, SIG.USR1);
  if (pid === null) {
    rmSync(holdMarker(path), { force: true });
    throw new DaemonError("NOT_RUNNING", `Cannot hold logs: ${opts.name} is not running (no lock on ${opts.pidFile})`);
  }
  const table = readWorkerTable(workerTableFile(opts.pidFile));
  const pids = [pid, ...(table?.master === pid ? table.workers.map((w) => w.pid) : [])];
  const deadline = Date.now() + 5000;
  let waiting = pids;
  while ((waiting = waiting.filter((p) => !existsSync(heldFile(path, p)) && existsSync(`/proc/${p}`))).length) {
    if (Date.now() > deadline) {
      rmSync(holdMarker(path), { force: true });
      signalDaemon(opts.pidFile, SIG.USR1);
      throw new DaemonError("START_FAILED", `Cannot hold logs: pid ${waiting.join(", ")} did not answer within 5 s: let logrotate skip this rotation and look at the log`);
    }
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
  }
}

/** The log named by --log-file, else the one the daemon recorded next to its pid file; `what` for the error. */
function logPathOf(opts: RunnerOptions, what: string): string {
  const path = opts.logFile ?? recordedLogPath(opts.pidFile);
  if (!path) {
    throw new DaemonError("NO_INPUT", `Cannot ${what}: no log path recorded next to ${opts.pidFile} (the daemon was started without --log-file, or never started): pass --log-file`);
  }
  return path;
}

/**
 * `--reopen-logs` succeeds once the daemon's stdout is the file now at `path`: a reopen that failed (the daemon
 * logs why) leaves it on the old file, and logrotate must hear of it. Unverifiable without access to /proc/PID/fd.
 */
function confirmReopened(name: string, pid: number, path: string): void {
  const deadline = Date.now() + 5000;
  for (;;) {
    try {
      const now = statSync(path), out = statSync(`/proc/${pid}/fd/1`);
      if (now.ino === out.ino && now.dev === out.dev) return;
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === "EACCES" || code === "EPERM" || !existsSync(`/proc/${pid}`)) return;
    }
    if (Date.now() > deadline) {
      throw new DaemonError("CANNOT_CREATE", `Cannot reopen logs: ${name} (pid ${pid}) still writes to the old file, not ${path}: its log says why; fix the path, then run --reopen-logs again`);
    }
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
  }
}

/** `--logs`: prints (and follows) the daemon's log. */
function logs(opts: RunnerOptions): number {
  return showLogs(logPathOf(opts, "show logs"), { lines: opts.lines, follow: opts.follow });
}

function stop(opts: RunnerOptions): void {
  const result = stopDaemon(opts.pidFile, opts.timeout * 1000);
  if (result.pid === null) {
    console.log(`${opts.name}: not running${result.removedStale ? ` (removed stale pid file ${opts.pidFile})` : ""}`);
  } else {
    console.log(`${opts.name}: stopped (pid ${result.pid}${result.killed ? `, killed after ${opts.timeout} s` : ""})`);
  }
}

/**
 * Runs the runner's command line for `app`. Never returns in the launcher and control actions (it exits
 * with the documented code); in the daemon and foreground cases it resolves once the entry is evaluated.
 *
 * @example
 * ```ts ignore
 * await main({ name: "app", version: "0.1.0", entryPath: "/srv/app.ts", load: () => import("/srv/app.ts") });
 * ```
 */
export async function main(app: App): Promise<void> {
  const stage = takeStage();
  if (stage?.role === "worker") return serveWorker(stage, app.entryPath, app.load);
  if (stage) return runDaemon(app, stage);
  try {
    const opts = parseRunnerArgs(app.argv ?? process.argv.slice(2), { name: app.name, baseDir: app.baseDir });
    switch (opts.action) {
      case "help":
        console.log(usage(opts.name));
        return process.exit(0);
      case "version":
        console.log(`${opts.name} (daemonic ${app.version})`);
        return process.exit(0);
      case "status":
        return process.exit(status(opts));
      case "stop":
        stop(opts);
        return process.exit(0);
      case "reload": {
        if (signalDaemon(opts.pidFile, SIG.HUP) === null) {
          throw new DaemonError("NOT_RUNNING", `Cannot reload: ${opts.name} is not running (no lock on ${opts.pidFile}): start it with --daemon`);
        }
        return process.exit(0);
      }
      case "hold-logs":
        holdLogs(opts);
        return process.exit(0);
      case "reopen-logs": {
        const path = opts.logFile ?? recordedLogPath(opts.pidFile);
        try {
          if (path) rmSync(holdMarker(path), { force: true });
        } catch {
          // No marker can be there (its directory is gone): nothing held.
        }
        const pid = signalDaemon(opts.pidFile, SIG.USR1);
        if (pid === null) {
          throw new DaemonError("NOT_RUNNING", `Cannot reopen logs: ${opts.name} is not running (no lock on ${opts.pidFile}): nothing to reopen`);
        }
        const daemonLog = recordedLogPath(opts.pidFile); // the path the daemon reopens, whatever --log-file says
        if (daemonLog) confirmReopened(opts.name, pid, daemonLog);
        return process.exit(0);
      }
      case "logs":
        return process.exit(logs(opts));
      case "restart":
        stop(opts);
        start(opts);
        return process.exit(0);
      case "daemon":
        start(opts);
        return process.exit(0);
      case "foreground":
        return await runForeground(app, opts);
    }
  } catch (err) {
    exitWith(err);
  }
}
