/**
 * The foreground run: `./mydaemon` without `--daemon` (a terminal, a container, systemd's `Type=notify` or
 * `Type=simple`). The entry runs in this process with the same signal handlers as in a daemon; systemd hears
 * when it is ready. As a container's PID 1 the runner becomes a tiny init instead (see init.ts).
 *
 * @module
 */
import process from "node:process";
import { libc } from "../../ffi/mod.ts";
import { ignoreInspectorSignal, setEntryArgv } from "../_runtime.ts";
import { serveDefaultExport } from "../default_export.ts";
import { watchEnvFiles } from "../env_file.ts";
import { DaemonError } from "../errors.ts";
import { configureLogging, runnerLog } from "../log/setup.ts";
import { systemdNotifier } from "../notify.ts";
import type { RunnerOptions } from "../options.ts";
import { PidFile } from "../pidfile.ts";
import { failWhenIdle, watchReadiness } from "../readiness.ts";
import { handleSignals } from "../signals.ts";
import { serveInit } from "./init.ts";

/** Runs the entry (`load`, whose path is `entryPath`) in this process; resolves once it is evaluated.
 * `fail` ends the process with an error's message and exit code. */
export async function runForeground(opts: RunnerOptions, entryPath: string, load: () => Promise<unknown>, fail: (err: unknown) => never): Promise<void> {
  if (process.pid === 1) return serveInit(); // a container's first process: its child runs the entry
  configureLogging({ level: opts.logLevel, format: opts.logFormat });
  ignoreInspectorSignal(libc); // a foreground service (systemd Type=simple) is as exposed as a daemon
  if (opts.pidFileGiven) {
    const pidFile = PidFile.acquire(opts.pidFile, process.pid, undefined, opts.name);
    process.on("exit", () => pidFile.release());
  }
  const systemd = systemdNotifier();
  watchEnvFiles(opts.envFiles, runnerLog); // before handleSignals: SIGHUP re-reads them before onReload hooks
  handleSignals(runnerLog, { systemd });
  setEntryArgv(entryPath, opts.args);
  const evaluated = load().then(serveDefaultExport);
  let ready = false;
  watchReadiness(opts.ready, evaluated, () => {
    ready = true;
    systemd.notify(`READY=1\nMAINPID=${process.pid}`);
  });
  failWhenIdle(() => ready, (message) => fail(new DaemonError("START_FAILED", `Cannot start: ${message}`)));
  await evaluated;
}
