/**
 * The master's pool of workers: the slots 1..target each hold one ready worker of the current generation.
 * Workers are started (with the `--env-file`s read again and, with `--log-timestamps`, a pipe to stamp their
 * output), retired by QUIT (a drain), and replaced successor first: a rolling restart, a `--max-memory`
 * replacement. The master's loop (roles/master.ts) calls {@linkcode maintainWorkerCount} every tick.
 *
 * @module
 */
import { host } from "../../ffi/_host.ts";
import { libc } from "../../ffi/mod.ts";
import { readEnvFiles } from "../env_file.ts";
import { OutputRelay, relayPipe } from "../log/relay.ts";
import { runnerLog } from "../log/lines.ts";
import type { StartedDaemon } from "../roles/daemon.ts";
import { SIG } from "../signals.ts";
import type { DaemonStage } from "../stage.ts";
import { type MasterStatus, outcome, reloaded, writeStatus } from "./master_status.ts";
import type { MemoryWatch } from "./memory_limit.ts";
import type { Upgrade } from "./upgrade.ts";
import { signalWorker, spawnWorker, type Worker } from "./worker_handle.ts";

/** Everything the master knows: its settings, its workers and what is under way. */
export interface Master extends MasterStatus {
  stage: DaemonStage;
  daemon: StartedDaemon;
  /** Bumped by HUP: workers of an older generation are replaced one at a time. */
  generation: number;
  lastExits: Map<number, number>; // each slot's last unplanned exit (a wait status), for --metrics
  queue: string[]; // signals, handled by the loop
  stopping?: { graceful: boolean; killAt: number };
  upgrade?: Upgrade;
  memory?: MemoryWatch; // --max-memory: the workers' RSS, checked once a second
  relays: OutputRelay[]; // --log-timestamps: the workers' output pipes, read and stamped here
}

/** Starts and retires workers until the slots 1..target each hold one ready worker of this generation. */
export function maintainWorkerCount(m: Master): void {
  if (m.stopping) return;
  const now = Date.now();
  const serving = m.workers.filter((w) => !w.retireBy);
  for (let id = 1; id <= m.target; id++) {
    if (!serving.some((w) => w.id === id) && (m.backoff.get(id)?.retryAt ?? 0) <= now) start(m, id);
  }
  for (const w of serving) if (w.id > m.target) retire(m, w);
  const stale = serving.filter((w) => w.generation < m.generation || w.replace);
  // Every worker of this generation and ready, the old ones' listeners closed: the reload is done (they drain).
  if (
    stale.length === 0 && m.reloading && serving.every((w) => w.ready) &&
    m.workers.every((w) => !w.retireBy || w.draining)
  ) reloaded(m);
  if (stale.length === 0 || m.starting) return;
  // Every copy shares its port (SO_REUSEPORT), keep-alive's one too: the successor starts first, always.
  const successor = serving.find((w) =>
    w.id === stale[0].id && w !== stale[0] && w.generation === m.generation && !w.replace
  );
  if (!successor) {
    if (!serving.some((w) => !w.ready)) start(m, stale[0].id);
  } else if (successor.ready) {
    retire(m, stale[0]);
  }
}

function start(m: Master, id: number): void {
  let pipe: [number, number] | undefined;
  try {
    // a --reload picks up an edit
    const env = m.policy.envFilesReadBy === "master" ? readEnvFiles(m.stage.envFiles) : {};
    pipe = m.stage.logTimestamps ? relayPipe() : undefined;
    const w = spawnWorker({ ...m.stage, role: "worker", id, masterPid: host.pid() }, m.generation, {
      env,
      output: pipe?.[1],
    });
    if (pipe) m.relays.push(new OutputRelay(pipe[0], w.pid, id, m.stage.logFormat));
    m.workers.push(w);
    runnerLog(`master: worker[${id}] started (pid ${w.pid})`);
    writeStatus(m);
  } catch (err) {
    if (pipe) libc.close(pipe[0]);
    if (m.starting) throw err; // a failed start: the loop (or runMaster, before the daemon) reports it
    const kept = m.workers.find((o) => o.id === id);
    const why = `cannot start worker[${id}]: ${(err as Error).message}`;
    // A successor that cannot start ends the rolling restart (or replacement) instead of retrying each tick.
    void (kept ? successorFailed(m, `${why}; keeping pid ${kept.pid}`) : runnerLog(`master: ${why}`, "error"));
    m.backoff.set(id, { crashes: 1, retryAt: Date.now() + 1000 });
  } finally {
    if (pipe) libc.close(pipe[1]); // the worker has it; the master reads until every holder closed it
  }
}

function retire(m: Master, w: Worker): void { // QUIT drains it: the listeners close, in-flight requests finish
  if (w.replace) m.restarts.set(w.id, (m.restarts.get(w.id) ?? 0) + 1); // --max-memory: a restart, as PM2 counts it
  w.retireBy = Date.now() + m.stage.timeout * 1000;
  signalWorker(w, SIG.QUIT);
}

/** A successor failed: the workers it was to replace keep serving, and a reload under way says so. */
export function successorFailed(m: Master, why: string): void {
  for (const o of m.workers) Object.assign(o, { generation: m.generation, replace: false });
  if (!m.reloading) return runnerLog(`master: ${why}`, "error");
  m.reloading = undefined;
  outcome(m, "reload", false, `reload failed: ${why}; the old code still serves`);
}
