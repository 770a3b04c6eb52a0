/**
 * A worker: one copy of the unchanged entry, started by the master, sharing the port with its siblings.
 * It reports to the master on the channel (fd 3, see channel.ts): `READY`, `HB`, `ERROR`, and dies
 * with the master whatever its event loop does.
 *
 * Signals (Unicorn's): TERM/INT exit at once; QUIT stops accepting, lets in-flight requests finish
 * (bounded by `timeout`), runs the shutdown hooks and exits; URG (and USR1 on Bun) reopens the log file.
 *
 * @module
 */
import { host } from "../../ffi/_host.ts";
import { libc } from "../../ffi/mod.ts";
import { DaemonError, describe } from "../errors.ts";
import { ignoreInspectorSignal, RUNTIME, setTitle } from "../_runtime.ts";
import { lifecycle } from "../lifecycle.ts";
import { type Listeners, shareListeners } from "../worker/listeners.ts";
import { reopenLogs } from "../log/rotate.ts";
import { runnerLog, setRunnerLogging } from "../log/lines.ts";
import { encode, type Report } from "../channel.ts";
import { dropPrivileges } from "../privileges.ts";
import { attachMigration } from "../worker/reuseport_migrate.ts";
import { type Entry, runEntry } from "../run_entry.ts";
import { noteStopSignal, SIG } from "../signals.ts";
import { STAGE_FD, type WorkerStage } from "../stage.ts";
import { entryFailure, entryStack } from "../startup_error.ts";
import { supervisionOf } from "../supervision.ts";
import { mark } from "../trace.ts";

const encoder = new TextEncoder();

/** Reports to the master on the channel. */
function tell(report: Report): void {
  try {
    libc.write(STAGE_FD, encoder.encode(encode(report)));
  } catch {
    // The master is gone; PR_SET_PDEATHSIG (SIGKILL) ends us.
  }
}

/** Unicorn's worker signals: TERM/INT exit at once (keep-alive's copy runs the onShutdown hooks first, as a
 * single process would), QUIT finishes in-flight requests, HUP is the master's business, the reopen signal. */
function handleSignals(stage: WorkerStage, title: string, listeners: Listeners): void {
  ignoreInspectorSignal(libc);
  const hooks = async (list: (() => unknown)[]) => {
    for (const r of await Promise.allSettled(list.map(async (hook) => await hook()))) {
      if (r.status === "rejected") runnerLog(`hook failed: ${describe(r.reason)}`, "error");
    }
  };
  const { quickStop } = supervisionOf(stage);
  let stopping = false;
  const stop = async (signal: "SIGTERM" | "SIGINT") => {
    if (stopping || !quickStop.hooks) return host.exit(0);
    stopping = true;
    noteStopSignal(signal);
    runnerLog(`${signal} received: shutting down`);
    await hooks(lifecycle().shutdown);
    if (host.signalListeners(signal) <= 1) host.exit(0); // the entry's own listener decides, as in Node
  };
  host.onSignal("SIGTERM", () => stop("SIGTERM"));
  host.onSignal("SIGINT", () => stop("SIGINT"));
  host.onSignal("SIGHUP", () => {}); // the master's business (a rolling restart); never die of it
  // With --log-timestamps fds 1 and 2 are the master's pipe, and the master reopens (or holds) the log.
  for (const signal of RUNTIME.reopenSignals) {
    host.onSignal(signal, () => stage.logFile && !stage.logTimestamps && reopenLogs(stage.logFile));
  }
  host.onSignal("SIGQUIT", async () => {
    if (stopping) return;
    stopping = true;
    runnerLog(`${title}: SIGQUIT: finishing in-flight requests`);
    host.timer(stage.timeout * 1000, () => host.exit(0), { unref: true });
    const drained = listeners.closeGracefully(); // its listeners close at once: new connections go to the others
    tell({ kind: "DRAINING" });
    await Promise.allSettled([drained, hooks(lifecycle().shutdown)]);
    host.exit(0);
  });
}

/** Runs the worker side: names the process, shares listeners, heartbeats, then evaluates the entry. */
export async function serveWorker(stage: WorkerStage, entry: Entry): Promise<void> {
  mark("worker: role modules loaded");
  const title = `${stage.name} worker[${stage.id}]`;
  setTitle(title);
  libc.setThreadName(title);
  // Before PDEATHSIG, which a uid change clears; dumpable again, so siblings see our sockets (port_owner.ts).
  if (dropPrivileges(stage)) libc.setDumpable(true);
  // KILL, not TERM: a worker whose event loop is blocked never runs a JS handler, and must not outlive us.
  libc.setParentDeathSignal(SIG.KILL);
  if (host.ppid() !== stage.masterPid) host.exit(0); // the master died before PDEATHSIG was set
  host.chdir(stage.chdir);
  libc.umask(stage.umask); // its own: the first workers are spawned before the master applies it to itself
  libc.setCloseOnExec(STAGE_FD); // the entry's own children must not hold the master's socket open
  setRunnerLogging({ level: stage.logLevel, format: stage.logFormat }); // LogTape too, on the entry's first getLogger()

  mark("worker: titled, privileges, PDEATHSIG, chdir, logging (libc bound)");
  let ready = false;
  const fatal = (err: unknown): never => {
    // The master says "Cannot start" itself: an entry that is no server reports only why.
    const idle = err instanceof DaemonError ? err.message.replace(/^Cannot start: /, "") : undefined;
    console.error(idle ?? entryStack(err)); // the whole stack, in the log
    // the launcher's one line
    if (!ready) tell({ kind: "ERROR", code: "START_FAILED", message: idle ?? entryFailure(err) });
    host.exit(1);
  };
  host.onFatal(fatal);

  // Four beats within --worker-timeout, between 0.1 s and 1 s apart.
  host.timer(Math.max(100, Math.min(1000, stage.workerTimeout * 250)), () => tell({ kind: "HB" }), {
    repeat: true,
    unref: true,
  });
  // Every copy shares its port (SO_REUSEPORT), keep-alive's one too: its successor binds before it leaves.
  const listeners = await shareListeners(stage.masterPid, entry);
  mark("worker: listeners shared");
  await RUNTIME.dropWorkerEnv(listeners.node);
  mark("worker: reusePort ticket dropped");

  handleSignals(stage, title, listeners);
  mark("worker: signals set up");
  await runEntry(entry, stage, {
    ready: () => {
      ready = true;
      attachMigration(); // the port's group needs it before any worker's listener closes
      mark("worker: entry ready");
      tell({ kind: "READY" });
      mark("worker: READY reported");
    },
    fail: fatal,
  });
}
