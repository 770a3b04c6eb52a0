/**
 * A daemon's process tree, read from /proc: its session and its descendants, so `--stop` can end the
 * processes the entry started (a `sleep`, a shell's background job, a child server) and not only the daemon.
 *
 * @module
 */
import { host } from "../ffi/_host.ts";
import { runnerLog } from "./log/lines.ts";

/** One process as /proc shows it. */
export interface ProcessInfo {
  pid: number;
  ppid: number;
  session: number;
  /** R, S, D, Z, … */
  state: string;
  /** Clock ticks after boot: with the pid, it names one process even if the pid is reused. */
  startTime: number;
  uid: number;
}

/** /proc/PID/stat and the owner of /proc/PID, or `null` when the process is gone. */
export function processInfo(pid: number): ProcessInfo | null {
  try {
    const text = host.readText(`/proc/${pid}/stat`);
    const f = text.slice(text.lastIndexOf(")") + 2).split(" "); // fields from 3 (state) on
    return { pid, ppid: +f[1], session: +f[3], state: f[0], startTime: +f[19], uid: host.stat(`/proc/${pid}`).uid };
  } catch {
    return null;
  }
}

/** Every process, zombies included. */
export function allProcesses(): ProcessInfo[] {
  return host.readDir("/proc").filter((name) => /^\d+$/.test(name)).map((name) => processInfo(+name)).filter((p) =>
    p !== null
  );
}

/** Pids of this process's children, on every thread (an orphan is re-parented to one thread of a subreaper). */
export function ownChildren(): number[] {
  const pids: number[] = [];
  for (const task of host.readDir("/proc/self/task")) {
    try {
      pids.push(
        ...host.readText(`/proc/self/task/${task}/children`).trim().split(/\s+/).filter(Boolean).map(Number),
      );
    } catch {
      // thread gone
    }
  }
  return pids;
}

/** What `--stop` may end besides the daemon: see {@linkcode daemonTree}. */
export interface DaemonTree {
  /** The daemon's session, when it may be swept (its leader is gone or is the daemon); else `null`. */
  session: number | null;
  uid: number;
  /** The daemon's descendants when the stop began (pid and start time). */
  descendants: Map<number, number>;
}

/**
 * The tree of `pid`: its descendants now, and its session when no one else leads it (the daemon's /bin/sh
 * has exited), so a daemon started in a terminal's session never gets that session swept.
 */
export function daemonTree(pid: number): DaemonTree | null {
  const self = processInfo(pid);
  if (!self) return null;
  const all = allProcesses();
  const leader = all.find((p) => p.pid === self.session);
  const ours = processInfo(host.pid())?.session;
  const sweepable = self.session !== ours && (self.session === pid || !leader || leader.session !== self.session);
  const descendants = new Map<number, number>();
  for (let grew = true; grew;) {
    grew = false;
    for (const p of all) {
      if (!descendants.has(p.pid) && (p.ppid === pid || descendants.has(p.ppid))) {
        descendants.set(p.pid, p.startTime);
        grew = true;
      }
    }
  }
  // A controller started from inside the tree (the entry running `--restart`) spares itself and its callers.
  for (let p = all.find((q) => q.pid === host.pid()); p; p = all.find((q) => q.pid === p!.ppid)) {
    descendants.delete(p.pid);
  }
  return { session: sweepable ? self.session : null, uid: self.uid, descendants };
}

/** The live processes of `tree` (same uid as the daemon, never this process). */
export function treeMembers(tree: DaemonTree): number[] {
  return allProcesses().filter((p) =>
    p.uid === tree.uid && p.pid !== host.pid() && p.state !== "Z" &&
    (p.session === tree.session || tree.descendants.get(p.pid) === p.startTime)
  ).map((p) => p.pid);
}

/**
 * Makes this process the subreaper of its descendants (PR_SET_CHILD_SUBREAPER), so the orphans of the
 * entry's children come back to it, in the daemon's tree; where the kernel (or qemu-user) refuses, says so
 * in the log and goes on: they go to init then.
 */
export function becomeSubreaper(libc: { setChildSubreaper(): void }): void {
  try {
    libc.setChildSubreaper();
  } catch (err) {
    runnerLog(
      `master: not a subreaper (${(err as Error).message}): orphans of the entry's children go to init`,
      "warning",
    );
  }
}
