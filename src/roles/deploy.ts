/**
 * The controller's `--reload` and `--upgrade`: a new version deployed with one command. It signals the daemon
 * (HUP, USR2) and, where a master supervises the entry, waits for the outcome the master writes into its worker
 * table: one line saying what was replaced, the new pids and how long it took — or why not, with exit 69 and
 * the old version still serving.
 *
 * @module
 */
import { host } from "../../ffi/_host.ts";
import { DaemonError } from "../errors.ts";
import type { RunnerOptions } from "../cli/options.ts";
import { readPidFile } from "../pidfile.ts";
import { findRegistered } from "../registry.ts";
import { SIG } from "../signals.ts";
import { supervisionOf } from "../supervision.ts";
import { type Outcome, readWorkerTable, type WorkerTable, workerTableFile } from "../master/worker_handle.ts";
import { signalRunning } from "./control.ts";

const POLL_MS = 20;

function sleep(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Whether `pid` runs (a zombie, exited but not yet reaped, does not). */
function alive(pid: number): boolean {
  try {
    return host.readText(`/proc/${pid}/stat`).split(") ").pop()![0] !== "Z";
  } catch {
    return false;
  }
}

/** The table of the master holding `pidFile` (or its `.oldbin` during an upgrade), when `master` wrote it. */
function tableOf(pidFile: string, master?: number): WorkerTable | null {
  for (const path of [pidFile, `${pidFile}.oldbin`]) {
    const table = readWorkerTable(workerTableFile(path));
    if (table && (master === undefined || table.master === master)) return table;
  }
  return null;
}

/** Whether the daemon holding the pid file is a master (keep-alive's supervisor, or of workers), and its
 * settings as remembered, when they are. */
function supervisor(opts: RunnerOptions): { master?: number; settings?: { startTimeout: number; timeout: number } } {
  const state = readPidFile(opts.pidFile);
  if (state.state !== "running") return {};
  const settings = findRegistered(opts.pidFile)?.settings;
  const master = tableOf(opts.pidFile, state.pid) || (settings && supervisionOf(settings).reload === "rolling restart")
    ? state.pid
    : undefined;
  return { master, settings };
}

/** Waits until `read` gives an outcome newer than `count`; throws once `pid` is gone or the bound passed. */
function awaitOutcome(
  opts: RunnerOptions,
  what: string,
  pid: number,
  boundMs: number,
  read: () => Outcome | "done" | undefined,
): Outcome | "done" {
  const deadline = Date.now() + boundMs;
  for (;;) {
    const seen = read();
    if (seen) return seen;
    if (!alive(pid)) {
      throw new DaemonError("START_FAILED", `Cannot ${what}: ${opts.name} (pid ${pid}) exited meanwhile: see its log`);
    }
    if (Date.now() > deadline) {
      throw new DaemonError(
        "START_FAILED",
        `Cannot tell whether the ${what} of ${opts.name} finished within ${boundMs / 1000} s: see its log`,
      );
    }
    sleep(POLL_MS);
  }
}

/** Without the master's table beside the pid file (its directory removed, or the master still starting) the
 * outcome cannot be waited for: says where it will be. */
function unseen(opts: RunnerOptions, pid: number, what: string): void {
  console.log(
    `${opts.name}: signalled pid ${pid} to ${what}; its worker table ${
      workerTableFile(opts.pidFile)
    } is missing, so the outcome is in its log only`,
  );
}

/** Prints a master's outcome line; a failure ends the command with exit 69. */
function report(opts: RunnerOptions, outcome: Outcome): void {
  if (!outcome.ok) throw new DaemonError("START_FAILED", `${opts.name}: ${outcome.line}`);
  console.log(`${opts.name}: ${outcome.line}`);
}

/**
 * `--reload`: under a master, a rolling restart from the executable (or entry) on disk, successor first; waits
 * for it and says what it did. One process (`--no-keep-alive`): HUP runs the entry's onReload hooks in place.
 */
export function reload(opts: RunnerOptions): void {
  const { master, settings } = supervisor(opts);
  const before = master ? tableOf(opts.pidFile, master) : null;
  const pid = signalRunning(opts, SIG.HUP, "reload", "start it with --daemon");
  if (pid !== master) {
    console.log(
      `${opts.name}: sent SIGHUP to pid ${pid}: one process (--no-keep-alive) runs its onReload hooks in place; for ` +
        `the code on disk, --restart`,
    );
    return;
  }
  if (!before) return unseen(opts, pid, "reload");
  const copies = Math.max(1, before?.workers.length ?? 1);
  const bound = copies * ((settings?.startTimeout ?? opts.startTimeout) + (settings?.timeout ?? opts.timeout)) * 1000 +
    5000;
  const count = before?.reload?.count ?? 0;
  report(
    opts,
    awaitOutcome(opts, "reload", pid, bound, () => {
      const outcome = tableOf(opts.pidFile, pid)?.reload;
      return outcome && outcome.count > count ? outcome : undefined;
    }) as Outcome,
  );
}

/**
 * `--upgrade`: USR2 to the master, which starts the executable on disk as a new master beside itself; waits
 * until the new one is ready (its worker table is written) or the old one reports the failure.
 */
export function upgrade(opts: RunnerOptions): void {
  const { master, settings } = supervisor(opts);
  if (master === undefined && readPidFile(opts.pidFile).state === "running") {
    throw new DaemonError(
      "USAGE",
      `Cannot upgrade ${opts.name}: it runs the entry in one process (--no-keep-alive), with no master to start the ` +
        `new one beside it: use --restart`,
    );
  }
  const before = master ? tableOf(opts.pidFile, master) : null;
  const count = before?.upgrade?.count ?? 0;
  const since = Date.now();
  const old = signalRunning(opts, SIG.USR2, "upgrade", "start it with --daemon");
  if (!before) return unseen(opts, old, "upgrade");
  const bound = ((settings?.startTimeout ?? opts.startTimeout) + 10) * 1000;
  const seen = awaitOutcome(opts, "upgrade", old, bound, () => {
    const outcome = tableOf(opts.pidFile, old)?.upgrade;
    if (outcome && outcome.count > count) return outcome;
    const table = readWorkerTable(workerTableFile(opts.pidFile)), state = readPidFile(opts.pidFile);
    return table && table.master !== old && state.state === "running" && state.pid === table.master
      ? "done"
      : undefined;
  });
  if (seen !== "done") return report(opts, seen);
  const table = readWorkerTable(workerTableFile(opts.pidFile))!;
  const workers = table.workers.map((w) => w.pid).join(", ");
  // Until the old master is gone its workers may still take a connection: the new version only, from then on.
  const drainedBy = Date.now() + ((settings?.timeout ?? opts.timeout) + 5) * 1000;
  while (alive(old) && Date.now() < drainedBy) sleep(POLL_MS);
  const after = alive(old) ? "; the old master still drains its workers" : ", the old master drained and gone";
  console.log(
    `${opts.name}: upgraded: master ${old} → ${table.master} (workers ${workers}) in ${
      ((Date.now() - since) / 1000).toFixed(1)
    } s${after}`,
  );
}
