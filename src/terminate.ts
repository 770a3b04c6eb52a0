/**
 * TERM → wait → KILL, written once: for one process through its pidfd (a recycled pid is never signalled),
 * and for what a daemon leaves of its tree. Every stop in daemonic goes through here.
 *
 * @module
 */
import { host } from "../ffi/_host.ts";
import { type Libc, libc as systemLibc, SystemCallError } from "../ffi/mod.ts";
import { DaemonError } from "./errors.ts";
import { type DaemonTree, treeMembers } from "./process_tree.ts";

const TERM = 15, KILL = 9;

/**
 * Sends `signal` through `pidfd`; a process already gone is fine, one we may not signal is a DaemonError
 * (NO_PERMISSION, exit 77) naming the fix.
 *
 * @example
 * ```ts
 * import { sendSignal } from "./terminate.ts";
 * import { libc } from "../ffi/mod.ts";
 * import { spawn } from "node:child_process";
 * const child = spawn("sleep", ["10"]);
 * const pidfd = libc.pidfdOpen(child.pid!);
 * sendSignal(pidfd, child.pid!, 15); // SIGTERM, to exactly that process
 * libc.close(pidfd);
 * ```
 */
export function sendSignal(pidfd: number, pid: number, signal: number, libc: Libc = systemLibc): void {
  try {
    libc.pidfdSignal(pidfd, signal);
  } catch (err) {
    if (err instanceof SystemCallError && err.code === "EPERM") {
      throw new DaemonError(
        "NO_PERMISSION",
        `Cannot signal pid ${pid}: not permitted: run as the daemon's user or root`,
        { pid, cause: err },
      );
    }
    if (!(err instanceof SystemCallError && err.code === "ESRCH")) throw err;
  }
}

/**
 * Ends the process behind `pidfd`: SIGTERM, up to `graceMs` for it to exit (the pidfd wakes us the moment it
 * does), then SIGKILL and up to 5 s more. With `waitFirstMs`, first gives it that long to exit by itself.
 * Returns whether SIGKILL was needed.
 *
 * @example
 * ```ts
 * import { terminate } from "./terminate.ts";
 * import { libc } from "../ffi/mod.ts";
 * import { spawn } from "node:child_process";
 * const child = spawn("sleep", ["10"]);
 * const pidfd = libc.pidfdOpen(child.pid!);
 * console.log(terminate(pidfd, child.pid!, 1000)); // false: SIGTERM was enough
 * libc.close(pidfd);
 * ```
 */
export function terminate(
  pidfd: number,
  pid: number,
  graceMs: number,
  options: { waitFirstMs?: number } = {},
  libc: Libc = systemLibc,
): boolean {
  if (options.waitFirstMs && libc.waitReadable(pidfd, options.waitFirstMs)) return false;
  sendSignal(pidfd, pid, TERM, libc);
  if (libc.waitReadable(pidfd, graceMs)) return false;
  sendSignal(pidfd, pid, KILL, libc);
  libc.waitReadable(pidfd, 5000);
  return true;
}

function signalAll(pids: number[], signal: number): void {
  for (const pid of pids) {
    try {
      host.kill(pid, signal);
    } catch {
      // exited meanwhile
    }
  }
}

/**
 * What a daemon left of its tree (see process_tree.ts) gets the same escalation: SIGTERM, up to `graceMs`
 * (signalling any newcomer too: a shell's next job), then SIGKILL until none is left.
 *
 * @example
 * ```ts ignore
 * // ignore: it needs a daemon whose tree to end (test/process_tree.test.ts starts one)
 * import { terminateTree } from "./terminate.ts";
 * import { daemonTree } from "./process_tree.ts";
 * const tree = daemonTree(4242); // read before the daemon is stopped
 * if (tree) terminateTree(tree, 10_000);
 * ```
 */
export function terminateTree(tree: DaemonTree, graceMs: number): void {
  const deadline = Date.now() + graceMs;
  let left = treeMembers(tree);
  signalAll(left, TERM);
  while (left.length && Date.now() < deadline) {
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
    const now = treeMembers(tree);
    signalAll(now.filter((p) => !left.includes(p)), TERM);
    left = now;
  }
  for (let tries = 0; left.length && tries < 100; tries++, left = treeMembers(tree)) {
    signalAll(left, KILL);
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
  }
}
