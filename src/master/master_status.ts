/**
 * What a master tells the outside while it runs: the worker table beside the pid file (`--status`, `--list`)
 * and, in it, the outcome of the last `--reload` and `--upgrade`, which those commands wait for.
 *
 * @module
 */
import { type Backoff, waitingSlots } from "./crash_loop.ts";
import { runnerLog } from "../log/lines.ts";
import type { Notifier } from "../notify.ts";
import type { PidFile } from "../pidfile.ts";
import type { MigrationMode } from "../worker/reuseport_migrate.ts";
import type { Supervision } from "../supervision.ts";
import { type Outcome, type Worker, workerTableFile, writeWorkerTable } from "./worker_handle.ts";

/** The part of the master's state its table is written from. */
export interface MasterStatus {
  policy: Supervision;
  stage: { logTimestamps: boolean; command: { path: string } };
  daemon: { pidFile?: PidFile; systemd: Notifier; tableFile?: string };
  workers: Worker[];
  target: number; // how many workers are wanted (TTIN/TTOU change it)
  backoff: Map<number, Backoff>; // crashes in a row per slot, and when it may start again (crash_loop.ts)
  restarts: Map<number, number>;
  starting: boolean;
  stopping?: unknown;
  migration: MigrationMode; // how a retiring worker's queue survives (reuseport_migrate.ts), for --status
  statusFile?: string; // the worker table for --status: beside the pid file, when there is one
  reloading?: { since: number; pids: number[] }; // a HUP's rolling restart under way: when, and whom it replaces
  outcomes: { reload?: Outcome; upgrade?: Outcome }; // the last of each, for --reload and --upgrade
}

/** Every worker was replaced by a ready successor (the old ones drain): one line saying what, the new pids and how
 * long. */
export function reloaded(m: MasterStatus): void {
  if (!m.reloading) return;
  const { since, pids } = m.reloading;
  m.reloading = undefined;
  const now = m.workers.filter((w) => !w.retireBy).map((w) => w.pid);
  const what = m.policy.kind === "keep-alive" ? "the entry's process" : `${now.length} workers`;
  const seconds = ((Date.now() - since) / 1000).toFixed(1);
  outcome(
    m,
    "reload",
    true,
    `reloaded: ${what} (pid ${pids.join(", ")} → ${
      now.join(", ")
    }) started again from disk, successor first, in ${seconds} s; the old ${
      pids.length > 1 ? "ones drain" : "one drains"
    }`,
  );
}

/** Records what a --reload or --upgrade did, in the log and in the worker table (where the controller waits). */
export function outcome(m: MasterStatus, kind: "reload" | "upgrade", ok: boolean, line: string): void {
  runnerLog(`master: ${line}`, ok ? "info" : "error");
  m.outcomes[kind] = { count: (m.outcomes[kind]?.count ?? 0) + 1, ok, line };
  writeStatus(m);
  if (kind === "reload") m.daemon.systemd.notify("READY=1"); // after RELOADING=1 at the HUP: the reload is over
}

/** The worker table follows the pid file (to `.oldbin` and back). */
export function moveStatus(m: MasterStatus): void {
  if (m.statusFile) writeWorkerTable(m.statusFile, null);
  m.statusFile = m.daemon.pidFile ? workerTableFile(m.daemon.pidFile.path) : m.daemon.tableFile;
  writeStatus(m);
}

/** Writes the worker table, once every worker is ready: a failed start leaves none. */
export function writeStatus(m: MasterStatus): void {
  if (m.stopping || m.starting || !m.statusFile) return;
  const rows = m.workers.filter((w) => !w.retireBy).map((w) => ({
    id: w.id,
    pid: w.pid,
    startedAt: w.startedAt,
    restarts: m.restarts.get(w.id) ?? 0,
  }));
  const crashLoop = waitingSlots(m.backoff, m.target, m.workers, Date.now()), relayed = m.stage.logTimestamps;
  const error = writeWorkerTable(m.statusFile, rows, { migration: m.migration, relayed, crashLoop, ...m.outcomes });
  if (error) runnerLog(`master: cannot write ${m.statusFile}: ${error}`);
}
