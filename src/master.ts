/**
 * The master of a daemon with workers: the daemon side of `--daemon --workers N`, and its binary upgrade.
 *
 * @module
 */
import process from "node:process";
import { type Libc, libc as systemLibc, O } from "../ffi/mod.ts";
import { setTitle } from "./_runtime.ts";
import { cleanUpFailedStart, type DaemonStage, READY_FD, startDaemon } from "./daemonize.ts";
import { DaemonError } from "./errors.ts";
import { runnerLog } from "./log/setup.ts";
import type { PidFile } from "./pidfile.ts";
import { waitForReady } from "./readiness.ts";
import { handOver } from "./stage.ts";
import { Supervisor } from "./supervisor.ts";

/** The status file of a master's workers, beside its pid file. */
export function workerTableFile(pidFile: string): string {
  return `${pidFile}.workers`;
}

/**
 * USR2: the binary upgrade. The pid file moves to `.oldbin` (its lock with it), the executable on disk starts
 * as a new master beside this one and takes the pid file; once it reports ready, this master retires. If it
 * fails, the pid file moves back and nothing changes.
 */
async function upgradeMaster(stage: DaemonStage, pidFile: PidFile, supervisor: Supervisor, libc: Libc = systemLibc): Promise<boolean> {
  const oldbin = `${stage.pidFile}.oldbin`;
  pidFile.rename(oldbin);
  supervisor.moveStatusFile(workerTableFile(oldbin));
  const { parentEnd: readEnd, childEnd: writeEnd, env } = handOver({ ...stage, readyFd: READY_FD }, libc);
  let pid: number | undefined;
  let error: DaemonError | undefined;
  try {
    try {
      pid = libc.spawn({
        path: stage.command.path,
        argv: [stage.command.path, ...stage.command.args],
        env: { ...process.env, ...env },
        fds: [{ path: "/dev/null", flags: O.RDONLY }, 1, 2, writeEnd],
        cwd: stage.command.cwd,
      });
    } finally {
      libc.close(writeEnd); // only the new master may hold it, or end of file never comes
    }
    error = (await waitForReady(readEnd, (stage.startTimeout ?? 60) * 1000, "", libc)).error;
  } catch (err) {
    error = new DaemonError("START_FAILED", (err as Error).message);
  } finally {
    libc.close(readEnd);
  }
  if (!error) {
    runnerLog(`master: new master ${pid} is ready`);
    return true;
  }
  runnerLog(`master: the upgrade failed, keeping this master: ${error.message.split("\n")[0]}`);
  if (pid) {
    cleanUpFailedStart(pid, stage.pidFile, libc);
    libc.waitpid(pid, true);
  }
  pidFile.rename(stage.pidFile);
  supervisor.moveStatusFile(workerTableFile(stage.pidFile));
  return false;
}

/**
 * Runs the master: starts the daemon, then the workers; reports READY once all of them are ready.
 *
 * @example
 * ```ts ignore
 * if (stage.workers) await serveMaster(stage);
 * ```
 */
export async function serveMaster(stage: DaemonStage): Promise<void> {
  const daemon = startDaemon(stage);
  const { fatal, systemd } = daemon;
  const name = stage.name ?? "daemon";
  setTitle(`${name} master`);
  systemLibc.setThreadName(`${name} master`);
  const supervisor: Supervisor = new Supervisor({
    name,
    workers: stage.workers!,
    workerTimeout: stage.workerTimeout ?? 60,
    timeout: stage.timeout ?? 10,
    command: stage.command,
    chdir: stage.chdir ?? "/",
    logFile: stage.logFile,
    logLevel: stage.logLevel,
    logFormat: stage.logFormat,
    args: stage.args ?? [],
    ready: stage.ready ?? "auto",
    statusFile: workerTableFile(stage.pidFile),
    upgrade: (): Promise<boolean> => upgradeMaster(stage, daemon.pidFile, supervisor),
  });
  try {
    await supervisor.start();
  } catch (err) {
    fatal((err as Error).message);
  }
  runnerLog(`ready (pid ${process.pid}, ${stage.workers} workers)`);
  daemon.reporter.ready();
  systemd.notify(`READY=1\nMAINPID=${process.pid}`);
}

