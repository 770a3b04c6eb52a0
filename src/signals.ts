/**
 * Signals: the numbers daemonic sends, how an exit status reads, and the handlers a process running the
 * entry (a daemon, a foreground run) installs: TERM/INT stop, HUP reload, the reopen signal.
 *
 * @module
 */
import { host } from "../ffi/_host.ts";
import { RUNTIME } from "./_runtime.ts";
import { lifecycle } from "./lifecycle.ts";
import type { Notifier } from "./notify.ts";
import { reopenLogs } from "./log/rotate.ts";
import type { LogLevel } from "./log/lines.ts";

/** Signal numbers daemonic sends (Linux). */
export const SIG = { HUP: 1, INT: 2, QUIT: 3, KILL: 9, USR1: 10, USR2: 12, TERM: 15, URG: 23 } as const;

/** The signal `--reopen-logs` and `--hold-logs` send: its default action is "ignore", so a stray one never kills. */
export const REOPEN = SIG.URG;

/**
 * How a wait status reads in a log line: "exited with code 3", "was killed by signal 9".
 *
 * @example
 * ```ts
 * import { describeExit } from "./signals.ts";
 * console.log(describeExit(9)); // was killed by signal 9
 * ```
 */
export function describeExit(status: number | null): string {
  if (status === null) return "exited";
  const signal = status & 0x7f;
  return signal ? `was killed by signal ${signal}` : `exited with code ${(status >> 8) & 0xff}`;
}

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
  for (const r of results) {
    if (r.status === "rejected") log(`hook failed: ${(r.reason as Error)?.stack ?? r.reason}`, "error");
  }
}

/** Ends a stop that outlasts `--timeout` (a hook that hangs) before the platform's SIGKILL would: exit 1, said why. */
function boundShutdown(seconds: number, log: SignalLog): void {
  host.timer(seconds * 1000, () => {
    log(`shutdown not finished after --timeout ${seconds} s: exiting`, "error");
    host.exit(1);
  }, { unref: true });
}

/**
 * Installs the daemon's handlers: SIGTERM and SIGINT run the `onShutdown` hooks, then exit 0 (unless the
 * entry added its own listener for that signal: then, as in Node, the entry decides when to exit);
 * SIGHUP runs the `onReload` hooks instead of killing the process; SIGURG (and SIGUSR1 on Bun) reopens
 * `logFile` onto stdout and stderr (after logrotate moved it), or is ignored when there is no log file. systemd hears
 * of stops and reloads when it listens. With `timeout`, a stop whose hooks (or the entry's own handler) run longer ends
 * with exit 1.
 *
 * @example
 * ```ts ignore
 * // ignore: it installs SIGTERM/SIGINT handlers that exit this process
 * import { handleSignals } from "./signals.ts";
 * import { runnerLog } from "./log/lines.ts";
 * handleSignals(runnerLog, { logFile: "/var/log/app.log" });
 * ```
 */
export function handleSignals(
  log: SignalLog,
  options: { logFile?: string; systemd?: Notifier; timeout?: number } = {},
): void {
  const { logFile, systemd, timeout } = options;
  const life = lifecycle();
  let stopping = false;
  const stop = async (signal: "SIGTERM" | "SIGINT") => {
    if (stopping) return;
    stopping = true;
    noteStopSignal(signal);
    log(`${signal} received: shutting down`);
    systemd?.notify("STOPPING=1");
    if (timeout !== undefined) boundShutdown(timeout, log);
    await runHooks(life.shutdown, log);
    if (host.signalListeners(signal) <= 1) host.exit(0);
  };
  host.onSignal("SIGTERM", () => stop("SIGTERM"));
  host.onSignal("SIGINT", () => stop("SIGINT"));
  host.onSignal("SIGHUP", async () => {
    log(
      life.reload.length ? "SIGHUP received: reloading" : "SIGHUP received: no onReload hook registered, nothing to do",
    );
    systemd?.notify("RELOADING=1");
    await runHooks(life.reload, log);
    systemd?.notify("READY=1");
  });
  for (const signal of RUNTIME.reopenSignals) {
    host.onSignal(signal, () => {
      if (logFile) reopenLogs(logFile);
      else log(`${signal} received: no --log-file, nothing to reopen`, "debug");
    });
  }
}
