/**
 * The master: the daemon of `--workers N`, and keep-alive's supervisor of one (the policy in supervision.ts
 * says which). It runs no entry code; it keeps its workers up, Unicorn's way.
 * Signal handlers only queue the signal and wake the loop; one loop handles the queue, then reaps the
 * workers that exited, kills the lazy ones and brings the workers to the wanted count and generation.
 *
 *   TERM/INT quick stop · QUIT graceful stop · HUP rolling restart · TTIN/TTOU one worker more/fewer
 *   USR2 binary upgrade · the reopen signal: reopen the log, and forward to the workers
 *
 * @module
 */
import { host, type SignalName } from "../../ffi/_host.ts";
import { libc } from "../../ffi/mod.ts";
import { RUNTIME, setTitle } from "../_runtime.ts";
import { backoffAfter, waitingSlots } from "../master/crash_loop.ts";
import { describe } from "../errors.ts";
import { pumpAll } from "../log/relay.ts";
import { reopenLogs } from "../log/rotate.ts";
import { markBloated, MemoryWatch } from "../master/memory_limit.ts";
import { serveMetrics } from "../master/metrics.ts";
import { runnerLog, setRunnerLogging } from "../log/lines.ts";
import { becomeSubreaper } from "../process_tree.ts";
import { recordLogPath } from "../log/show.ts";
import { migrationLogged } from "../worker/reuseport_migrate.ts";
import { describeExit, noteStopSignal, REOPEN, SIG } from "../signals.ts";
import type { DaemonStage } from "../stage.ts";
import { supervisionOf } from "../supervision.ts";
import { refuseUpgrade, startUpgrade, upgradedLine, watchUpgrade } from "../master/upgrade.ts";
import { closeChannel, readReports, signalWorker, type Worker, writeWorkerTable } from "../master/worker_handle.ts";
import { moveStatus, outcome, writeStatus } from "../master/master_status.ts";
import { maintainWorkerCount, type Master, successorFailed } from "../master/pool.ts";
import type { StartedDaemon } from "./daemon.ts";
const TRAPPED: SignalName[] = [
  "SIGTERM",
  "SIGINT",
  "SIGQUIT",
  "SIGHUP",
  "SIGTTIN",
  "SIGTTOU",
  "SIGUSR2",
  ...RUNTIME.reopenSignals,
];

/** Runs the master until it has stopped; never returns. `startDaemon` runs once the workers are spawned. */
export async function runMaster(stage: DaemonStage, startDaemon: () => StartedDaemon): Promise<never> {
  const title = `${stage.name} master`;
  setTitle(title);
  libc.setThreadName(title);
  becomeSubreaper(libc); // orphans of the entry's children come back to us, in the daemon's tree
  setRunnerLogging({ level: stage.logLevel, format: stage.logFormat }); // before the workers' "started" lines
  const policy = supervisionOf(stage);
  const m: Master = {
    stage,
    policy,
    daemon: undefined!,
    target: policy.copies,
    generation: 0,
    workers: [],
    backoff: new Map(),
    lastExits: new Map(),
    restarts: new Map(),
    queue: [],
    starting: true,
    memory: stage.maxMemory ? new MemoryWatch(stage.maxMemory) : undefined,
    relays: [],
    migration: "none",
    outcomes: {},
  };
  let wake = () => {};
  // for the loop; before the pid file is ours
  for (const signal of TRAPPED) host.onSignal(signal, () => (m.queue.push(signal), wake()));
  try {
    maintainWorkerCount(m); // the workers boot while startDaemon takes the pid file over: overlapped, not added up
  } finally {
    m.daemon = startDaemon(); // a spawn error too is then reported to the launcher (its start-up guard)
  }
  moveStatus(m); // the worker table beside the pid file; written once all are ready
  void serveMetrics(stage, m, m.daemon.fatal); // --metrics: the master's own state, read at each scrape
  m.migration = migrationLogged(); // its warning goes to the log, set up by startDaemon
  // systemd's watchdog hears from this loop only while every ready worker's heartbeat is fresh.
  m.daemon.systemd.healthy = () => m.workers.every((w) => !w.ready || w.retireBy || Date.now() - w.lastBeat < 2000);
  host.onExit(() => m.statusFile && writeWorkerTable(m.statusFile, null)); // a failed start too leaves no table
  while (!(m.stopping && m.workers.length === 0)) {
    let relayed = false;
    try {
      relayed = tick(m);
    } catch (err) {
      // A master stays up for its workers (Unicorn's loop rescues too); before it is ready, the start fails.
      if (m.starting) m.daemon.fatal(err);
      runnerLog(`master: ${describe(err)}`, "error");
    }
    // Tick fast while a worker is starting or leaving (readiness and exits are waited on), else slowly.
    const busy = m.stopping || m.upgrade || m.workers.some((w) => !w.ready || w.retireBy);
    await new Promise<void>((resolve) => {
      wake = resolve;
      host.timer(relayed ? 0 : busy ? 2 : 50, resolve);
    });
  }
  while (pumpAll(m.relays)); // what the last workers wrote before they exited
  for (const relay of m.relays) relay.close();
  host.exit(0);
}

/** One turn of the loop: the queued signals, then reap, kill lazy and maintain; whether output was relayed. */
function tick(m: Master): boolean {
  for (const signal of m.queue.splice(0)) handleSignal(m, signal);
  readMessages(m);
  reapWorkers(m);
  killLazyWorkers(m);
  if (m.memory && !m.stopping) markBloated(m.memory, m.workers);
  maintainWorkerCount(m);
  watchUpgradeOf(m);
  return pumpAll(m.relays);
}

function handleSignal(m: Master, signal: string): void {
  if (m.stopping && signal !== "SIGTERM" && signal !== "SIGINT") return;
  switch (signal) {
    case "SIGTERM":
    case "SIGINT":
    case "SIGQUIT":
      return stop(
        m,
        signal === "SIGQUIT",
        `master: ${signal}: ${signal === "SIGQUIT" ? "graceful" : "quick"} stop`,
        signal,
      );
    case "SIGHUP": // a rolling restart: each worker replaced by one of the executable on disk, successor first
      runnerLog(`master: SIGHUP: rolling restart from ${m.stage.command.path}`);
      m.reloading ??= { since: Date.now(), pids: m.workers.filter((w) => !w.retireBy).map((w) => w.pid) };
      m.daemon.systemd.notify("RELOADING=1");
      m.generation++;
      return m.backoff.clear(); // the new workers start afresh, at once
    case "SIGTTIN":
      runnerLog(`master: SIGTTIN: adding worker[${++m.target}]`);
      return void m.backoff.delete(m.target); // started at once
    case "SIGTTOU":
      // forgotten with its slot
      if (m.target > 1) runnerLog(`master: SIGTTOU: retiring worker[${m.target}]`), m.backoff.delete(m.target--);
      return writeStatus(m); // a slot that was waiting out its backoff leaves --status now: no exit will say so
    case "SIGUSR2": {
      const refused = refuseUpgrade(m.daemon.pidFile, Boolean(m.upgrade), m.starting);
      // the one under way reports
      if (refused) return m.upgrade ? runnerLog(`master: ${refused}`, "error") : outcome(m, "upgrade", false, refused);
      runnerLog(`master: SIGUSR2: starting ${m.stage.command.path} as a new master`);
      // before the spawn
      m.upgrade = startUpgrade(m.stage, m.daemon.pidFile!, m.daemon.systemd.handover, () => moveStatus(m));
      if (!m.upgrade) {
        moveStatus(m);
        outcome(
          m,
          "upgrade",
          false,
          "the upgrade failed: the new master could not be started; the old one still serves",
        );
      }
      return;
    }
    default: // the reopen signal
      if (m.stage.logFile) reopenLogs(m.stage.logFile);
      for (const w of m.workers) signalWorker(w, REOPEN);
  }
}

function stop(m: Master, graceful: boolean, why: string, signal?: string): void {
  if (m.stopping && (graceful || !m.stopping.graceful)) return;
  runnerLog(why);
  // Cut short by it, a start is reported as stopped; systemd and --status hear of it (not of an upgrade's retirement).
  if (signal) noteStopSignal(signal), m.daemon.systemd.notify("STOPPING=1");
  const { seconds } = m.policy.quickStop; // keep-alive's one worker runs the onShutdown hooks on TERM: --timeout
  m.stopping = {
    graceful,
    killAt: Date.now() + (graceful || seconds === "timeout" ? m.stage.timeout : seconds) * 1000,
  };
  for (const w of m.workers) signalWorker(w, graceful ? SIG.QUIT : SIG.TERM);
}

function readMessages(m: Master): void {
  const now = Date.now();
  for (const w of m.workers) {
    for (const report of readReports(w)) {
      w.lastBeat = now;
      if (report.kind === "READY" && !w.ready) {
        Object.assign(w, { ready: true, readyAt: now });
        runnerLog(`master: worker[${w.id}] ready (pid ${w.pid})`);
      } else if (report.kind === "ERROR") w.error = report.message;
      else if (report.kind === "DRAINING") w.draining = true;
    }
  }
  if (m.starting && m.workers.length === m.target && m.workers.every((w) => w.ready)) {
    m.starting = false;
    runnerLog(`master: ${m.target} worker${m.target === 1 ? "" : "s"} ready`);
    runnerLog(`ready (pid ${host.pid()}, ${m.target} worker${m.target === 1 ? "" : "s"})`);
    if (m.daemon.pidFile) writeStatus(m); // before READY: a --status or --reload right after --daemon finds the table
    m.daemon.reporter.ready();
    // --logs finds it (in the foreground too)
    if (m.daemon.pidFile) recordLogPath(m.daemon.pidFile.path, m.stage.logFile);
    m.daemon.systemd.notify(`READY=1\nMAINPID=${host.pid()}`);
    if (!m.daemon.pidFile) writeStatus(m); // a foreground run's table is in the registry, claimed at READY=1
  }
}

/** Collects every child that exited: workers, and (as subreaper) any orphan of theirs. */
function reapWorkers(m: Master): void {
  for (let exited; (exited = libc.reapAny()) !== null;) {
    const w = m.workers.find((w) => w.pid === exited.pid);
    if (w) workerExited(m, w, exited.status);
  }
}

function workerExited(m: Master, w: Worker, status: number): void {
  for (const report of readReports(w)) if (report.kind === "ERROR") w.error = report.message; // its last words
  closeChannel(w);
  m.workers.splice(m.workers.indexOf(w), 1);
  const now = Date.now(), lived = now - w.startedAt;
  const how = describeExit(status);
  if (m.starting && !m.stopping) { // a stop during start-up ends the loop; the exit says "stopped during start-up"
    for (const other of m.workers) signalWorker(other, SIG.KILL);
    const message = `Cannot start: the entry ${how} before it was ready`; // as one process says it
    if (!w.error && m.policy.kind === "keep-alive") {
      runnerLog(message, "fatal"), m.daemon.reporter.fail("START_FAILED", message), host.exit(1);
    }
    m.daemon.fatal(w.error ?? `worker[${w.id}] ${how} before it was ready`);
  }
  if (w.retireBy || m.stopping) {
    runnerLog(`master: worker[${w.id}] (pid ${w.pid}) ${how}`);
    const replaced = w.generation < m.generation && !m.workers.some((o) => o.generation < m.generation);
    if (replaced && !m.stopping) runnerLog("master: rolling restart done");
    return writeStatus(m);
  }
  // A successor (a rolling restart, a replacement) that failed: keep the worker it was to replace, end the restart.
  const kept = w.ready ? undefined : m.workers.find((o) => o.id === w.id);
  if (kept) {
    return successorFailed(
      m,
      `worker[${w.id}] successor (pid ${w.pid}) failed, keeping pid ${kept.pid}: ${(w.error ?? how).split("\n")[0]}`,
    );
  }
  // An unplanned exit: replace it, backing off only while it keeps crashing (crash_loop.ts).
  const delay = m.backoff.set(
    w.id,
    backoffAfter(m.backoff.get(w.id), { status, readyFor: w.readyAt ? now - w.readyAt : undefined }, now),
  ).get(w.id)!.retryAt - now;
  m.lastExits.set(w.id, status);
  m.restarts.set(w.id, (m.restarts.get(w.id) ?? 0) + 1);
  const error = w.error ? `: ${w.error.split("\n")[0]}` : "";
  runnerLog(
    `master: worker[${w.id}] (pid ${w.pid}) ${how} after ${(lived / 1000).toFixed(1)} s${error}; ${
      delay ? `crash loop: restarting in ${delay / 1000} s` : "restarting"
    }`,
  );
  // every slot waiting: only crashes in a row do that
  const waiting = waitingSlots(m.backoff, m.target, m.workers, now);
  if (waiting.length === m.target) {
    runnerLog(
      `master: crash loop: no worker is serving; worker[${waiting[0].id}] restarts in ${
        ((waiting[0].retryAt - now) / 1000).toFixed(1)
      } s`,
      "error",
    );
  }
  writeStatus(m);
}

/** Kills a worker whose heartbeat is too old, or that outstays its retirement or the stop. */
function killLazyWorkers(m: Master): void {
  const now = Date.now();
  for (const w of m.workers) {
    if (m.stopping && now > m.stopping.killAt) signalWorker(w, SIG.KILL);
    else if (w.retireBy && now > w.retireBy) signalWorker(w, SIG.KILL);
    else if (!w.ready && !m.starting && now - w.startedAt > m.stage.startTimeout * 1000 && w.error === undefined) {
      w.error = `not ready within --start-timeout ${m.stage.startTimeout} s`; // a successor that hangs ends the restart
      signalWorker(w, SIG.KILL);
    } else if (now - w.lastBeat > m.stage.workerTimeout * 1000) {
      runnerLog(
        `master: worker[${w.id}] (pid ${w.pid}) timeout (${
          ((now - w.lastBeat) / 1000).toFixed(1)
        } s > ${m.stage.workerTimeout} s), killing`,
      );
      w.lastBeat = Infinity; // report once
      signalWorker(w, SIG.KILL);
    }
  }
}

/** USR2's outcome once known: on success this master retires gracefully; on failure nothing changes. */
function watchUpgradeOf(m: Master): void {
  if (!m.upgrade) return;
  const result = watchUpgrade(m.upgrade, m.stage, m.daemon.pidFile!);
  if (result === undefined) return;
  const upgrade = m.upgrade, { pid } = upgrade;
  m.upgrade = undefined; // its channel is closed either way
  if (result !== true) {
    moveStatus(m); // back beside the pid file, with the outcome for --upgrade
    return outcome(m, "upgrade", false, `the upgrade failed: ${result}; the old master ${host.pid()} still serves`);
  }
  m.daemon.systemd.notify(`MAINPID=${pid}`); // under systemd the new master is the service's main process now
  runnerLog(upgradedLine(upgrade, m.stage));
  stop(m, true, "master: the new master is ready: retiring this one and its workers");
}
