/**
 * A running daemon seen from outside, for `--list` and `--status --json`: its processes (the daemon, or its
 * supervising master and the workers of its worker table), their memory and CPU from /proc, the TCP ports
 * they listen on, the restarts the master counted, and how it was started (from its registry entry).
 *
 * @module
 */
import { host } from "../ffi/_host.ts";
import { socketsOf } from "./worker/port_owner.ts";
import { foregroundTableFile, type RegistryEntry } from "./registry.ts";
import type { Command } from "./stage.ts";
import { readWorkerTable, workerTableFile } from "./master/worker_handle.ts";

/** One daemon as `--list --json` prints it (the schema is documented in the README, "Overview"). */
export interface Overview {
  name: string;
  /** The supervising process (the pid file's), or the last one recorded when stale. */
  pid: number;
  status: "running" | "stale";
  pidFile: string;
  /** ms since the epoch; `uptime` in seconds. */
  startedAt: number;
  uptime: number;
  /** Restarts of the entry's processes by the master since the start. */
  restarts: number;
  /** Processes running the entry under the master (0: the entry runs in the daemon itself). */
  workers: number;
  /** Resident memory of the daemon and its workers, bytes. */
  rss: number;
  /** CPU time of those processes over the daemon's uptime, in percent of one core. */
  cpu: number;
  /** TCP ports they listen on. */
  ports: number[];
  logFile: string | null;
  exe: string;
  command: Command | null;
  /** Entry arguments and settings as started (see stage.ts DaemonSettings), or null when not recorded. */
  settings: RegistryEntry["settings"] | null;
  /** Only while worker slots wait out a crash-loop backoff: each slot, its crashes in a row and when it restarts. */
  crashLoop?: { worker: number; crashes: number; restartAt: number }[];
}

/** USER_HZ: the unit of utime and stime in /proc/PID/stat, 100 on every Linux architecture daemonic runs on. */
const TICKS_PER_SECOND = 100;

/** VmRSS of `pid` in bytes; 0 when it is gone. */
export function rssBytes(pid: number): number {
  try {
    const line = host.readText(`/proc/${pid}/status`).split("\n").find((l) => l.startsWith("VmRSS:"));
    return line ? parseInt(line.slice(6), 10) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** User and system CPU seconds of `pid`; 0 when it is gone. */
export function cpuSeconds(pid: number): number {
  try {
    const stat = host.readText(`/proc/${pid}/stat`);
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" "); // after the comm, which may hold spaces
    return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND; // utime, stime
  } catch {
    return 0;
  }
}

/** The TCP ports (LISTEN) of sockets `pids` hold, from their network namespace's tables. */
function listeningPorts(pids: number[]): number[] {
  const inodes = new Set(pids.flatMap((pid) => [...socketsOf(pid)]));
  const ports = new Set<number>();
  for (const table of ["tcp", "tcp6"]) {
    let text = "";
    try {
      text = host.readText(`/proc/${pids[0]}/net/${table}`);
    } catch {
      continue;
    }
    for (const f of text.split("\n").slice(1).map((l) => l.trim().split(/\s+/))) {
      if (f[3] === "0A" && inodes.has(f[9])) ports.add(parseInt(f[1].split(":")[1], 16));
    }
  }
  return [...ports].sort((a, b) => a - b);
}

/**
 * The overview of the daemon of registry `entry`; `stale` for an entry whose daemon is gone.
 *
 * @example
 * ```ts
 * import process from "node:process";
 * import { overview } from "./overview.ts";
 * const me = {
 *   pidFile: "/nonexistent/app.pid",
 *   name: "app",
 *   pid: process.pid,
 *   exe: process.execPath,
 *   startedAt: Date.now(),
 * };
 * console.log(overview(me, "running").workers); // 0: no worker table beside that pid file
 * ```
 */
export function overview(entry: RegistryEntry, status: Overview["status"], now = Date.now()): Overview {
  const table = status === "running"
    ? readWorkerTable(entry.foreground ? foregroundTableFile(entry.pidFile) : workerTableFile(entry.pidFile))
    : null;
  const workers = table?.master === entry.pid ? table.workers : [];
  const pids = status === "running" ? [entry.pid, ...workers.map((w) => w.pid)] : [];
  const uptime = Math.max(0, (now - entry.startedAt) / 1000);
  const cpu = pids.reduce((sum, pid) => sum + cpuSeconds(pid), 0);
  return {
    name: entry.name,
    pid: entry.pid,
    status,
    pidFile: entry.pidFile,
    startedAt: entry.startedAt,
    uptime: Math.round(uptime),
    restarts: workers.reduce((sum, w) => sum + w.restarts, 0),
    workers: workers.length,
    rss: pids.reduce((sum, pid) => sum + rssBytes(pid), 0),
    cpu: uptime > 0 ? Math.round((cpu / uptime) * 1000) / 10 : 0,
    ports: pids.length ? listeningPorts(pids) : [],
    logFile: entry.settings?.logFile ?? null,
    exe: entry.exe,
    command: entry.command ?? null,
    settings: entry.settings ?? null,
    ...(table?.master === entry.pid && table.crashLoop?.length
      ? { crashLoop: table.crashLoop.map((s) => ({ worker: s.id, crashes: s.crashes, restartAt: s.retryAt })) }
      : {}),
  };
}
