/**
 * The master's handle on one worker process: how it is started, what it said on its channel, how it is
 * signalled, and the worker table `--status` reads. The master's loop (roles/master.ts) decides when.
 *
 * @module
 */
import { host } from "../../ffi/_host.ts";
import { libc, O } from "../../ffi/mod.ts";
import { RUNTIME } from "../_runtime.ts";
import { WORKER_ID_ENV } from "../log/lines.ts";
import { type Report, ReportReader } from "../channel.ts";
import type { WaitingSlot } from "./crash_loop.ts";
import type { MigrationMode } from "../worker/reuseport_migrate.ts";
import { writeSidecar } from "../safe_file.ts";
import { handOver, type WorkerStage } from "../stage.ts";

/** One worker as the master sees it. */
export interface Worker {
  /** Its slot, 1-based; a slot keeps its id across restarts. */
  id: number;
  pid: number;
  /** The master's end of the worker's channel (READY, HB, ERROR lines), -1 once closed. */
  channel: number;
  startedAt: number;
  lastBeat: number;
  ready: boolean;
  /** When it reported ready (ms since the epoch). */
  readyAt?: number;
  /** The rolling-restart generation it was started in. */
  generation: number;
  /** Due for a replacement (`--max-memory`): its successor starts first, as in a rolling restart. */
  replace?: boolean;
  /** When set, the worker is retiring and is killed at this time if still alive. */
  retireBy?: number;
  /** It said its listeners are closed (a graceful stop under way): new connections go to the others. */
  draining?: boolean;
  /** The error it reported before it was ready. */
  error?: string;
  reader: ReportReader;
}

/** Starts the worker `stage` describes, handing it the stage on its channel; `env` adds to the master's
 * environment (`--env-file`), `output` becomes its fds 1 and 2 (`--log-timestamps`). */
export function spawnWorker(
  stage: WorkerStage,
  generation: number,
  extra: { env?: Record<string, string>; output?: number } = {},
): Worker {
  const { parentEnd, childEnd, env } = handOver(stage, libc);
  let pid: number;
  try {
    pid = libc.spawn({
      path: stage.command.path,
      argv: [stage.command.path, ...RUNTIME.sharingArgs(stage.command.args)],
      env: { ...host.environ, ...extra.env, ...env, [WORKER_ID_ENV]: String(stage.id), ...RUNTIME.workerEnv(stage.id) },
      fds: [{ path: "/dev/null", flags: O.RDONLY }, extra.output ?? 1, extra.output ?? 2, childEnd],
      cwd: stage.command.cwd, // where its relative paths (the script's) resolve
    });
  } catch (err) {
    libc.close(parentEnd);
    throw err;
  } finally {
    libc.close(childEnd);
  }
  const now = Date.now();
  return {
    id: stage.id,
    pid,
    channel: parentEnd,
    startedAt: now,
    lastBeat: now,
    ready: false,
    generation,
    reader: new ReportReader(),
  };
}

/** The reports the worker wrote since the last call (none when none); closes the channel at end of file. */
export function readReports(w: Worker): Report[] {
  const reports: Report[] = [];
  while (w.channel >= 0 && libc.waitReadable(w.channel, 0)) {
    const chunk = libc.read(w.channel, 4096);
    if (chunk.length === 0) {
      closeChannel(w);
      break;
    }
    reports.push(...w.reader.push(chunk));
  }
  return reports;
}

/** Closes the master's end of the worker's channel. */
export function closeChannel(w: Worker): void {
  if (w.channel >= 0) libc.close(w.channel);
  w.channel = -1;
}

/** Sends `signal` to the worker; one already gone is left to the reaper. */
export function signalWorker(w: Worker, signal: number): void {
  try {
    host.kill(w.pid, signal);
  } catch {
    // Exited; reaped by the loop.
  }
}

/** One row of the worker table written for `--status`. */
export interface WorkerRow {
  id: number;
  pid: number;
  startedAt: number;
  restarts: number;
}

/** What the last `--reload` or `--upgrade` did: `count` goes up by one with each outcome, `line` says it. */
export interface Outcome {
  count: number;
  ok: boolean;
  line: string;
}

/** The worker table a master writes: `migration`: how a retiring worker's queue survives; `relayed`: the
 * workers write through the master (`--log-timestamps`), so only the master holds logs; `crashLoop`: the slots
 * without a worker, waiting out a crash-loop backoff; `reload`, `upgrade`: the last outcome of each. */
export interface WorkerTable {
  master: number;
  relayed?: boolean;
  workers: WorkerRow[];
  migration?: MigrationMode;
  crashLoop?: WaitingSlot[];
  reload?: Outcome;
  upgrade?: Outcome;
}

/** The worker table beside a pid file. */
export function workerTableFile(pidFile: string): string {
  return `${pidFile}.workers`;
}

/** Writes the worker table atomically (`null` removes it); returns the error text when it cannot. */
export function writeWorkerTable(
  path: string,
  rows: WorkerRow[] | null,
  extra: Omit<WorkerTable, "master" | "workers"> = {},
): string | undefined {
  if (rows === null) return void host.remove(path);
  const tmp = `${path}.${host.pid()}.tmp`;
  try {
    const crashLoop = extra.crashLoop?.length ? extra.crashLoop : undefined;
    const table: WorkerTable = {
      master: host.pid(),
      ...extra,
      relayed: extra.relayed || undefined,
      crashLoop,
      workers: rows.sort((a, b) => a.id - b.id),
    };
    writeSidecar(tmp, JSON.stringify(table) + "\n", 0o644);
    host.rename(tmp, path);
  } catch (err) {
    host.remove(tmp);
    return (err as Error).message;
  }
}

/** Reads the worker table a master wrote, or `null` when there is none. */
export function readWorkerTable(path: string): WorkerTable | null {
  try {
    return JSON.parse(host.readText(path));
  } catch {
    return null;
  }
}
