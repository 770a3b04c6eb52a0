/**
 * A worker: one copy of the unchanged entry, started by the master, sharing the port with its siblings.
 * It talks to the master over the stage socket on fd 3: `READY`, `HB` (heartbeat), `ERROR {json}`.
 *
 * Signals (Unicorn's): TERM/INT exit at once; QUIT stops accepting, lets in-flight requests finish
 * (bounded by `timeout`), runs the shutdown hooks and exits; URG (and USR1 on Bun) reopens the log file.
 *
 * @module
 */
import process from "node:process";
import { libc } from "../ffi/mod.ts";
import { ignoreInspectorSignal, RUNTIME, setEntryArgv, setTitle } from "./_runtime.ts";
import { shareListeners } from "./listeners.ts";
import { describe } from "./daemonize.ts";
import { serveDefaultExport } from "./default_export.ts";
import { lifecycle } from "./lifecycle.ts";
import { reopenLogs } from "./log/rotate.ts";
import { runnerLog } from "./log/setup.ts";
import { configureLogging, type LogLevel } from "./log/setup.ts";
import type { LogFormat } from "./log/sink.ts";
import { failWhenIdle, watchReadiness } from "./readiness.ts";
import { SIG } from "./signals.ts";

/** What the master hands a worker, on the stage socket (see stage.ts). */
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
  /** The log file SIGURG reopens (the master's). */
  logFile?: string;
  logLevel?: LogLevel;
  logFormat?: LogFormat;
}

/** fd of the socket to the master (the stage socket). */
export const CONTROL_FD = 3;
const encoder = new TextEncoder();

function tell(line: string): void {
  try {
    libc.write(CONTROL_FD, encoder.encode(line + "\n"));
  } catch {
    // The master is gone; PR_SET_PDEATHSIG (SIGKILL) ends us.
  }
}

/** Runs the worker side: names the process, shares listeners, heartbeats, then evaluates the entry. */
export async function serveWorker(stage: WorkerStage, entryPath: string, load: () => Promise<unknown>): Promise<void> {
  const title = `${stage.name} worker[${stage.id}]`;
  setTitle(title);
  libc.setThreadName(title);
  // KILL, not TERM: a worker whose event loop is blocked never runs a JS handler, and must not outlive us.
  libc.setParentDeathSignal(SIG.KILL);
  if (process.ppid !== stage.masterPid) process.exit(0); // the master died before PDEATHSIG was set
  process.chdir(stage.chdir);
  libc.setCloseOnExec(CONTROL_FD); // the entry's own children must not hold the master's socket open
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
  // Bun's node:cluster reads NODE_UNIQUE_ID (our reusePort ticket, see supervisor.ts) when first imported
  // and keeps what it read: take it out of the environment the entry's own children inherit.
  await import("node:cluster");
  delete process.env.NODE_UNIQUE_ID;

  let stopping = false;
  process.on("SIGTERM", () => process.exit(0));
  process.on("SIGINT", () => process.exit(0));
  process.on("SIGHUP", () => {}); // the master's business; never die of it
  ignoreInspectorSignal(libc);
  for (const signal of RUNTIME.reopenSignals) process.on(signal, () => stage.logFile && reopenLogs(stage.logFile));
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
  const evaluated = load().then(serveDefaultExport).catch(fatal);
  failWhenIdle(() => ready, fatal);
  watchReadiness(stage.ready, evaluated, () => {
    ready = true;
    tell("READY");
  });
  await evaluated;
}
