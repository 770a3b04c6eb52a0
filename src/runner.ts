/**
 * The runner: the command line of a built daemon (`./mydaemon --daemon …`) and of `daemonic run`.
 * It picks the action, and in the daemon and foreground cases runs the entry with its own argv.
 *
 * @module
 */
import { existsSync, readFileSync, rmSync, statSync } from "node:fs";
import process from "node:process";
import { ignoreInspectorSignal, setEntryArgv, setTitle } from "./_runtime.ts";
import { libc } from "../ffi/mod.ts";
import { type DaemonStage, launch, serveDaemon, takeStage } from "./daemonize.ts";
import { serveMaster, workerTableFile } from "./master.ts";
import { DaemonError, ExitCode, userPathError } from "./errors.ts";
import { type RunnerOptions, parseRunnerArgs, usage } from "./options.ts";
import { PidFile, readPidFile } from "./pidfile.ts";
import { runnerLog } from "./log/setup.ts";
import { systemdNotifier } from "./notify.ts";
import { failWhenIdle, watchReadiness } from "./readiness.ts";
import { heldFile, holdMarker } from "./log/rotate.ts";
import { recordedLogPath } from "./log/show.ts";
import { writeSidecar } from "./safe_file.ts";
import { serveDefaultExport } from "./default_export.ts";
import { showLogs } from "./log/show.ts";
import { configureLogging } from "./log/setup.ts";
import { serveInit } from "./init.ts";
import { handleSignals, REOPEN, SIG, signalDaemon, stopDaemon } from "./signals.ts";
import { readWorkerTable } from "./supervisor.ts";
import { serveWorker } from "./worker.ts";
import { installService, serviceCommand, uninstallService, unitMode, unitText } from "./service.ts";

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
    return app.load().then(serveDefaultExport);
  });
}

async function runForeground(app: App, opts: RunnerOptions): Promise<void> {
  if (process.pid === 1) return serveInit(); // a container's first process: its child runs the entry
  configureLogging({ level: opts.logLevel, format: opts.logFormat });
  ignoreInspectorSignal(libc); // a foreground service (systemd Type=simple) is as exposed as a daemon
  if (opts.pidFileGiven) {
    const pidFile = PidFile.acquire(opts.pidFile, process.pid, undefined, opts.name);
    process.on("exit", () => pidFile.release());
  }
  const systemd = systemdNotifier();
  handleSignals(runnerLog, { systemd });
  setEntryArgv(app.entryPath, opts.args);
  const evaluated = app.load().then(serveDefaultExport);
  let ready = false;
  watchReadiness(opts.ready, evaluated, () => {
    ready = true;
    systemd.notify(`READY=1\nMAINPID=${process.pid}`);
  });
  failWhenIdle(() => ready, (message) => exitWith(new DaemonError("START_FAILED", `Cannot start: ${message}`)));
  await evaluated;
}

async function start(opts: RunnerOptions): Promise<void> {
  const pid = await launch({
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
    if (err instanceof DaemonError) throw err; // not a pid file, or an unsafe directory: exit 73
    console.error(`${opts.name}: unknown: cannot read pid file ${opts.pidFile}: ${(err as Error).message}`);
    return ExitCode.UNKNOWN;
  }
  if (state.state === "running") {
    console.log(`${opts.name}: running (pid ${state.pid})${state.missing ? ` but its pid file ${opts.pidFile} is missing (found in the registry)` : ""}`);
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
  writeSidecar(holdMarker(path), "");
  const pid = signalDaemon(opts.pidFile, REOPEN);
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
      signalDaemon(opts.pidFile, REOPEN);
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

/** After signalling `pid`: says so when the pid file is gone and the registry found the daemon. */
function noteMissingPidFile(opts: RunnerOptions, pid: number): void {
  if (!existsSync(opts.pidFile)) console.log(`${opts.name}: pid file ${opts.pidFile} is missing; signalled pid ${pid}, found in the registry`);
}

function stop(opts: RunnerOptions): void {
  const missing = readPidFile(opts.pidFile).state === "running" && !existsSync(opts.pidFile);
  const result = stopDaemon(opts.pidFile, opts.timeout * 1000);
  if (result.pid === null) {
    console.log(`${opts.name}: not running${result.removedStale ? ` (removed stale pid file ${opts.pidFile})` : ""}`);
  } else {
    const note = `${result.killed ? `, killed after ${opts.timeout} s` : ""}${missing ? `; its pid file ${opts.pidFile} was missing, found in the registry` : ""}`;
    console.log(`${opts.name}: stopped (pid ${result.pid}${note})`);
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
    const argv = app.argv ?? process.argv.slice(2);
    const opts = parseRunnerArgs(argv, { name: app.name, baseDir: app.baseDir });
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
        const pid = signalDaemon(opts.pidFile, SIG.HUP);
        if (pid === null) {
          throw new DaemonError("NOT_RUNNING", `Cannot reload: ${opts.name} is not running (no lock on ${opts.pidFile}): start it with --daemon`);
        }
        noteMissingPidFile(opts, pid);
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
        const pid = signalDaemon(opts.pidFile, REOPEN);
        if (pid === null) {
          throw new DaemonError("NOT_RUNNING", `Cannot reopen logs: ${opts.name} is not running (no lock on ${opts.pidFile}): nothing to reopen`);
        }
        noteMissingPidFile(opts, pid);
        const daemonLog = recordedLogPath(opts.pidFile); // the path the daemon reopens, whatever --log-file says
        if (daemonLog) confirmReopened(opts.name, pid, daemonLog);
        return process.exit(0);
      }
      case "logs":
        return process.exit(logs(opts));
      case "restart":
        stop(opts);
        await start(opts);
        return process.exit(0);
      case "daemon":
        await start(opts);
        return process.exit(0);
      case "install-service":
        installService(opts, serviceCommand(argv, app.entryPath), app.name);
        return process.exit(0);
      case "uninstall-service":
        uninstallService(opts, serviceCommand(argv, app.entryPath));
        return process.exit(0);
      case "print-service":
        console.log(unitText({ mode: unitMode(opts), command: serviceCommand(argv, app.entryPath), opts, userManager: opts.userService }, app.name).trimEnd());
        return process.exit(0);
      case "foreground":
        return await runForeground(app, opts);
    }
  } catch (err) {
    exitWith(err);
  }
}
