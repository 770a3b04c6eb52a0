/**
 * A worker: one copy of the unchanged entry, started by the master, sharing the port with its siblings.
 * It talks to the master over a pipe on fd 3: `READY`, `HB` (heartbeat), `ERROR {json}`.
 *
 * Signals (Unicorn's): TERM/INT exit at once; QUIT stops accepting, lets in-flight requests finish
 * (bounded by `timeout`), runs the shutdown hooks and exits; USR1 reopens the log file.
 *
 * @module
 */
import process from "node:process";
import { libc } from "../ffi/mod.ts";
import { inspectorUndoer, setEntryArgv, setTitle, shareListeners } from "./_runtime.ts";
import { describe } from "./daemonize.ts";
import { lifecycle } from "./lifecycle.ts";
import { reopenLogs, runnerLog } from "./log.ts";
import { configureLogging, type LogLevel } from "./logger.ts";
import type { LogFormat } from "./log_sink.ts";
import { watchReadiness } from "./readiness.ts";
import { SIG } from "./signals.ts";

/** What the master hands a worker, in the environment. */
export interface WorkerStage {
  role: "worker";
  /** The worker's slot number, 1-based, stable across restarts of that slot. */
  id: number;
  name: string;
  masterPid: number;
  args: string[];
  ready: "auto" | "manual";
  /** Milliseconds between heartbeats. */
  heartbeatMs: number;
  /** Seconds a graceful stop may take. */
  timeout: number;
  /** The daemon's working directory. */
  chdir: string;
  /** The log file USR1 reopens (the master's). */
  logFile?: string;
  logLevel?: LogLevel;
  logFormat?: LogFormat;
}

/** fd of the pipe to the master. */
export const CONTROL_FD = 3;
const encoder = new TextEncoder();

function tell(line: string): void {
  try {
    libc.write(CONTROL_FD, encoder.encode(line + "\n"));
  } catch {
    // The master is gone; PR_SET_PDEATHSIG ends us.
  }
}

/** Runs the worker side: names the process, shares listeners, heartbeats, then evaluates the entry. */
export async function serveWorker(stage: WorkerStage, entryPath: string, load: () => Promise<unknown>): Promise<void> {
  const title = `${stage.name} worker[${stage.id}]`;
  setTitle(title);
  libc.setThreadName(title);
  libc.setParentDeathSignal(SIG.TERM);
  if (process.ppid !== stage.masterPid) process.exit(0); // the master died before PDEATHSIG was set
  process.chdir(stage.chdir);
  libc.setCloseOnExec(CONTROL_FD); // the entry's own children must not hold the master's pipe open
  configureLogging({ level: stage.logLevel, format: stage.logFormat });

  let ready = false;
  const fatal = (err: unknown) => {
    const text = describe(err);
    console.error(text);
    if (!ready) tell(`ERROR ${JSON.stringify({ code: "START_FAILED", message: text })}`);
    process.exit(1);
  };
  process.on("uncaughtException", fatal);
  process.on("unhandledRejection", fatal);

  const heartbeat = setInterval(() => tell("HB"), stage.heartbeatMs);
  (heartbeat as { unref?: () => void }).unref?.();
  const listeners = await shareListeners(stage.masterPid);

  let stopping = false;
  process.on("SIGTERM", () => process.exit(0));
  process.on("SIGINT", () => process.exit(0));
  process.on("SIGHUP", () => {}); // the master's business; never die of it
  const undoInspector = inspectorUndoer();
  process.on("SIGUSR1", () => {
    if (stage.logFile) reopenLogs(stage.logFile);
    undoInspector();
  });
  process.on("SIGQUIT", async () => {
    if (stopping) return;
    stopping = true;
    runnerLog(`${title}: SIGQUIT: finishing in-flight requests`);
    const bound = setTimeout(() => process.exit(0), stage.timeout * 1000);
    (bound as { unref?: () => void }).unref?.();
    await Promise.allSettled([listeners.closeGracefully(), ...lifecycle().shutdown.map(async (hook) => await hook())]);
    process.exit(0);
  });

  setEntryArgv(entryPath, stage.args);
  const evaluated = load().catch(fatal);
  watchReadiness(stage.ready, evaluated, () => {
    ready = true;
    tell("READY");
  });
  await evaluated;
}
