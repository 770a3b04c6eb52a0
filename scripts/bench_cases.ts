/**
 * The bench's kinds of run (a daemonizing launcher, a foreground server, a short command) and the
 * round-robin that takes them, so a burst of load from elsewhere on the machine hits every case alike.
 *
 * @module
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import {
  freePort,
  lastInt,
  listeners,
  median,
  type Memory,
  memory,
  record,
  rss,
  SETTLE_MS,
  sleep,
  start,
  type Started,
  stopPid,
  tail,
  waitConnect,
  waitGone,
} from "./bench_proc.ts";

/** One run of a case; every field in ms or bytes. */
export interface Sample {
  /** launch → first successful connect (servers), launch → exit (short commands) */
  ready: number;
  /** launch → the launcher's exit */
  launcher?: number;
  /** the idle server's VmRSS, SETTLE_MS after ready */
  rss?: number;
  /** the median VmRSS of the other processes listening on the port (workers) */
  childRss?: number;
  /** the idle server's (supervisor's, master's) memory from smaps_rollup, SETTLE_MS after ready */
  mem?: Memory;
  /** the first other process listening on the port (the kept-alive entry, a worker) */
  childMem?: Memory;
  /** the stop command → every process gone */
  stop?: number;
}

export interface Case {
  name: string;
  /** Why it is skipped, when it is. */
  skip?: string;
  samples: Sample[];
  error?: string;
  /** The command's own peak RSS (median of GNU time's %M), measured apart from the timed runs. */
  peak?: number | string;
  /** Starts one instance on `port`; returns its sample. Must record what it starts. */
  run?: (port: number, i: number) => Promise<Sample>;
}

export const skipped: string[] = [];

export function skip(name: string, why: string): Case {
  skipped.push(`${name}: ${why}`);
  return { name, skip: why, samples: [] };
}

export type Stopper = (pid: number) => Promise<{ ok: boolean; detail?: string }>;

/** A daemonizing launcher: time to first connect, launcher exit and peak RSS, the daemon's RSS, then stop. */
export async function daemonRun(
  argv: string[],
  port: number,
  pidOf: (s: Started) => Promise<number>,
  stopper: Stopper,
  env?: Record<string, string | undefined>,
): Promise<Sample> {
  const t0 = performance.now();
  const launcher = start(argv, env);
  let pid: number | undefined;
  let also: number[] = [];
  try {
    const readyAt = await waitConnect(
      port,
      t0,
      argv.join(" "),
      () =>
        launcher.exit !== undefined && launcher.exit !== 0
          ? `launcher exited ${launcher.exit}: ${tail(launcher.stderr + launcher.stdout)}`
          : undefined,
    );
    // A launcher that returns before its daemon is ready would make the connect the only honest measure;
    // the launcher's own exit time is reported alongside.
    const code = await launcher.proc.exited;
    if (code !== 0) throw new Error(`launcher exited ${code}: ${tail(launcher.stderr)}`);
    pid = await pidOf(launcher);
    if (!Number.isInteger(pid) || pid <= 0) throw new Error(`no daemon pid (launcher said: ${tail(launcher.stdout)})`);
    record(pid);
    also = listeners(port).filter((p) => p !== pid);
    also.forEach(record);
    await sleep(SETTLE_MS);
    const sample: Sample = { ready: readyAt - t0, launcher: launcher.exitedAt! - t0, rss: rss(pid) };
    sample.mem = memory(pid);
    if (also.length) [sample.childRss, sample.childMem] = [median(also.map(rss)), memory(also[0])];
    const s0 = performance.now();
    const { ok, detail } = await stopper(pid);
    if (!ok) throw new Error(`stop failed: ${detail}`);
    for (const p of [pid, ...also]) {
      if (!await waitGone(p, 5000)) throw new Error(`pid ${p} still alive after stop`);
    }
    sample.stop = performance.now() - s0;
    return sample;
  } finally {
    // Whatever failed above: nothing of this run survives into the next one.
    if (launcher.exit === undefined) await stopPid(launcher.proc.pid);
    for (const p of [...(pid ? [pid] : []), ...also]) await stopPid(p);
    for (const p of listeners(port)) {
      record(p); // a daemon whose pid we never learned: found by its port, stopped by that pid
      await stopPid(p);
    }
  }
}

/** A foreground server: time to first connect, its idle RSS; stopped by its pid (and what listens). */
export async function foregroundRun(argv: string[], port: number, cwd?: string): Promise<Sample> {
  const t0 = performance.now();
  const child = start(argv, undefined, cwd);
  try {
    const readyAt = await waitConnect(
      port,
      t0,
      argv.join(" "),
      () => child.exit !== undefined ? `exited ${child.exit}: ${tail(child.stderr)}` : undefined,
    );
    await sleep(SETTLE_MS);
    const server = listeners(port)[0] ?? child.proc.pid; // `deno task` runs the server in a child
    return { ready: readyAt - t0, rss: rss(server), mem: memory(server) };
  } finally {
    for (const p of listeners(port)) record(p);
    await stopPid(child.proc.pid);
    for (const p of listeners(port)) await stopPid(p);
  }
}

/** Where a daemon case's round `i` keeps its pid file (-1: the warm-up round). */
export const pidFileFor = (tmp: string, tag: string, i: number) => join(tmp, `${tag}-${i < 0 ? "warm" : i}.pid`);

/** `--stop` of a daemonic daemon started by `cmd`: exit 0 (its own wait for the exit is included). */
export const daemonicStop = (cmd: string[], pidFile: string): Stopper => async () => {
  const stopper = start([...cmd, "--stop", "--pid-file", pidFile]);
  const code = await stopper.proc.exited;
  return { ok: code === 0, detail: `exit ${code}: ${tail(stopper.stderr)}` };
};

/** `cmd --daemon EXTRA --pid-file … -- ENTRYARGS PORT`, timed to ready, then stopped by its `--stop` (timed). */
export function daemonicCase(
  name: string,
  tag: string,
  cmd: string[],
  tmp: string,
  extra: string[] = [],
  entryArgs: string[] = [],
): Case {
  const run = (port: number, i: number) => {
    const pidFile = pidFileFor(tmp, tag, i);
    const argv = [...cmd, "--daemon", ...extra, "--pid-file", pidFile, "--", ...entryArgs, String(port)];
    return daemonRun(argv, port, async (s) => lastInt(s.stdout), daemonicStop(cmd, pidFile));
  };
  return { name, samples: [], run };
}

/** `argv PORT` in the foreground, timed to ready. */
export const foregroundCase = (name: string, argv: string[], cwd?: string): Case => ({
  name,
  samples: [],
  run: (port) => foregroundRun([...argv, String(port)], port, cwd),
});

/** A command that exits by itself: launch → exit, and its peak RSS. `ok` says which exit codes are right. */
export async function shortRun(argv: string[], ok: (code: number) => boolean = (c) => c === 0): Promise<Sample> {
  const t0 = performance.now();
  const child = start(argv);
  const code = await child.proc.exited;
  await sleep(0); // let the exit handler record the exit time and rusage
  if (!ok(code)) throw new Error(`${argv.join(" ")} exited ${code}: ${tail(child.stderr + child.stdout)}`);
  return { ready: child.exitedAt! - t0 };
}

/** A daemon of `cmd` left running for the short commands to ask (`--status`): stopped by `stop()`. */
export interface Running {
  pidFile: string;
  /** the daemon's pid, when it started */
  pid?: number;
  /** why it did not start */
  error?: string;
  /** `--stop`, then every process of it (the daemon, what listens on its port) by pid */
  stop(): Promise<void>;
}

/** Starts `cmd --daemon --pid-file PIDFILE -- PORT` (a port from the OS) and waits for its launcher. */
export async function runningDaemon(cmd: string[], pidFile: string): Promise<Running> {
  const port = await freePort();
  const launcher = start([...cmd, "--daemon", "--pid-file", pidFile, "--", String(port)]);
  const code = await launcher.proc.exited;
  const pid = code === 0 ? lastInt(launcher.stdout) : NaN;
  const started = Number.isInteger(pid) && pid > 0;
  if (started) record(pid);
  const stop = async () => {
    for (const p of listeners(port)) record(p);
    if (started) await daemonicStop(cmd, pidFile)(pid);
    for (const p of [...(started ? [pid] : []), ...listeners(port)]) await stopPid(p);
  };
  const error = started ? undefined : `exit ${code}: ${tail(launcher.stderr + launcher.stdout)}`;
  return { pidFile, pid: started ? pid : undefined, error, stop };
}

/** `argv`, timed from launch to exit. */
export const shortCase = (name: string, argv: string[]): Case => ({ name, samples: [], run: () => shortRun(argv) });

const TIME = ["/usr/bin/time", "/bin/time"].find(existsSync);

/**
 * Peak RSS of the process `argv` starts, as wait4 reports it (GNU time's %M: the process and the children it
 * reaped, not a daemon it leaves running), median of `runs`; `after` runs after each (to stop a daemon).
 * Apart from the timed runs, which time's own fork and exec would slow.
 */
export async function peakRss(
  argv: string[],
  runs: number,
  tmp: string,
  after?: () => Promise<void>,
): Promise<number | string> {
  if (!TIME) return "GNU time not installed (Debian package `time`)";
  const xs: number[] = [];
  const out = join(tmp, "peak-rss");
  for (let i = 0; i < runs; i++) {
    const child = start([TIME, "-f", "%M", "-o", out, ...argv]);
    const code = await child.proc.exited;
    await after?.();
    if (code !== 0 && !(argv.includes("--status") && code === 3)) return `exit ${code}: ${tail(child.stderr)}`;
    xs.push(Number(readFileSync(out, "utf8").trim().split("\n").pop()) * 1024);
  }
  return median(xs);
}

/** Runs every case round-robin (a warm-up round, then `runs` rounds). A failing case is dropped from later
 * rounds, with the reason. */
export async function measureAll(all: Case[], runs: number): Promise<void> {
  const active = all.filter((c) => !c.skip && c.run);
  for (let i = -1; i < runs; i++) { // i = -1: warm-up (deno's module cache, page cache), not counted
    for (const c of active) {
      if (c.error) continue;
      try {
        const sample = await c.run!(await freePort(), i);
        if (i >= 0) c.samples.push(sample);
      } catch (err) {
        c.error = (err as Error).message;
        skipped.push(`${c.name}: failed: ${c.error}`);
      }
    }
  }
}

/** The median of one field over a case's samples. */
export function med(c: Case, key: keyof Sample): number | undefined {
  const xs = c.samples.map((s) => s[key]).filter((x): x is number => typeof x === "number");
  return xs.length ? median(xs) : undefined;
}
