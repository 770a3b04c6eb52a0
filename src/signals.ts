/**
 * Signals, both ends: the daemon's handlers (TERM/INT stop, HUP reload, URG reopen logs) and the controller's
 * "signal the lock holder and wait for it to exit" used by `--stop`, `--reload`, `--restart`.
 *
 * @module
 */
import process from "node:process";
import { type Libc, libc as systemLibc, SystemCallError } from "../ffi/mod.ts";
import { DaemonError } from "./errors.ts";
import { RUNTIME } from "./_runtime.ts";
import { lifecycle } from "./lifecycle.ts";
import type { Notifier } from "./notify.ts";
import { reopenLogs } from "./log/rotate.ts";
import type { LogLevel } from "./log/setup.ts";
import { readPidFile, removeStalePidFile } from "./pidfile.ts";
import { daemonTree, type DaemonTree, treeMembers } from "./process_tree.ts";

/** Signal numbers daemonic sends (Linux). */
export const SIG = { HUP: 1, INT: 2, QUIT: 3, KILL: 9, USR1: 10, USR2: 12, TERM: 15, URG: 23 } as const;

/** The signal `--reopen-logs` and `--hold-logs` send: its default action is "ignore", so a stray one never kills. */
export const REOPEN = SIG.URG;

/** Where handlers report: one line at a level (the runner's `runnerLog`). */
export type SignalLog = (line: string, level?: LogLevel) => void;

let stoppedBy: string | undefined;

/** The stop signal (SIGTERM, SIGINT) this daemon received, if any: a start it cuts short is reported as stopped. */
export function stopSignal(): string | undefined {
  return stoppedBy;
}

/** Records a stop signal for {@linkcode stopSignal}. */
export function noteStopSignal(signal: string): void {
  stoppedBy ??= signal;
}

async function runHooks(hooks: (() => unknown)[], log: SignalLog): Promise<void> {
  const results = await Promise.allSettled(hooks.map(async (hook) => await hook()));
  for (const r of results) if (r.status === "rejected") log(`hook failed: ${(r.reason as Error)?.stack ?? r.reason}`, "error");
}

/**
 * Installs the daemon's handlers: SIGTERM and SIGINT run the `onShutdown` hooks, then exit 0 (unless the
 * entry added its own listener for that signal: then, as in Node, the entry decides when to exit);
 * SIGHUP runs the `onReload` hooks instead of killing the process; SIGURG (and SIGUSR1 on Bun) reopens
 * `logFile` onto stdout and stderr (after logrotate moved it), or is ignored when there is no log file. systemd hears of stops and
 * reloads when it listens.
 *
 * @example
 * ```ts ignore
 * handleSignals(runnerLog, { logFile: "/var/log/app.log" });
 * ```
 */
export function handleSignals(log: SignalLog, options: { logFile?: string; systemd?: Notifier } = {}): void {
  const { logFile, systemd } = options;
  const life = lifecycle();
  let stopping = false;
  const stop = async (signal: "SIGTERM" | "SIGINT") => {
    if (stopping) return;
    stopping = true;
    noteStopSignal(signal);
    log(`${signal} received: shutting down`);
    systemd?.notify("STOPPING=1");
    await runHooks(life.shutdown, log);
    if (process.listenerCount(signal) <= 1) process.exit(0);
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
  process.on("SIGHUP", async () => {
    log(life.reload.length ? "SIGHUP received: reloading" : "SIGHUP received: no onReload hook registered, nothing to do");
    systemd?.notify("RELOADING=1");
    await runHooks(life.reload, log);
    systemd?.notify("READY=1");
  });
  for (const signal of RUNTIME.reopenSignals) {
    process.on(signal, () => {
      if (logFile) reopenLogs(logFile);
      else log(`${signal} received: no --log-file, nothing to reopen`, "debug");
    });
  }
}

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

function send(libc: Libc, pidfd: number, pid: number, signal: number): void {
  try {
    libc.pidfdSignal(pidfd, signal);
  } catch (err) {
    if (err instanceof SystemCallError && err.code === "EPERM") {
      throw new DaemonError("NO_PERMISSION", `Cannot signal pid ${pid}: not permitted: run as the daemon's user or root`, { pid, cause: err });
    }
    if (!(err instanceof SystemCallError && err.code === "ESRCH")) throw err;
  }
}

/**
 * Sends `signal` to the daemon holding `pidFile`'s lock. Returns its pid, or `null` when none runs.
 *
 * @example
 * ```ts ignore
 * signalDaemon("/run/app.pid", SIG.HUP);
 * ```
 */
export function signalDaemon(pidFile: string, signal: number, libc: Libc = systemLibc): number | null {
  const holder = openHolder(pidFile, libc);
  if (!holder) return null;
  try {
    send(libc, holder.pidfd, holder.pid, signal);
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
 * ```ts ignore
 * const { pid, killed } = stopDaemon("/run/app.pid", 10_000);
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
    const { pid, pidfd } = holder;
    first ??= pid;
    const tree = daemonTree(pid); // read before the stop: once the daemon is gone, its children are orphans
    if (tree) trees.push(tree);
    try {
      send(libc, pidfd, pid, SIG.TERM);
      if (!libc.waitReadable(pidfd, timeoutMs)) {
        killed = true;
        send(libc, pidfd, pid, SIG.KILL);
        libc.waitReadable(pidfd, 5000);
      }
    } finally {
      libc.close(pidfd);
    }
  }
  for (const tree of trees) endTree(tree, timeoutMs);
  return { pid: first, killed, removedStale: removeStalePidFile(pidFile, libc) };
}

function signalAll(pids: number[], signal: number): void {
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch {
      // exited meanwhile
    }
  }
}

/** What the daemon left of its tree gets the same escalation: SIGTERM, up to `timeoutMs`, then SIGKILL. */
function endTree(tree: DaemonTree, timeoutMs: number): void {
  const deadline = Date.now() + timeoutMs;
  let left = treeMembers(tree);
  signalAll(left, SIG.TERM);
  while (left.length && Date.now() < deadline) {
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
    const now = treeMembers(tree);
    signalAll(now.filter((p) => !left.includes(p)), SIG.TERM); // started meanwhile (a shell's next job)
    left = now;
  }
  for (let tries = 0; left.length && tries < 100; tries++, left = treeMembers(tree)) {
    signalAll(left, SIG.KILL);
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
  }
}
