/**
 * The controller: the short life of `--status`, `--stop`, `--reload`, `--reopen-logs`, `--hold-logs` and
 * `--logs`. It asks the kernel who holds the pid file's write lock (or the registry, when the file is gone),
 * pins that process with a pidfd, signals it, and for `--stop` waits for it and its tree to end.
 *
 * @module
 */
import { host } from "../../ffi/_host.ts";
import { type Libc, libc as systemLibc, SystemCallError } from "../../ffi/mod.ts";
import { DaemonError, ExitCode } from "../errors.ts";
import { askToHold, askToReopen } from "../log/rotate.ts";
import { logPathFile, recordedLogPath, showLogs } from "../log/show.ts";
import type { RunnerOptions } from "../cli/options.ts";
import { readPidFile, removeStalePidFile } from "../pidfile.ts";
import { whoRuns } from "../privileges.ts";
import { type DaemonTree, daemonTree } from "../process_tree.ts";
import { MIGRATION_STATUS } from "../worker/reuseport_migrate.ts";
import { REOPEN } from "../signals.ts";
import { sendSignal, terminate, terminateTree } from "../terminate.ts";
import { readWorkerTable, workerTableFile } from "../master/worker_handle.ts";
import { findRegistered, foregroundTableFile } from "../registry.ts";
import { megabytes } from "../master/memory_limit.ts";

/** Opens a pidfd for the holder of `pidFile`'s lock, checking the lock again once the pidfd pins the pid. */
function openHolder(pidFile: string, libc: Libc): { pid: number; pidfd: number } | null {
  for (;;) {
    const state = readPidFile(pidFile, libc);
    if (state.state !== "running") return null;
    let pidfd: number;
    try {
      pidfd = libc.pidfdOpen(state.pid);
    } catch (err) {
      if (err instanceof SystemCallError && err.code === "ESRCH") continue; // exited meanwhile
      throw err;
    }
    const again = readPidFile(pidFile, libc);
    if (again.state === "running" && again.pid === state.pid) return { pid: state.pid, pidfd };
    libc.close(pidfd);
    if (again.state !== "running") return null;
  }
}

/**
 * Sends `signal` to the daemon holding `pidFile`'s lock. Returns its pid, or `null` when none runs.
 *
 * @example
 * ```ts
 * import { signalDaemon } from "./control.ts";
 * console.log(signalDaemon("/nonexistent/app.pid", 1)); // null: no daemon holds that pid file
 * ```
 */
export function signalDaemon(pidFile: string, signal: number, libc: Libc = systemLibc): number | null {
  const holder = openHolder(pidFile, libc);
  if (!holder) return null;
  try {
    sendSignal(holder.pidfd, holder.pid, signal, libc);
    return holder.pid;
  } finally {
    libc.close(holder.pidfd);
  }
}

/** The outcome of {@linkcode stopDaemon}. */
export interface StopResult {
  /** The pid that was stopped, or `null` when none was running. */
  pid: number | null;
  /** Whether SIGKILL was needed. */
  killed: boolean;
  /** Whether a stale pid file was removed. */
  removedStale: boolean;
}

/**
 * Stops the daemon holding `pidFile`'s lock: SIGTERM, wait up to `timeoutMs` for it to exit (a pidfd wakes
 * us the moment it does: no polling), then SIGKILL; then what is left of its tree (its session once its
 * leader is gone, and its descendants, of its uid) the same way. Removes a pid file left behind.
 *
 * @example
 * ```ts
 * import { stopDaemon } from "./control.ts";
 * const { pid, killed } = stopDaemon("/nonexistent/app.pid", 10_000);
 * console.log(pid, killed); // null false: nothing was running
 * ```
 */
export function stopDaemon(pidFile: string, timeoutMs: number, libc: Libc = systemLibc): StopResult {
  let first: number | null = null;
  const trees: DaemonTree[] = [];
  let killed = false;
  // A launcher holds the lock until its daemon takes it over: once the one stopped is gone, stop a new holder too.
  for (let round = 0; round < 3; round++) {
    const holder = openHolder(pidFile, libc);
    if (!holder) break;
    first ??= holder.pid;
    const tree = daemonTree(holder.pid); // read before the stop: once the daemon is gone, its children are orphans
    if (tree) trees.push(tree);
    try {
      killed = terminate(holder.pidfd, holder.pid, timeoutMs, {}, libc) || killed;
    } finally {
      libc.close(holder.pidfd);
    }
  }
  for (const tree of trees) terminateTree(tree, timeoutMs);
  const removedStale = removeStalePidFile(pidFile, libc);
  if (readPidFile(pidFile, libc).state !== "running") removeSidecars(pidFile);
  return { pid: first, killed, removedStale };
}

/** Removes the files a daemon keeps beside its pid file (the worker table, the log path) when it could not:
 * killed after `--timeout`, with SIGKILL, or crashed. Only regular files; a symlink is not followed. */
function removeSidecars(pidFile: string): void {
  for (const path of [workerTableFile(pidFile), logPathFile(pidFile)]) {
    try {
      if (host.lstat(path).isFile) host.unlink(path);
    } catch {
      // none there
    }
  }
}

function rssOf(pid: number): string {
  try {
    const line = host.readText(`/proc/${pid}/status`).split("\n").find((l) => l.startsWith("VmRSS:"));
    return line ? line.slice(6).trim() : "?";
  } catch {
    return "gone";
  }
}

/** `--status`: prints the daemon's state (and its workers'); returns the LSB exit code. */
export function status(opts: RunnerOptions): number {
  let state;
  try {
    state = readPidFile(opts.pidFile);
  } catch (err) {
    if (err instanceof DaemonError) throw err; // not a pid file, or an unsafe directory: exit 73
    console.error(`${opts.name}: unknown: cannot read pid file ${opts.pidFile}: ${(err as Error).message}`);
    return ExitCode.UNKNOWN;
  }
  if (state.state === "running") {
    const foreground = state.missing && findRegistered(opts.pidFile)?.foreground;
    const where = !state.missing
      ? ""
      : foreground
      ? " in the foreground, ready (no pid file: found in the registry)"
      : ` but its pid file ${opts.pidFile} is missing (found in the registry)`;
    console.log(`${opts.name}: running (pid ${state.pid})${where}`);
    const table = readWorkerTable(foreground ? foregroundTableFile(opts.pidFile) : workerTableFile(opts.pidFile));
    const who = whoRuns(state.pid, table?.master === state.pid ? table.workers.map((w) => w.pid) : []);
    if (who) console.log(`  ${who}`);
    if (table?.master === state.pid) {
      for (const w of table.workers) {
        const age = ((Date.now() - w.startedAt) / 1000).toFixed(0);
        console.log(`  worker[${w.id}] pid ${w.pid}, up ${age} s, ${w.restarts} restarts, RSS ${rssOf(w.pid)}`);
      }
      for (const slot of table.crashLoop ?? []) {
        const wait = Math.max(0, (slot.retryAt - Date.now()) / 1000).toFixed(1);
        console.log(`  worker[${slot.id}] crash loop: ${slot.crashes} crashes in a row, restarting in ${wait} s`);
      }
      if (table.crashLoop?.length && !table.workers.length) console.log("  no worker is serving: crash loop");
      if (table.migration) console.log(`  rolling restarts: ${MIGRATION_STATUS[table.migration]}`);
    }
    for (const line of decisions(opts.pidFile)) console.log(`  ${line}`);
    return ExitCode.OK;
  }
  if (state.state === "stale") {
    console.log(`${opts.name}: not running, but pid file ${opts.pidFile} remains (stale, not locked)`);
    return ExitCode.DEAD_PID_FILE;
  }
  console.log(`${opts.name}: not running`);
  return ExitCode.NOT_RUNNING;
}

/** How `--workers auto` and `--max-memory PERCENT%` were decided when the daemon started. */
function decisions(pidFile: string): string[] {
  const s = findRegistered(pidFile)?.settings;
  const lines = [];
  if (s?.workersAuto) lines.push(`--workers auto: ${s.workers} worker${s.workers === 1 ? "" : "s"} (${s.workersAuto})`);
  if (s?.maxMemoryShare) lines.push(`--max-memory ${megabytes(s.maxMemory)}: ${s.maxMemoryShare}`);
  return lines;
}

/** Whether the pid file is gone, not merely `.oldbin` while an upgrade's new master starts. */
const lost = (pidFile: string) => !host.exists(pidFile) && !host.exists(`${pidFile}.oldbin`);

/** `--stop`: stops the daemon and says how. */
export function stop(opts: RunnerOptions): void {
  const missing = readPidFile(opts.pidFile).state === "running" && lost(opts.pidFile);
  const result = stopDaemon(opts.pidFile, opts.timeout * 1000);
  if (result.pid === null) {
    console.log(`${opts.name}: not running${result.removedStale ? ` (removed stale pid file ${opts.pidFile})` : ""}`);
  } else {
    const note = `${result.killed ? `, killed after ${opts.timeout} s` : ""}${
      missing ? `; its pid file ${opts.pidFile} was missing, found in the registry` : ""
    }`;
    console.log(`${opts.name}: stopped (pid ${result.pid}${note})`);
  }
}

/** `--reload`, `--upgrade`, `--reopen-logs`, `--hold-logs`: signals the running daemon, or fails with NOT_RUNNING
 * (7). */
export function signalRunning(opts: RunnerOptions, signal: number, action: string, fix = ""): number {
  const missing = lost(opts.pidFile); // before the signal: an upgrade renames it at once
  const pid = signalDaemon(opts.pidFile, signal);
  if (pid === null) {
    throw new DaemonError(
      "NOT_RUNNING",
      `Cannot ${action}: ${opts.name} is not running (no lock on ${opts.pidFile})${fix && `: ${fix}`}`,
    );
  }
  if (missing) {
    console.log(`${opts.name}: pid file ${opts.pidFile} is missing; signalled pid ${pid}, found in the registry`);
  }
  return pid;
}

/** `--hold-logs` (logrotate's prerotate for copytruncate): see log/rotate.ts. */
export function holdLogs(opts: RunnerOptions): void {
  const workers = (master: number) => {
    const table = readWorkerTable(workerTableFile(opts.pidFile));
    return table?.master === master && !table.relayed ? table.workers.map((w) => w.pid) : [];
  };
  const path = logPathOf(opts, "hold logs");
  const [pid, ...held] = askToHold(path, () => signalRunning(opts, REOPEN, "hold logs"), workers);
  console.log(
    `${opts.name}: holding its log lines (pid ${pid}${
      held.length ? ` and ${held.length} worker${held.length === 1 ? "" : "s"}` : ""
    }) while ${path} is copied: --reopen-logs writes them`,
  );
}

/** `--reopen-logs` (logrotate's postrotate): see log/rotate.ts. */
export function reopenLogs(opts: RunnerOptions): void {
  const signal = () => signalRunning(opts, REOPEN, "reopen logs", "nothing to reopen");
  const daemonLog = recordedLogPath(opts.pidFile);
  const pid = askToReopen(opts.name, opts.logFile ?? daemonLog, daemonLog, signal);
  console.log(
    daemonLog
      ? `${opts.name}: reopened ${daemonLog} (pid ${pid})`
      : `${opts.name}: signalled pid ${pid}, which has no --log-file: nothing to reopen`,
  );
}

/** `--logs`: prints (and follows) the daemon's log; returns tail's exit code. */
export function logs(opts: RunnerOptions): Promise<number> {
  return showLogs(logPathOf(opts, "show logs"), { lines: opts.lines, follow: opts.follow });
}

/** The log named by --log-file, else the one the daemon recorded next to its pid file; `what` for the error. */
function logPathOf(opts: RunnerOptions, what: string): string {
  const path = opts.logFile ?? recordedLogPath(opts.pidFile);
  if (!path) {
    throw new DaemonError(
      "NO_INPUT",
      `Cannot ${what}: no log path recorded next to ${opts.pidFile} (the daemon was started without --log-file, or ` +
        `never started): pass --log-file`,
    );
  }
  return path;
}
