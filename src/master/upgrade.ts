/**
 * USR2 (`--upgrade`), the binary upgrade, as the master's loop sees it: the pid file moves to `.oldbin` (its lock with
 * it), the executable on disk starts as a new master beside this one and takes the pid file; the loop watches
 * its reports without blocking. Once it is ready, this master retires; if it fails, the new one is ended,
 * the pid file moves back and nothing changes.
 *
 * @module
 */
import { host } from "../../ffi/_host.ts";
import { type Libc, libc as systemLibc, O } from "../../ffi/mod.ts";
import { runnerLog } from "../log/lines.ts";
import type { PidFile } from "../pidfile.ts";
import { ReportReader } from "../channel.ts";
import { type DaemonStage, handOver } from "../stage.ts";
import { terminate } from "../terminate.ts";
import { readWorkerTable, workerTableFile } from "./worker_handle.ts";

/** An upgrade under way. */
export interface Upgrade {
  pid: number;
  /** Our end of the new master's channel. */
  channel: number;
  reader: ReportReader;
  since: number;
  deadline: number;
}

/** Why a USR2 cannot start an upgrade now, or `undefined` when it can. */
export function refuseUpgrade(pidFile: PidFile | undefined, underWay: boolean, starting: boolean): string | undefined {
  if (starting) return "the upgrade was refused: the daemon is still starting; try again once it is ready";
  if (underWay) return "the upgrade was refused: one is under way already";
  if (!pidFile) return "the upgrade was refused: an upgrade hands over the pid file; start with --pid-file";
}

/** Moves the pid file to `.oldbin` and starts the executable on disk as a new master; `undefined` when it
 * cannot be started (the pid file is back then). `systemd`: what the new master needs to notify systemd;
 * `moved`: called once the pid file is `.oldbin`, before the spawn, so what follows it (the worker table) moves at
 * once. */
export function startUpgrade(
  stage: DaemonStage,
  pidFile: PidFile,
  systemd: Record<string, string> = {},
  moved = () => {},
  libc: Libc = systemLibc,
): Upgrade | undefined {
  pidFile.rename(`${stage.pidFile}.oldbin`);
  moved();
  const { parentEnd, childEnd, env } = handOver(stage, libc);
  try {
    const pid = libc.spawn({
      path: stage.command.path,
      argv: [stage.command.path, ...stage.command.args],
      env: { ...host.environ, ...systemd, ...env },
      fds: [{ path: "/dev/null", flags: O.RDONLY }, 1, 2, childEnd],
      cwd: stage.command.cwd,
    });
    return {
      pid,
      channel: parentEnd,
      reader: new ReportReader(),
      since: Date.now(),
      deadline: Date.now() + stage.startTimeout * 1000,
    };
  } catch (err) {
    runnerLog(`master: the upgrade failed, keeping this master: ${(err as Error).message}`);
    libc.close(parentEnd);
    pidFile.rename(stage.pidFile);
    return undefined;
  } finally {
    libc.close(childEnd); // only the new master may hold it, or end of file never comes
  }
}

/**
 * Reads what the new master reported so far: `true` once it is ready, why once it failed (it is ended and
 * the pid file is back), `undefined` while it is still starting.
 */
export function watchUpgrade(
  upgrade: Upgrade,
  stage: DaemonStage,
  pidFile: PidFile,
  libc: Libc = systemLibc,
): true | string | undefined {
  let failure: string | undefined;
  while (failure === undefined && libc.waitReadable(upgrade.channel, 0)) {
    const chunk = libc.read(upgrade.channel, 4096);
    if (chunk.length === 0) failure = "exited during start-up";
    for (const report of upgrade.reader.push(chunk)) {
      if (report.kind === "READY") {
        libc.close(upgrade.channel);
        runnerLog(`master: new master ${upgrade.pid} is ready`);
        return true;
      }
      if (report.kind === "ERROR") failure = `failed: ${report.message.split("\n")[0]}`;
    }
  }
  if (failure === undefined && Date.now() > upgrade.deadline) failure = `was not ready within ${stage.startTimeout} s`;
  if (failure === undefined) return undefined;
  libc.close(upgrade.channel);
  try {
    const pidfd = libc.pidfdOpen(upgrade.pid);
    terminate(pidfd, upgrade.pid, 2000, { waitFirstMs: 100 }, libc);
    libc.close(pidfd);
  } catch {
    // Already gone (and reaped by the loop).
  }
  pidFile.rename(stage.pidFile);
  return `the new master ${upgrade.pid} ${failure}`;
}

/** The log's line for an upgrade that succeeded, as `--upgrade` prints it: old and new master, the new
 * workers (from the table the new master wrote before it was ready), and how long it took. */
export function upgradedLine(upgrade: Upgrade, stage: DaemonStage): string {
  const table = readWorkerTable(workerTableFile(stage.pidFile!));
  const workers = table?.master === upgrade.pid ? ` (workers ${table.workers.map((w) => w.pid).join(", ")})` : "";
  const seconds = ((Date.now() - upgrade.since) / 1000).toFixed(1);
  return `master: upgraded: master ${host.pid()} → ${upgrade.pid}${workers} in ${seconds} s, from ` +
    `${stage.command.path}`;
}
