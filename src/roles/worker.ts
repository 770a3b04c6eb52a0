/**
 * A worker: one copy of the unchanged entry, started by the master, sharing the port with its siblings.
 * It reports to the master on the stage socket (fd 3, see ready_pipe.ts): `READY`, `HB`, `ERROR`, and dies
 * with the master whatever its event loop does.
 *
 * Signals (Unicorn's): TERM/INT exit at once; QUIT stops accepting, lets in-flight requests finish
 * (bounded by `timeout`), runs the shutdown hooks and exits; URG (and USR1 on Bun) reopens the log file.
 *
 * @module
 */
import process from "node:process";
import { libc } from "../../ffi/mod.ts";
import { ignoreInspectorSignal, RUNTIME, setEntryArgv, setTitle } from "../_runtime.ts";
import { serveDefaultExport } from "../default_export.ts";
import { watchEnvFiles } from "../env_file.ts";
import { lifecycle } from "../lifecycle.ts";
import { type Listeners, shareListeners } from "../listeners.ts";
import { reopenLogs } from "../log/rotate.ts";
import { runnerLog, setRunnerLogging } from "../log/lines.ts";
import { encode, type Report } from "../ready_pipe.ts";
import { dropPrivileges } from "../privileges.ts";
import { failWhenIdle, watchReadiness } from "../readiness.ts";
import { attachMigration } from "../reuseport_migrate.ts";
import { handleSignals as handleEntrySignals, SIG } from "../signals.ts";
import { STAGE_FD, type WorkerStage } from "../stage.ts";
import { entryFailure, entryStack } from "../startup_error.ts";

const encoder = new TextEncoder();

/** Reports to the master on the stage socket. */
function tell(report: Report): void {
  try {
    libc.write(STAGE_FD, encoder.encode(encode(report)));
  } catch {
    // The master is gone; PR_SET_PDEATHSIG (SIGKILL) ends us.
  }
}

/** Unicorn's worker signals: TERM/INT exit at once, QUIT finishes in-flight requests, the reopen signal. */
function handleSignals(stage: WorkerStage, title: string, listeners: Listeners): void {
  ignoreInspectorSignal(libc);
  // The one worker of a keep-alive master (no --workers) is what a single-process daemon would be: the
  // master forwards TERM, INT and HUP, which run the entry's onShutdown and onReload hooks.
  if (!stage.workers) {
    watchEnvFiles(stage.envFiles, runnerLog); // before the handlers: SIGHUP re-reads them before onReload hooks
    // With --log-timestamps fds 1 and 2 are the master's pipe, and the master reopens (or holds) the log.
    return handleEntrySignals(runnerLog, { logFile: stage.logTimestamps ? undefined : stage.logFile });
  }
  let stopping = false;
  process.on("SIGTERM", () => process.exit(0));
  process.on("SIGINT", () => process.exit(0));
  process.on("SIGHUP", () => {}); // the master's business; never die of it
  // With --log-timestamps fds 1 and 2 are the master's pipe, and the master reopens (or holds) the log.
  for (const signal of RUNTIME.reopenSignals) process.on(signal, () => stage.logFile && !stage.logTimestamps && reopenLogs(stage.logFile));
  process.on("SIGQUIT", async () => {
    if (stopping) return;
    stopping = true;
    runnerLog(`${title}: SIGQUIT: finishing in-flight requests`);
    const bound = setTimeout(() => process.exit(0), stage.timeout * 1000);
    (bound as { unref?: () => void }).unref?.();
    await Promise.allSettled([listeners.closeGracefully(), ...lifecycle().shutdown.map(async (hook) => await hook())]);
    process.exit(0);
  });
}

/** Runs the worker side: names the process, shares listeners, heartbeats, then evaluates the entry. */
export async function serveWorker(stage: WorkerStage, entryPath: string, load: () => Promise<unknown>): Promise<void> {
  const title = `${stage.name} worker[${stage.id}]`;
  setTitle(title);
  libc.setThreadName(title);
  // Before PDEATHSIG, which a uid change clears; dumpable again, so siblings see our sockets (port_owner.ts).
  if (dropPrivileges(stage)) libc.setDumpable(true);
  // KILL, not TERM: a worker whose event loop is blocked never runs a JS handler, and must not outlive us.
  libc.setParentDeathSignal(SIG.KILL);
  if (process.ppid !== stage.masterPid) process.exit(0); // the master died before PDEATHSIG was set
  process.chdir(stage.chdir);
  libc.umask(stage.umask); // its own: the first workers are spawned before the master applies it to itself
  libc.setCloseOnExec(STAGE_FD); // the entry's own children must not hold the master's socket open
  setRunnerLogging({ level: stage.logLevel, format: stage.logFormat }); // LogTape too, on the entry's first getLogger()

  let ready = false;
  const fatal = (err: unknown) => {
    console.error(entryStack(err)); // the whole stack, in the log
    if (!ready) tell({ kind: "ERROR", code: "START_FAILED", message: entryFailure(err) }); // the launcher's one line
    process.exit(1);
  };
  process.on("uncaughtException", fatal);
  process.on("unhandledRejection", fatal);

  // Four beats within --worker-timeout, between 0.1 s and 1 s apart.
  const heartbeat = setInterval(() => tell({ kind: "HB" }), Math.max(100, Math.min(1000, stage.workerTimeout * 250)));
  (heartbeat as { unref?: () => void }).unref?.();
  // Keep-alive's one worker (no --workers) shares its port with no one: its listeners stay the entry's own
  // (no SO_REUSEPORT, which Deno.serve would refuse without --unstable-net).
  const listeners = stage.workers ? await shareListeners(stage.masterPid) : { closeGracefully: async () => {} };
  if (!stage.workers) RUNTIME.labelPortInUse();
  // Bun's node:cluster reads NODE_UNIQUE_ID (our reusePort ticket, see Runtime.workerEnv) when first imported
  // and keeps what it read: take it out of the environment the entry's own children inherit.
  await import("node:cluster");
  delete process.env.NODE_UNIQUE_ID;

  handleSignals(stage, title, listeners);

  setEntryArgv(entryPath, stage.args);
  const evaluated = load().then(serveDefaultExport).catch(fatal);
  failWhenIdle(() => ready, fatal);
  watchReadiness(stage.ready, evaluated, () => {
    ready = true;
    if (stage.workers) attachMigration(); // the port's group needs it before any worker's listener closes
    tell({ kind: "READY" });
  });
  await evaluated;
}
