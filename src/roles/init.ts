/**
 * The runner as PID 1 (a container's first process), tini's way: the kernel re-parents every orphan of the
 * namespace to PID 1 and nothing else reaps them, while Bun and Deno wait only for their own children (and
 * break if someone else reaps those). So PID 1 becomes a tiny init: it starts the same command line again as
 * its only child (which, not being PID 1, runs the entry), forwards signals to it, reaps every child that
 * exits, and exits as the child did (128 + the signal when it was killed). A platform stops a container
 * with SIGTERM and means "gracefully": to a master of `--workers`, whose TERM is Unicorn's quick stop, init
 * passes it on as QUIT (drain, then each worker's onShutdown hooks, bounded by `--timeout`).
 *
 * @module
 */
import { host, type SignalName, type Timer } from "../../ffi/_host.ts";
import { type Libc, libc as systemLibc } from "../../ffi/mod.ts";
import { ignoreInspectorSignal, RUNTIME, selfCommand } from "../_runtime.ts";
import { runnerLog } from "../log/lines.ts";

/** What init passes on to its child: stops, reloads, Unicorn's worker signals, terminal resizes. */
const FORWARDED = {
  SIGHUP: 1,
  SIGINT: 2,
  SIGQUIT: 3,
  SIGUSR1: 10,
  SIGUSR2: 12,
  SIGALRM: 14,
  SIGTERM: 15,
  SIGCONT: 18,
  SIGTSTP: 20,
  SIGTTIN: 21,
  SIGTTOU: 22,
  SIGURG: 23,
  SIGWINCH: 28,
} as const;

/** The exit code of a shell for a wait status: the code, or 128 + the signal that killed it. */
export function exitCodeOf(status: number): number {
  const signal = status & 0x7f;
  return signal ? 128 + signal : (status >> 8) & 0xff;
}

function killChild(pidfd: number, timeout: number, libc: Libc): void {
  runnerLog(`init: still stopping ${timeout + 2} s after the stop signal (--timeout ${timeout}): killing it`, "error");
  try {
    libc.pidfdSignal(pidfd, 9);
  } catch {
    // Gone meanwhile.
  }
}

/**
 * Runs init: starts this command line again as its child and never returns; exits when the child does.
 * `stop.master`: the child is a master of workers (SIGTERM goes to it as SIGQUIT); `stop.timeout`: its
 * `--timeout`, after which (and 2 s more) a child still stopping is killed.
 *
 * @example
 * ```ts ignore
 * // ignore: it re-runs this command line as its child (test/process_tree.test.ts runs it as PID 1)
 * import { serveInit } from "./init.ts";
 * if (process.pid === 1) serveInit();
 * ```
 */
export function serveInit(
  stop: { master: boolean; timeout: number } = { master: false, timeout: 10 },
  libc: Libc = systemLibc,
): void {
  const self = selfCommand();
  const child = libc.spawn({
    path: self.path,
    argv: [self.path, ...self.args],
    env: host.environ,
    fds: [0, 1, 2],
    cwd: self.cwd,
  });
  const pidfd = libc.pidfdOpen(child);
  ignoreInspectorSignal(libc);
  let killAt: Timer | undefined;
  for (const [name, number] of Object.entries(FORWARDED)) {
    if (name === "SIGUSR1" && !RUNTIME.usr1IsSafe) continue; // listening would open Deno's debugger
    host.onSignal(name as SignalName, () => {
      // A child whose event loop is blocked never ends its own stop: killed a little after its --timeout.
      if (number === FORWARDED.SIGTERM || number === FORWARDED.SIGINT) {
        killAt ??= host.timer((stop.timeout + 2) * 1000, () => killChild(pidfd, stop.timeout, libc));
      }
      try {
        libc.pidfdSignal(pidfd, stop.master && number === FORWARDED.SIGTERM ? FORWARDED.SIGQUIT : number);
      } catch {
        // The child has exited; the next reap ends us.
      }
    });
  }
  // Orphans come and go at any time: reap them all on a timer (the child among them).
  host.timer(50, () => {
    for (let reaped; (reaped = libc.reapAny());) {
      if (reaped.pid === child) host.exit(exitCodeOf(reaped.status));
    }
  }, { repeat: true });
}
