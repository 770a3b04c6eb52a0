/**
 * `--max-memory`: a worker's resident memory (VmRSS in /proc/PID/status), checked once a second; one that
 * stays above the limit for three checks in a row is due for a graceful replacement (the master's loop
 * starts its successor first, then retires it). One check above is a spike, not a leak.
 *
 * @module
 */
import { host } from "../../ffi/_host.ts";
import { runnerLog } from "../log/lines.ts";
import type { Worker } from "./worker_handle.ts";

/** Consecutive checks above the limit before a worker is replaced. */
const CHECKS = 3;
const CHECK_EVERY_MS = 1000;

/**
 * A size as the log shows it: whole megabytes (MiB).
 *
 * @example
 * ```ts
 * import { megabytes } from "./memory_limit.ts";
 * console.log(megabytes(83886080)); // 80 MB
 * ```
 */
export function megabytes(bytes: number): string {
  return `${Math.round(bytes / 1024 ** 2)} MB`;
}

/**
 * The resident set size of `pid` in bytes, or `undefined` when it is gone.
 *
 * @example
 * ```ts
 * import { rssOf } from "./memory_limit.ts";
 * import process from "node:process";
 * console.log(rssOf(process.pid)! > 0); // true
 * ```
 */
export function rssOf(pid: number): number | undefined {
  try {
    const kB = /^VmRSS:\s+(\d+) kB/m.exec(host.readText(`/proc/${pid}/status`))?.[1];
    return kB === undefined ? undefined : Number(kB) * 1024;
  } catch {
    return undefined;
  }
}

/** Counts, per pid, the checks in a row its RSS was above `limit` bytes. */
export class MemoryWatch {
  private readonly over = new Map<number, number>();
  private nextCheck = 0;
  constructor(readonly limit: number) {}

  /**
   * The pids among `pids` above the limit for three checks in a row, with their RSS; checks at most once a
   * second (an empty list in between).
   *
   * @example
   * ```ts
   * import { MemoryWatch } from "./memory_limit.ts";
   * import process from "node:process";
   * const watch = new MemoryWatch(1024); // 1 kB: any process is above it
   * console.log(watch.due([process.pid], 0), watch.due([process.pid], 1000)); // [] []
   * console.log(watch.due([process.pid], 2000).length); // 1
   * ```
   */
  due(pids: readonly number[], now = Date.now()): { pid: number; rss: number }[] {
    if (now < this.nextCheck) return [];
    this.nextCheck = now + CHECK_EVERY_MS;
    const due: { pid: number; rss: number }[] = [];
    for (const pid of [...this.over.keys()]) if (!pids.includes(pid)) this.over.delete(pid);
    for (const pid of pids) {
      const rss = rssOf(pid) ?? 0;
      const checks = rss > this.limit ? (this.over.get(pid) ?? 0) + 1 : 0;
      this.over.set(pid, checks);
      if (checks >= CHECKS) {
        due.push({ pid, rss });
        this.over.delete(pid);
      }
    }
    return due;
  }
}

/** The master's check: each ready worker above the limit for long enough is marked for replacement (its
 * successor starts first, see roles/master.ts maintainWorkerCount), with the figure in the log. */
export function markBloated(watch: MemoryWatch, workers: Worker[]): void {
  const watched = workers.filter((w) => w.ready && !w.retireBy && !w.replace);
  for (const { pid, rss } of watch.due(watched.map((w) => w.pid))) {
    const w = watched.find((w) => w.pid === pid)!;
    w.replace = true;
    runnerLog(
      `master: worker[${w.id}] (pid ${pid}) RSS ${megabytes(rss)} above --max-memory ${
        megabytes(watch.limit)
      } for 3 s: replacing it`,
      "warning",
    );
  }
}
