/**
 * The master of pre-forked workers, Unicorn's way: it runs no entry code, keeps N workers up, replaces one
 * that exits (at once, or with exponential backoff when it keeps crashing right after start), kills one
 * whose heartbeat is older than `workerTimeout`, and answers Unicorn's signals:
 * TERM/INT quick stop, QUIT graceful stop, HUP rolling restart, TTIN/TTOU one worker more/less,
 * URG (and USR1 on Bun) reopen logs (forwarded to the workers as URG).
 *
 * Workers share the port through SO_REUSEPORT (see `shareListeners` in _runtime.ts). A retiring listener
 * hands its queued connections to its siblings only when the kernel's `net.ipv4.tcp_migrate_req` is 1; the
 * master warns at start when it is not.
 *
 * @module
 */
import { readFileSync, renameSync, rmSync } from "node:fs";
import process from "node:process";
import { type Libc, libc as systemLibc, O } from "../ffi/mod.ts";
import { RUNTIME } from "./_runtime.ts";
import { reopenLogs } from "./log/rotate.ts";
import { runnerLog } from "./log/setup.ts";
import { ownChildren, processInfo } from "./process_tree.ts";
import type { LogLevel } from "./log/setup.ts";
import { type LogFormat, WORKER_ID_ENV } from "./log/sink.ts";
import { noteStopSignal, REOPEN, SIG } from "./signals.ts";
import { handOver } from "./stage.ts";
import type { WorkerStage } from "./worker.ts";
import { writeSidecar } from "./safe_file.ts";

/** Settings of a {@linkcode Supervisor}. */
export interface SupervisorOptions {
  name: string;
  workers: number;
  /** Seconds without a heartbeat before a worker is killed. */
  workerTimeout: number;
  /** Seconds a graceful stop of a worker may take before SIGKILL. */
  timeout: number;
  /** The command that starts a worker (the daemon's own, as first started, in its first directory). */
  command: { path: string; args: string[]; cwd: string };
  /** The working directory workers switch to once started. */
  chdir: string;
  args: string[];
  ready: "auto" | "manual";
  /** Where the worker table is written for `--status`. */
  statusFile: string;
  /** The log file SIGURG reopens, and how workers log. */
  logFile?: string;
  logLevel?: LogLevel;
  logFormat?: LogFormat;
  /** USR2: start the binary on disk as a new master; resolves `true` once it is ready. */
  upgrade?: () => Promise<boolean>;
}

interface Worker {
  id: number;
  pid: number;
  pidfd: number;
  fd: number;
  startedAt: number;
  lastBeat: number;
  ready: boolean;
  error?: string;
  retiring: boolean;
  restarts: number;
  buffer: string;
  onReady: ((ok: boolean, error?: string) => void)[];
  onExit: (() => void)[];
}

/** One row of the worker table written for `--status`. */
export interface WorkerRow {
  id: number;
  pid: number;
  startedAt: number;
  restarts: number;
}

const decoder = new TextDecoder();

function describeExit(status: number | null): string {
  if (status === null) return "exited";
  const signal = status & 0x7f;
  return signal ? `was killed by signal ${signal}` : `exited with code ${(status >> 8) & 0xff}`;
}

/**
 * Supervises the workers. Create it in the daemon, `await start()` (resolves when all are ready, rejects
 * with the first worker's start-up error), then it runs until a stop signal.
 */
export class Supervisor {
  private readonly slots = new Map<number, Worker>();
  private readonly retiring = new Set<Worker>();
  private readonly crashes = new Map<number, number>();
  private readonly restarts = new Map<number, number>();
  private stopping = false;
  private starting = true;
  private rolling = false;
  private timer?: ReturnType<typeof setInterval>;
  private interval = 0;
  private lastAdoptedReap = 0;

  constructor(private options: SupervisorOptions, private readonly libc: Libc = systemLibc) {}

  /** Starts the workers and the supervision loop. */
  async start(): Promise<void> {
    this.warnIfLossyReuseport();
    this.libc.setChildSubreaper(); // orphans of the entry's children come back to us, in the daemon's tree
    this.schedule();
    this.handleSignals();
    try {
      await Promise.all(Array.from({ length: this.options.workers }, (_, i) => this.whenReady(this.spawn(i + 1))));
    } catch (err) {
      this.stopping = true;
      for (const w of this.all()) this.signal(w, SIG.KILL);
      throw err;
    }
    this.starting = false;
    this.writeStatus();
    runnerLog(`master: ${this.options.workers} workers ready`);
  }

  private all(): Worker[] {
    return [...this.slots.values(), ...this.retiring];
  }

  private warnIfLossyReuseport(): void {
    try {
      if (readFileSync("/proc/sys/net/ipv4/tcp_migrate_req", "utf8").trim() === "0") {
        runnerLog("master: net.ipv4.tcp_migrate_req is 0: a rolling restart can reset connections queued at a retiring worker: set it to 1 (sysctl -w net.ipv4.tcp_migrate_req=1)");
      }
    } catch {
      // Kernel before 5.14: no migration at all.
    }
  }

  private spawn(id: number): Worker {
    const stage: WorkerStage = {
      role: "worker",
      id,
      name: this.options.name,
      masterPid: process.pid,
      args: this.options.args,
      ready: this.options.ready,
      heartbeatMs: Math.max(100, Math.min(1000, this.options.workerTimeout * 250)),
      timeout: this.options.timeout,
      chdir: this.options.chdir,
      logFile: this.options.logFile,
      logLevel: this.options.logLevel,
      logFormat: this.options.logFormat,
    };
    const { parentEnd: readEnd, childEnd: writeEnd, env: marker } = handOver(stage, this.libc);
    // Bun's node:http shares a port (reusePort) only in a cluster worker; this marks ours as one.
    const env = {
      ...process.env,
      ...marker,
      [WORKER_ID_ENV]: String(id),
      ...RUNTIME.workerEnv(id),
    };
    let pid: number;
    try {
      pid = this.libc.spawn({
        path: this.options.command.path,
        argv: [this.options.command.path, ...this.options.command.args],
        env,
        fds: [{ path: "/dev/null", flags: O.RDONLY }, 1, 2, writeEnd],
        cwd: this.options.command.cwd, // where its relative paths (the script's) resolve
      });
    } finally {
      this.libc.close(writeEnd);
    }
    const now = Date.now();
    const worker: Worker = {
      id, pid, pidfd: this.libc.pidfdOpen(pid), fd: readEnd, startedAt: now, lastBeat: now, ready: false, retiring: false,
      restarts: this.restarts.get(id) ?? 0, buffer: "", onReady: [], onExit: [],
    };
    this.slots.set(id, worker);
    runnerLog(`master: worker[${id}] started (pid ${pid})`);
    this.schedule();
    return worker;
  }

  private whenReady(worker: Worker): Promise<void> {
    return new Promise((resolve, reject) => {
      worker.onReady.push((ok, error) => ok ? resolve() : reject(new Error(error ?? `worker[${worker.id}] exited before it was ready`)));
    });
  }

  private whenGone(worker: Worker): Promise<void> {
    return new Promise((resolve) => worker.onExit.push(resolve));
  }

  private signal(worker: Worker, signal: number): void {
    try {
      this.libc.pidfdSignal(worker.pidfd, signal);
    } catch {
      // Already exited; the loop reaps it.
    }
  }

  /** Ticks every 2 ms while a worker is starting or retiring (readiness is waited on), else every 50 ms. */
  private schedule(): void {
    const busy = this.stopping || this.retiring.size > 0 || [...this.slots.values()].some((w) => !w.ready);
    const interval = busy ? 2 : 50;
    if (this.timer && this.interval === interval) return;
    clearInterval(this.timer);
    this.interval = interval;
    this.timer = setInterval(() => this.tick(), interval);
  }

  private tick(): void {
    this.step();
    this.schedule();
  }

  private step(): void {
    const now = Date.now();
    if (now - this.lastAdoptedReap >= 1000) this.reapAdopted(now);
    for (const w of this.all()) {
      while (w.fd >= 0 && this.libc.waitReadable(w.fd, 0)) {
        const chunk = this.libc.read(w.fd, 4096);
        if (chunk.length === 0) {
          this.libc.close(w.fd);
          w.fd = -1;
          break;
        }
        w.buffer += decoder.decode(chunk);
        let nl;
        while ((nl = w.buffer.indexOf("\n")) >= 0) {
          this.onMessage(w, w.buffer.slice(0, nl), now);
          w.buffer = w.buffer.slice(nl + 1);
        }
      }
      if (this.libc.waitReadable(w.pidfd, 0)) {
        this.onExit(w, this.reap(w.pid));
      } else if (now - w.lastBeat > this.options.workerTimeout * 1000) {
        runnerLog(`master: worker[${w.id}] (pid ${w.pid}) timeout (${((now - w.lastBeat) / 1000).toFixed(1)} s > ${this.options.workerTimeout} s), killing`);
        w.lastBeat = Infinity; // report once
        this.signal(w, SIG.KILL);
      }
    }
  }

  /** Reaps the orphans we adopted as a subreaper once they exit; workers are reaped through their pidfds. */
  private reapAdopted(now: number): void {
    this.lastAdoptedReap = now;
    const workers = new Set(this.all().map((w) => w.pid));
    for (const pid of ownChildren()) {
      if (!workers.has(pid) && processInfo(pid)?.state === "Z") this.reap(pid);
    }
  }

  /** The exit status of a worker that has exited, or `null` if someone else reaped it already. */
  private reap(pid: number): number | null {
    try {
      return this.libc.waitpid(pid, true);
    } catch {
      return null; // ECHILD
    }
  }

  private onMessage(w: Worker, line: string, now: number): void {
    w.lastBeat = now;
    if (line === "READY" && !w.ready) {
      w.ready = true;
      runnerLog(`master: worker[${w.id}] ready (pid ${w.pid})`);
      for (const f of w.onReady.splice(0)) f(true);
    } else if (line.startsWith("ERROR ")) {
      w.error = (JSON.parse(line.slice(6)) as { message: string }).message;
    }
  }

  private onExit(w: Worker, status: number | null): void {
    if (w.fd >= 0) this.libc.close(w.fd);
    this.libc.close(w.pidfd);
    const lived = Date.now() - w.startedAt;
    if (this.slots.get(w.id) === w) this.slots.delete(w.id);
    this.retiring.delete(w);
    for (const f of w.onReady.splice(0)) f(false, w.error ?? `worker[${w.id}] ${describeExit(status)} before it was ready`);
    for (const f of w.onExit.splice(0)) f();
    if (w.retiring || this.stopping) {
      runnerLog(`master: worker[${w.id}] (pid ${w.pid}) ${describeExit(status)}`);
      this.writeStatus();
      return;
    }
    // An unplanned exit: replace it, backing off while it keeps dying young.
    const crashes = !w.ready || lived < 5000 ? (this.crashes.get(w.id) ?? 0) + 1 : 0;
    this.crashes.set(w.id, crashes);
    this.restarts.set(w.id, (this.restarts.get(w.id) ?? 0) + 1);
    const delay = crashes <= 1 ? 0 : Math.min(30_000, 100 * 2 ** (crashes - 1));
    runnerLog(`master: worker[${w.id}] (pid ${w.pid}) ${describeExit(status)} after ${(lived / 1000).toFixed(1)} s${w.error ? `: ${w.error.split("\n")[0]}` : ""}; ${delay ? `crash loop: restarting in ${delay / 1000} s` : "restarting"}`);
    if (this.starting) return;
    setTimeout(() => {
      if (!this.stopping && !this.slots.has(w.id)) this.spawn(w.id);
      this.writeStatus();
    }, delay);
  }

  /** Stops every worker: quick (TERM) or graceful (QUIT, bounded by `timeout`), then SIGKILL. */
  async stop(graceful: boolean): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    const workers = this.all();
    this.schedule();
    for (const w of workers) this.signal(w, graceful ? SIG.QUIT : SIG.TERM);
    const bound = setTimeout(() => workers.forEach((w) => this.signal(w, SIG.KILL)), (graceful ? this.options.timeout : 5) * 1000);
    await Promise.all(workers.map((w) => this.whenGone(w)));
    clearTimeout(bound);
    clearInterval(this.timer);
    rmSync(this.options.statusFile, { force: true });
  }

  /** Replaces one worker gracefully: start its successor, wait until it is ready, then retire the old one. */
  private async replace(old: Worker): Promise<boolean> {
    this.slots.delete(old.id);
    old.retiring = true;
    this.retiring.add(old);
    let next: Worker;
    try {
      next = this.spawn(old.id);
      await this.whenReady(next);
    } catch (err) {
      runnerLog(`master: worker[${old.id}] successor failed, keeping pid ${old.pid}: ${(err as Error).message.split("\n")[0]}`);
      if (!this.slots.has(old.id)) {
        this.retiring.delete(old);
        old.retiring = false;
        this.slots.set(old.id, old);
      }
      return false;
    }
    await this.retire(old);
    return true;
  }

  private async retire(w: Worker): Promise<void> {
    w.retiring = true;
    this.retiring.add(w);
    if (this.slots.get(w.id) === w) this.slots.delete(w.id);
    this.signal(w, SIG.QUIT);
    this.schedule();
    const bound = setTimeout(() => this.signal(w, SIG.KILL), this.options.timeout * 1000);
    await this.whenGone(w);
    clearTimeout(bound);
  }

  /** HUP: a rolling restart of every worker, one at a time. */
  async rollingRestart(): Promise<void> {
    if (this.rolling || this.stopping) return;
    this.rolling = true;
    runnerLog("master: SIGHUP: rolling restart");
    try {
      for (const w of [...this.slots.values()]) {
        if (this.stopping) break;
        if (!(await this.replace(w))) break;
      }
    } finally {
      this.rolling = false;
      this.writeStatus();
    }
    runnerLog("master: rolling restart done");
  }

  private handleSignals(): void {
    const quit = async (graceful: boolean, signal: string) => {
      noteStopSignal(signal);
      runnerLog(`master: ${signal}: ${graceful ? "graceful" : "quick"} stop`);
      await this.stop(graceful);
      process.exit(0);
    };
    process.on("SIGTERM", () => quit(false, "SIGTERM"));
    process.on("SIGINT", () => quit(false, "SIGINT"));
    process.on("SIGQUIT", () => quit(true, "SIGQUIT"));
    process.on("SIGHUP", () => void this.rollingRestart());
    process.on("SIGTTIN", () => {
      if (this.stopping) return;
      const id = Math.max(0, ...this.slots.keys(), ...[...this.retiring].map((w) => w.id)) + 1;
      runnerLog(`master: SIGTTIN: adding worker[${id}]`);
      this.spawn(id);
      this.writeStatus();
    });
    process.on("SIGTTOU", () => {
      if (this.stopping || this.slots.size <= 1) return;
      const last = [...this.slots.values()].reduce((a, b) => (b.id > a.id ? b : a));
      runnerLog(`master: SIGTTOU: retiring worker[${last.id}]`);
      void this.retire(last).then(() => this.writeStatus());
    });
    process.on("SIGUSR2", async () => {
      if (this.stopping || this.rolling || !this.options.upgrade) return;
      this.rolling = true;
      runnerLog("master: SIGUSR2: starting the executable on disk as a new master");
      const upgraded = await this.options.upgrade();
      this.rolling = false;
      if (!upgraded) return;
      runnerLog("master: the new master is ready: retiring this one and its workers");
      await this.stop(true);
      process.exit(0);
    });
    for (const signal of RUNTIME.reopenSignals) {
      process.on(signal, () => {
        if (this.options.logFile) reopenLogs(this.options.logFile);
        for (const w of this.all()) this.signal(w, REOPEN);
      });
    }
  }

  /** Moves the worker table (beside a pid file renamed to `.oldbin`). */
  moveStatusFile(to: string): void {
    rmSync(this.options.statusFile, { force: true });
    this.options.statusFile = to;
    this.writeStatus();
  }

  /** Writes the worker table for `--status` (atomically). */
  private writeStatus(): void {
    if (this.stopping) return;
    const rows: WorkerRow[] = [...this.slots.values()].map((w) => ({ id: w.id, pid: w.pid, startedAt: w.startedAt, restarts: this.restarts.get(w.id) ?? 0 }));
    const tmp = `${this.options.statusFile}.${process.pid}.tmp`;
    try {
      writeSidecar(tmp, JSON.stringify({ master: process.pid, workers: rows.sort((a, b) => a.id - b.id) }) + "\n", 0o644);
      renameSync(tmp, this.options.statusFile);
    } catch (err) {
      runnerLog(`master: cannot write ${this.options.statusFile}: ${(err as Error).message}`);
    }
  }
}

/** Reads the worker table a master wrote next to its pid file, or `null` when there is none. */
export function readWorkerTable(statusFile: string): { master: number; workers: WorkerRow[] } | null {
  try {
    return JSON.parse(readFileSync(statusFile, "utf8"));
  } catch {
    return null;
  }
}
