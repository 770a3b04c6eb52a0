#!/usr/bin/env bun
/**
 * `npm run bench`: daemonic side by side with its peers, in one run, printed as markdown tables.
 *
 *   bun scripts/bench.ts [--runs N] [--duration SEC] [--daemonic DIR] [--bin PATH]
 *
 * --runs      start-ups per case (default 7, at least 7 for the report)
 * --duration  seconds of each wrk run (default 5)
 * --daemonic  the daemonic checkout whose `src/cli.ts build` makes the binary (default: this one)
 * --bin       bench this already built binary of scripts/bench-server.ts instead of building one
 *
 * What it measures, all on loopback, with ports the OS picked (bind 0, close, pass the number):
 * - time to ready: from launching the command to the first successful TCP connect (polled every 1 ms), for
 *   the same minimal HTTP entry (scripts/bench-server.ts) in the compiled binary (foreground, --daemon,
 *   --daemon --workers 2), under `deno run -A src/cli.ts run`, and the peers found on this machine
 *   (Ruby Process.daemon, start-stop-daemon, PM2). It installs nothing: a missing peer is skipped, saying why.
 * - stop latency, RSS, binary size, and wrk throughput with 1 and 2 workers.
 * Every process it starts is recorded by pid and stopped before the next run, and again on any exit.
 *
 * @module
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync } from "node:fs";
import { connect, createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const { values: flags } = parseArgs({
  options: { runs: { type: "string" }, duration: { type: "string" }, daemonic: { type: "string" }, bin: { type: "string" } },
});
const RUNS = Math.max(1, Number(flags.runs ?? 7));
const WRK_SECONDS = Math.max(1, Number(flags.duration ?? 5));
const DAEMONIC = resolve(flags.daemonic ?? ROOT);
const BIN_DIR = join(ROOT, "node_modules", ".bin");
const BUN = process.execPath;
const DENO = existsSync(join(BIN_DIR, "deno")) ? join(BIN_DIR, "deno") : which("deno");
const ENTRY = join(ROOT, "scripts", "bench-server.ts");
const RUBY_SCRIPT = join(ROOT, "scripts", "bench-daemon.rb");
const READY_TIMEOUT_MS = 20_000;
const SETTLE_MS = 250; // idle time after ready before RSS is read and --stop is timed
const WRK_CPU = 1; // wrk runs pinned here; the daemon is not pinned
const began = performance.now();
const loadAtStart = loadavg();
const tmp = mkdtempSync(join(tmpdir(), "daemonic-bench-"));

// ---------------------------------------------------------------------------------------------------------
// Processes: every pid we start (or learn of) is recorded, and killed on the way out whatever happened.

const recorded = new Set<number>();

function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z"; // a zombie has exited
  } catch {
    return false;
  }
}

function kill(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // Already gone.
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitGone(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  while (alive(pid)) {
    if (performance.now() > deadline) return false;
    await sleep(1);
  }
  return true;
}

/** SIGTERM, then SIGKILL after 3 s; forgets the pid once it is gone. */
async function stopPid(pid: number): Promise<void> {
  if (alive(pid)) {
    kill(pid, "SIGTERM");
    if (!await waitGone(pid, 3000)) {
      kill(pid, "SIGKILL");
      await waitGone(pid, 3000);
    }
  }
  recorded.delete(pid);
}

function killAllSync(): void {
  for (const pid of recorded) kill(pid, "SIGKILL");
  recorded.clear();
}

process.on("exit", () => {
  killAllSync();
  rmSync(tmp, { recursive: true, force: true });
});
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.on(signal, () => {
    console.error(`bench: ${signal}: stopping every recorded process`);
    process.exit(130);
  });
}

/** Pids of the processes holding a listening TCP socket on 127.0.0.1:`port` (from /proc/net/tcp). */
function listeners(port: number): number[] {
  const inodes = new Set<string>();
  const hexPort = port.toString(16).toUpperCase().padStart(4, "0");
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let text = "";
    try {
      text = readFileSync(table, "utf8");
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length > 9 && cols[1].endsWith(`:${hexPort}`) && cols[3] === "0A") inodes.add(`socket:[${cols[9]}]`);
    }
  }
  const pids: number[] = [];
  if (inodes.size === 0) return pids;
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      for (const fd of readdirSync(`/proc/${name}/fd`)) {
        if (inodes.has(readlinkSync(`/proc/${name}/fd/${fd}`))) {
          pids.push(Number(name));
          break;
        }
      }
    } catch {
      // Gone, or not ours to look at.
    }
  }
  return pids;
}

function rss(pid: number): number {
  const match = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  if (!match) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(match[1]) * 1024;
}

// ---------------------------------------------------------------------------------------------------------
// Small tools

function which(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? "").split(":")) {
    const path = join(dir || ".", name);
    try {
      if (statSync(path).isFile()) return path;
    } catch {
      // Not here.
    }
  }
  return undefined;
}

function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolvePort(port));
    });
  });
}

function tryConnect(port: number): Promise<boolean> {
  return new Promise((done) => {
    const socket = connect({ port, host: "127.0.0.1" });
    socket.once("connect", () => {
      socket.destroy();
      done(true);
    });
    socket.once("error", () => {
      socket.destroy();
      done(false);
    });
  });
}

/** Connects every 1 ms until a connect succeeds; returns when it did (performance.now()). */
async function waitConnect(port: number, since: number, what: string, bail?: () => string | undefined): Promise<number> {
  for (;;) {
    if (await tryConnect(port)) return performance.now();
    const why = bail?.();
    if (why) throw new Error(`${what}: ${why}`);
    if (performance.now() - since > READY_TIMEOUT_MS) throw new Error(`${what}: no connect within ${READY_TIMEOUT_MS} ms`);
    await sleep(1);
  }
}

interface Started {
  proc: ReturnType<typeof Bun.spawn>;
  exit?: number; // exit code once exited
  exitedAt?: number;
  stdout: string;
  stderr: string;
}

/** Starts a command (recorded), collecting its output and exit time. */
function start(argv: string[], env: Record<string, string | undefined> = process.env, cwd = ROOT): Started {
  const proc = Bun.spawn(argv, { cwd, env, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  recorded.add(proc.pid);
  const started: Started = { proc, stdout: "", stderr: "" };
  void new Response(proc.stdout as ReadableStream).text().then((t) => started.stdout = t);
  void new Response(proc.stderr as ReadableStream).text().then((t) => started.stderr = t);
  void proc.exited.then((code) => {
    started.exit = code;
    started.exitedAt = performance.now();
    recorded.delete(proc.pid);
  });
  return started;
}

function runSync(argv: string[], cwd = ROOT): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(argv[0], argv.slice(1), { cwd, encoding: "utf8", timeout: 120_000 });
  return { status: r.status, stdout: r.stdout ?? "", stderr: (r.stderr ?? "") + (r.error ? String(r.error) : "") };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const ms = (x: number) => x.toFixed(1);
const mb = (bytes: number) => (bytes / 1048576).toFixed(1);
const lastInt = (text: string) => Number(/(\d+)\s*$/.exec(text.trim())?.[1] ?? NaN);
const tail = (text: string) => text.trim().split("\n").slice(-3).join(" | ");

// ---------------------------------------------------------------------------------------------------------
// The cases

/** One start-up: time to first connect, time the launcher took, the daemon's pid(s). */
interface Sample {
  ready: number;
  launcher?: number;
  rss?: number;
  stop?: number;
}

interface Case {
  name: string;
  /** Why it is skipped, when it is. */
  skip?: string;
  samples: Sample[];
  error?: string;
  /** Starts one instance on `port`; returns its sample once ready. Must record what it starts. */
  run?: (port: number, i: number) => Promise<Sample>;
}

const skipped: string[] = [];
const notes: string[] = [];

function skip(name: string, why: string): Case {
  skipped.push(`${name}: ${why}`);
  return { name, skip: why, samples: [] };
}

/** A daemonizing launcher: time to first connect, launcher exit, daemon pid from `pidOf`, then stop. */
async function daemonRun(
  argv: string[],
  port: number,
  pidOf: (s: Started) => Promise<number>,
  stopper: (pid: number) => Promise<{ ok: boolean; detail?: string }>,
  opts: { env?: Record<string, string | undefined>; measureRss?: boolean | "with-entry" } = {},
): Promise<Sample> {
  const t0 = performance.now();
  const launcher = start(argv, opts.env);
  let pid: number | undefined;
  let also: number[] = [];
  try {
    const readyAt = await waitConnect(port, t0, argv.join(" "), () =>
      launcher.exit !== undefined && launcher.exit !== 0 ? `launcher exited ${launcher.exit}: ${tail(launcher.stderr + launcher.stdout)}` : undefined);
    // A launcher that returns before its daemon is ready would make the connect the only honest measure;
    // the launcher's own exit time is reported alongside.
    const code = await launcher.proc.exited;
    const launcherMs = launcher.exitedAt! - t0;
    if (code !== 0) throw new Error(`launcher exited ${code}: ${tail(launcher.stderr)}`);
    pid = await pidOf(launcher);
    if (!Number.isInteger(pid) || pid <= 0) throw new Error(`no daemon pid (launcher said: ${tail(launcher.stdout)})`);
    recorded.add(pid);
    also = listeners(port).filter((p) => p !== pid);
    also.forEach((p) => recorded.add(p));
    await sleep(SETTLE_MS);
    const sample: Sample = { ready: readyAt - t0, launcher: launcherMs };
    if (opts.measureRss) sample.rss = rss(pid) + (opts.measureRss === "with-entry" ? also.reduce((sum, p) => sum + rss(p), 0) : 0);
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
      recorded.add(p); // a daemon whose pid we never learned: found by its port, stopped by that pid
      await stopPid(p);
    }
  }
}

/** A foreground process: time to first connect; RSS; stopped by its pid. */
async function foregroundRun(argv: string[], port: number, measureRss = false): Promise<Sample> {
  const t0 = performance.now();
  const child = start(argv);
  try {
    const readyAt = await waitConnect(port, t0, argv.join(" "), () =>
      child.exit !== undefined ? `exited ${child.exit}: ${tail(child.stderr)}` : undefined);
    const sample: Sample = { ready: readyAt - t0 };
    if (measureRss) {
      await sleep(SETTLE_MS);
      sample.rss = rss(child.proc.pid);
    }
    return sample;
  } finally {
    await stopPid(child.proc.pid);
  }
}

/** `--stop` of a daemonic daemon: exit 0 (its own wait for the exit is included). */
function daemonicStop(cmd: string[], pidFile: string) {
  return async () => {
    const stopper = start([...cmd, "--stop", "--pid-file", pidFile]);
    const code = await stopper.proc.exited;
    return { ok: code === 0, detail: `exit ${code}: ${tail(stopper.stderr)}` };
  };
}

async function readPid(path: string, timeoutMs = 3000): Promise<number> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    try {
      const pid = Number(readFileSync(path, "utf8").trim());
      if (pid > 0) return pid;
    } catch {
      // Not yet written.
    }
    if (performance.now() > deadline) throw new Error(`no pid in ${path}`);
    await sleep(1);
  }
}

/** Runs `run` of every case round-robin (a warm-up round, then RUNS rounds), so a burst of load from other
 * processes on the machine hits all cases alike and the ratios of one run stay comparable. A case that
 * fails is dropped from later rounds, with the reason. */
async function measureAll(all: Case[]): Promise<void> {
  const active = all.filter((c) => !c.skip && c.run);
  for (let i = -1; i < RUNS; i++) { // i = -1: warm-up (deno's module cache, page cache), not counted
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
  for (const c of active) {
    console.error(`bench: ${c.name}: ${c.error ? `failed: ${c.error}` : `${ms(median(c.samples.map((s) => s.ready)))} ms`}`);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Build

console.error(`bench: building in ${tmp}`);
const bin = flags.bin ? resolve(flags.bin) : join(tmp, "bench-daemon");
const bare = join(tmp, "bench-bare");
const bareSame = join(tmp, "bench-bare-same-flags");
const SAME_FLAGS = ["--minify", "--splitting", "--bytecode", "--format", "esm"];
{
  const t = performance.now();
  if (flags.bin) {
    notes.push(`benched the given binary ${bin}`);
  } else {
    const r = runSync([BUN, join(DAEMONIC, "src", "cli.ts"), "build", ENTRY, "-o", bin]);
    if (r.status !== 0) {
      console.error(`bench: cannot build the daemon: ${r.stderr}`);
      process.exit(1);
    }
    notes.push(`daemonic build took ${ms(performance.now() - t)} ms`);
  }
  const b = runSync([BUN, "build", "--compile", ENTRY, "--outfile", bare]);
  if (b.status !== 0) {
    console.error(`bench: cannot build the bare binary: ${b.stderr}`);
    process.exit(1);
  }
  // The same entry compiled with the flags daemonic build uses: what the runner itself adds to the size.
  runSync([BUN, "build", "--compile", ...SAME_FLAGS, ENTRY, "--outfile", bareSame]);
}
const help = runSync([bin, "--help"]).stdout;
const hasWorkers = /--workers\b/.test(help);
const NO_WORKERS = "this build has no --workers";

const daemonCmd = [bin];
const denoCmd = DENO ? [DENO, "run", "-A", join(DAEMONIC, "src", "cli.ts"), "run", ENTRY] : [];
const pidFileFor = (tag: string, i: number) => join(tmp, `${tag}-${i < 0 ? "warm" : i}.pid`);
const fromStdout = async (s: Started) => lastInt(s.stdout);

const cases: Case[] = [];
const foreground: Case = {
  name: "compiled binary, foreground",
  samples: [],
  run: (port) => foregroundRun([bin, "--", String(port)], port, true),
};
cases.push(foreground);

const hasKeepAlive = /--no-keep-alive\b/.test(help);
// Keep-alive (the default since it exists): a supervisor and the entry's process; RSS is both together.
const keepAlive: Case = {
  name: hasKeepAlive ? "compiled binary, `--daemon` (keep-alive: supervisor and entry)" : "compiled binary, `--daemon`",
  samples: [],
  run: (port, i) => {
    const pidFile = pidFileFor("keepalive", i);
    return daemonRun([bin, "--daemon", "--pid-file", pidFile, "--", String(port)], port, fromStdout, daemonicStop(daemonCmd, pidFile), { measureRss: "with-entry" });
  },
};
cases.push(keepAlive);
// The single process: what the goals below are about.
const daemon: Case = hasKeepAlive
  ? {
    name: "compiled binary, `--daemon --no-keep-alive`",
    samples: [],
    run: (port, i) => {
      const pidFile = pidFileFor("daemon", i);
      return daemonRun([bin, "--daemon", "--no-keep-alive", "--pid-file", pidFile, "--", String(port)], port, fromStdout, daemonicStop(daemonCmd, pidFile), { measureRss: true });
    },
  }
  : keepAlive;
if (hasKeepAlive) cases.push(daemon);

const workers2: Case = hasWorkers
  ? {
    name: "compiled binary, `--daemon --workers 2`",
    samples: [],
    run: (port, i) => {
      const pidFile = pidFileFor("workers", i);
      return daemonRun([bin, "--daemon", "--workers", "2", "--pid-file", pidFile, "--", String(port)], port, fromStdout, daemonicStop(daemonCmd, pidFile), { measureRss: true });
    },
  }
  : skip("compiled binary, `--daemon --workers 2`", NO_WORKERS);
cases.push(workers2);

const denoDaemon: Case = DENO
  ? {
    name: "`deno run -A src/cli.ts run ENTRY --daemon`",
    samples: [],
    run: (port, i) => {
      const pidFile = pidFileFor("deno", i);
      return daemonRun([...denoCmd, "--daemon", "--pid-file", pidFile, "--", String(port)], port, fromStdout, daemonicStop(denoCmd, pidFile), { measureRss: true });
    },
  }
  : skip("`deno run … --daemon`", "deno not found in node_modules/.bin or on PATH");
cases.push(denoDaemon);

const RUBY = which("ruby");
const ruby: Case = RUBY
  ? {
    name: "Ruby `Process.daemon` + TCPServer",
    samples: [],
    run: (port, i) => {
      const pidFile = pidFileFor("ruby", i);
      return daemonRun([RUBY, RUBY_SCRIPT, String(port), pidFile], port, () => readPid(pidFile), async (pid) => {
        kill(pid, "SIGTERM");
        return { ok: true };
      }, { measureRss: true });
    },
  }
  : skip("Ruby `Process.daemon`", "ruby not on PATH (Debian package `ruby`)");
cases.push(ruby);

const SSD = ["/sbin/start-stop-daemon", "/usr/sbin/start-stop-daemon"].find(existsSync) ?? which("start-stop-daemon");
const ssd: Case = SSD
  ? {
    name: "`start-stop-daemon --background --make-pidfile` + foreground binary",
    samples: [],
    run: (port, i) => {
      const pidFile = pidFileFor("ssd", i);
      return daemonRun(
        [SSD, "--start", "--background", "--make-pidfile", "--pidfile", pidFile, "--exec", bin, "--", String(port)],
        port,
        () => readPid(pidFile),
        async () => {
          const r = start([SSD, "--stop", "--pidfile", pidFile, "--retry", "TERM/5/KILL/5", "--remove-pidfile"]);
          const code = await r.proc.exited;
          return { ok: code === 0, detail: `exit ${code}: ${tail(r.stderr + r.stdout)}` };
        },
      );
    },
  }
  : skip("start-stop-daemon", "not installed (Debian package `dpkg` provides /sbin/start-stop-daemon)");
cases.push(ssd);

const PM2 = which("pm2") ?? (existsSync(join(BIN_DIR, "pm2")) ? join(BIN_DIR, "pm2") : undefined);
const pm2: Case = PM2
  ? {
    name: "PM2 `pm2 start` (fork mode, God daemon already up)",
    samples: [],
    run: (port, i) => {
      const name = `daemonic-bench-${process.pid}-${i < 0 ? "warm" : i}`;
      const env = { ...process.env, PM2_HOME: join(tmp, "pm2") };
      return daemonRun(
        [PM2, "start", bin, "--name", name, "--interpreter", "none", "--no-autorestart", "--", String(port)],
        port,
        async () => lastInt(spawnSync(PM2, ["pid", name], { env, encoding: "utf8" }).stdout ?? ""),
        async (pid) => {
          const r = start([PM2, "delete", name], env);
          const code = await r.proc.exited;
          kill(pid, "SIGTERM");
          return { ok: code === 0, detail: `exit ${code}: ${tail(r.stderr + r.stdout)}` };
        },
        { env },
      );
    },
  }
  : skip("PM2", "pm2 is neither on PATH nor in node_modules/.bin (the bench installs nothing: `npm i -g pm2` to include it)");
cases.push(pm2);

console.error(`bench: time to ready, ${RUNS} rounds over all cases (+1 warm-up round)`);
await measureAll(cases);
if (PM2) spawnSync(PM2, ["kill"], { env: { ...process.env, PM2_HOME: join(tmp, "pm2") } }); // the bench's own PM2 God daemon

// ---------------------------------------------------------------------------------------------------------
// Memory of bare runs (the daemons' RSS was read in their time-to-ready runs)

const MEM_RUNS = 3;
async function bareRss(argv: string[]): Promise<number | string> {
  try {
    const xs: number[] = [];
    for (let i = 0; i < MEM_RUNS; i++) {
      const port = await freePort();
      xs.push((await foregroundRun([...argv, String(port)], port, true)).rss!);
    }
    return median(xs);
  } catch (err) {
    return (err as Error).message;
  }
}
console.error("bench: memory of bare runs");
const bunBare = await bareRss([BUN, ENTRY]);
const compiledBare = await bareRss([bare]);
const denoBare = DENO ? await bareRss([DENO, "run", "-A", ENTRY]) : "deno not found";

let masterRss: number | string = NO_WORKERS, workerRss: number | string = NO_WORKERS;
if (hasWorkers) {
  try {
    const port = await freePort();
    const pidFile = join(tmp, "mem-workers.pid");
    const l = start([bin, "--daemon", "--workers", "2", "--pid-file", pidFile, "--", String(port)]);
    if (await l.proc.exited !== 0) throw new Error(`launcher failed: ${tail(l.stderr)}`);
    const master = lastInt(l.stdout);
    recorded.add(master);
    await waitConnect(port, performance.now(), "workers");
    await sleep(SETTLE_MS);
    const ws = listeners(port).filter((p) => p !== master);
    ws.forEach((p) => recorded.add(p));
    masterRss = rss(master);
    workerRss = ws.length ? median(ws.map(rss)) : "no worker found on the port";
    await daemonicStop(daemonCmd, pidFile)();
    for (const p of [master, ...ws]) await stopPid(p);
  } catch (err) {
    masterRss = workerRss = (err as Error).message;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Throughput: wrk pinned to one CPU, the daemon free to use both

interface Throughput {
  name: string;
  /** requests/s on "/" (a hello world: on 2 CPUs wrk itself is the limit) */
  rps?: number;
  /** requests/s on "/work" (~0.2 ms of CPU per request: the server is the limit) */
  work?: number;
  why?: string;
}
const WRK = which("wrk");
const TASKSET = which("taskset");
const cpus = navigator.hardwareConcurrency;
const wrkCpu = Math.min(WRK_CPU, cpus - 1);
async function throughput(name: string, extra: string[]): Promise<Throughput> {
  if (!WRK) return { name, why: "wrk not installed (Debian package `wrk`)" };
  const port = await freePort();
  const pidFile = join(tmp, `wrk-${extra.join("")}.pid`);
  const l = start([bin, "--daemon", ...extra, "--pid-file", pidFile, "--", String(port)]);
  let pid: number | undefined;
  try {
    if (await l.proc.exited !== 0) throw new Error(`launcher failed: ${tail(l.stderr)}`);
    pid = lastInt(l.stdout);
    recorded.add(pid);
    listeners(port).forEach((p) => recorded.add(p));
    const pin = TASKSET ? [TASKSET, "-c", String(wrkCpu)] : [];
    const measure = (path: string) => {
      const url = `http://127.0.0.1:${port}${path}`;
      runSync([...pin, WRK, "-t1", "-c32", "-d1s", url]); // warm-up (JIT)
      const r = runSync([...pin, WRK, "-t1", "-c32", `-d${WRK_SECONDS}s`, url]);
      const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(r.stdout)?.[1]);
      if (!rps) throw new Error(`wrk said: ${tail(r.stdout + r.stderr)}`);
      const errors = /Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)/.exec(r.stdout);
      if (errors) notes.push(`wrk against ${name} ${path}: ${errors[0]}`);
      return rps;
    };
    return { name, rps: measure("/"), work: measure("/work") };
  } catch (err) {
    return { name, why: (err as Error).message };
  } finally {
    await daemonicStop(daemonCmd, pidFile)().catch(() => {});
    for (const p of [...(pid ? [pid] : []), ...listeners(port)]) await stopPid(p);
  }
}
console.error(`bench: throughput (wrk -t1 -c32 -d${WRK_SECONDS}s, pinned to CPU ${wrkCpu})`);
const tp: Throughput[] = [await throughput("`--daemon` (no workers)", [])];
if (hasWorkers) {
  tp.push(await throughput("`--daemon --workers 1`", ["--workers", "1"]));
  tp.push(await throughput("`--daemon --workers 2`", ["--workers", "2"]));
} else {
  tp.push({ name: "`--daemon --workers 1`", why: `skipped: ${NO_WORKERS}` });
  tp.push({ name: "`--daemon --workers 2`", why: `skipped: ${NO_WORKERS}` });
}

// ---------------------------------------------------------------------------------------------------------
// Report

const out: string[] = [];
const p = (line = "") => out.push(line);
const med = (c: Case, key: keyof Sample) => {
  const xs = c.samples.map((s) => s[key]).filter((x): x is number => typeof x === "number");
  return xs.length ? median(xs) : undefined;
};
const fg = med(foreground, "ready");
const ratio = (x: number | undefined, base: number | undefined) => x !== undefined && base ? `${(x / base).toFixed(2)}×` : "–";

p(`## daemonic bench`);
p();
p(`${cpus} CPUs (${cpuModel()}), Linux ${osRelease()}, bun ${Bun.version}, ${denoVersion()}; ${RUNS} runs per case, taken round-robin after one warm-up round; medians.`);
p();
p(`### Time to ready (launch → first successful TCP connect, polled every 1 ms)`);
p();
p(`| case | ready ms (median) | min–max | launcher exits ms | ratio to foreground | ratio to Ruby |`);
p(`| --- | ---: | ---: | ---: | ---: | ---: |`);
const rubyMed = med(ruby, "ready");
for (const c of cases) {
  if (c.skip) {
    p(`| ${c.name} | skipped: ${c.skip} | | | | |`);
    continue;
  }
  if (c.error && c.samples.length === 0) {
    p(`| ${c.name} | failed: ${c.error.replace(/\|/g, "/")} | | | | |`);
    continue;
  }
  const r = c.samples.map((s) => s.ready);
  const l = med(c, "launcher");
  p(`| ${c.name} | ${ms(median(r))} | ${ms(Math.min(...r))}–${ms(Math.max(...r))} | ${l === undefined ? "–" : ms(l)} | ${ratio(median(r), fg)} | ${ratio(median(r), rubyMed)} |`);
}
p();
p(`### Stop latency (idle daemon, from the stop command to exit 0 and the process gone)`);
p();
p(`| case | how | median ms | min–max |`);
p(`| --- | --- | ---: | ---: |`);
const stopHow: [Case, string][] = [
  [daemon, "`--stop`"],
  ...(hasKeepAlive ? [[keepAlive, "`--stop` (supervisor and entry gone)"] as [Case, string]] : []),
  [workers2, "`--stop` (master and workers gone)"],
  [denoDaemon, "`deno run … --stop`"],
  [ruby, "kill -TERM pid"],
  [ssd, "`start-stop-daemon --stop --retry TERM/5/KILL/5`"],
];
for (const [c, how] of stopHow) {
  const xs = c.samples.map((s) => s.stop).filter((x): x is number => x !== undefined);
  p(`| ${c.name} | ${how} | ${xs.length ? ms(median(xs)) : c.skip ? `skipped: ${c.skip}` : "–"} | ${xs.length ? `${ms(Math.min(...xs))}–${ms(Math.max(...xs))}` : ""} |`);
}
p();
p(`### Memory (VmRSS ${SETTLE_MS} ms after ready, idle, median)`);
p();
p(`| process | RSS MB | over bare \`bun ENTRY\` |`);
p(`| --- | ---: | ---: |`);
const mem = (v: number | string | undefined) => typeof v === "number" ? mb(v) : v === undefined ? "–" : String(v);
const over = (v: number | string | undefined, base: number | string) =>
  typeof v === "number" && typeof base === "number" ? `${v >= base ? "+" : ""}${mb(v - base)} MB` : "";
const dRss = med(daemon, "rss");
p(`| bare \`bun ENTRY\` | ${mem(bunBare)} | |`);
p(`| bare \`bun build --compile\` of the entry, foreground | ${mem(compiledBare)} | ${over(compiledBare, bunBare)} |`);
p(`| daemonic binary, foreground | ${mem(med(foreground, "rss"))} | ${over(med(foreground, "rss"), bunBare)} |`);
p(`| daemonic binary, \`--daemon${hasKeepAlive ? " --no-keep-alive" : ""}\` | ${mem(dRss)} | ${over(dRss, bunBare)} |`);
if (hasKeepAlive) p(`| daemonic binary, \`--daemon\` (keep-alive): supervisor and entry together | ${mem(med(keepAlive, "rss"))} | ${over(med(keepAlive, "rss"), bunBare)} |`);
p(`| daemonic binary, \`--daemon --workers 2\`: master | ${mem(masterRss)} | ${over(masterRss, bunBare)} |`);
p(`| daemonic binary, \`--daemon --workers 2\`: each worker | ${mem(workerRss)} | ${over(workerRss, bunBare)} |`);
p(`| bare \`deno run -A ENTRY\` | ${mem(denoBare)} | |`);
p(`| \`deno run -A src/cli.ts run ENTRY --daemon\` | ${mem(med(denoDaemon, "rss"))} | ${typeof denoBare === "number" ? `${over(med(denoDaemon, "rss"), denoBare)} over bare deno` : ""} |`);
p(`| Ruby \`Process.daemon\` | ${mem(med(ruby, "rss"))} | |`);
p();
p(`### Size`);
p();
const size = statSync(bin).size, bareSize = statSync(bare).size;
p(`| binary | bytes | MB |`);
p(`| --- | ---: | ---: |`);
p(`| daemonic build | ${size} | ${mb(size)} |`);
p(`| bare \`bun build --compile\` of the entry | ${bareSize} | ${mb(bareSize)} |`);
p(`| difference | ${size - bareSize} | ${mb(size - bareSize)} |`);
if (existsSync(bareSame)) {
  const sameSize = statSync(bareSame).size;
  p(`| bare \`bun build --compile ${SAME_FLAGS.join(" ")}\` of the entry | ${sameSize} | ${mb(sameSize)} |`);
  p(`| difference to the same-flags bare compile (daemonic's own code) | ${size - sameSize} | ${mb(size - sameSize)} |`);
}
p();
p(`### Throughput (\`taskset -c ${wrkCpu} wrk -t1 -c32 -d${WRK_SECONDS}s\`: wrk pinned to CPU ${wrkCpu}, the daemon unpinned on ${cpus} CPUs, after a 1 s warm-up)`);
p();
p(`| daemon | requests/s on \`/\` (hello) | requests/s on \`/work\` (~0.2 ms CPU each) |`);
p(`| --- | ---: | ---: |`);
for (const t of tp) p(`| ${t.name} | ${t.rps ? t.rps.toFixed(0) : t.why} | ${t.work ? t.work.toFixed(0) : t.why ?? ""} |`);
p();
p(`On \`/\` wrk, pinned to one of the ${cpus} CPUs, is the limit (it spends most of its CPU in the kernel), so more`);
p(`workers cannot help; \`/work\` makes the server the limit, which is what worker scaling is about.`);
p();
p(`### Goals`);
p();
p(`| goal | measured | |`);
p(`| --- | --- | :---: |`);
const dReady = med(daemon, "ready");
const goal = (text: string, value: number | undefined, limit: number, shown: string, atLeast = false) =>
  p(`| ${text} | ${value === undefined || Number.isNaN(value) ? "not measured" : shown} | ${value === undefined || Number.isNaN(value) ? "–" : (atLeast ? value >= limit : value <= limit) ? "✓" : "✗"} |`);
goal("`--daemon` time to ready ≤ 2.2× foreground", dReady && fg ? dReady / fg : undefined, 2.2, ratio(dReady, fg));
goal("`--daemon` time to ready ≤ 0.6× Ruby `Process.daemon`", dReady && rubyMed ? dReady / rubyMed : undefined, 0.6, ratio(dReady, rubyMed));
const stopMed = med(daemon, "stop");
goal("`--stop` ≤ 100 ms", stopMed, 100, `${stopMed === undefined ? "" : ms(stopMed)} ms`);
const overhead = dRss !== undefined && typeof bunBare === "number" ? (dRss - bunBare) / 1048576 : undefined;
goal("RSS overhead ≤ 3 MB over bare `bun ENTRY`", overhead, 3, `${overhead?.toFixed(1)} MB`);
goal("binary ≤ 1 MB larger than a bare compile", (size - bareSize) / 1048576, 1, `${mb(size - bareSize)} MB`);
const w1 = tp.find((t) => t.name.includes("workers 1"))?.work, w2 = tp.find((t) => t.name.includes("workers 2"))?.work;
const h1 = tp.find((t) => t.name.includes("workers 1"))?.rps, h2 = tp.find((t) => t.name.includes("workers 2"))?.rps;
if (w1 && w2) goal("2 workers ≥ 1.5× the requests/s of 1 worker (`/work`)", w2 / w1, 1.5, `${ratio(w2, w1)} (hello world \`/\`: ${ratio(h2, h1)}, wrk-bound)`, true);
else p(`| 2 workers ≥ 1.5× the requests/s of 1 worker | skipped: ${hasWorkers ? "a wrk run failed" : NO_WORKERS} | – |`);
p();
if (skipped.length) {
  p(`Skipped or failed:`);
  for (const s of skipped) p(`- ${s}`);
  p();
}
for (const n of notes) p(`- ${n}`);
p(`- load average (1 min) ${loadAtStart} at the start, ${loadavg()} at the end: other work on the machine slows every case; the cases run round-robin so the ratios stay comparable`);
p(`- the whole bench took ${((performance.now() - began) / 1000).toFixed(1)} s`);
console.log(out.join("\n"));

function cpuModel(): string {
  try {
    return /^model name\s*:\s*(.*)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1] ?? "unknown CPU";
  } catch {
    return "unknown CPU";
  }
}
function loadavg(): string {
  try {
    return readFileSync("/proc/loadavg", "utf8").split(" ")[0];
  } catch {
    return "unknown";
  }
}
function osRelease(): string {
  try {
    return readFileSync("/proc/sys/kernel/osrelease", "utf8").trim();
  } catch {
    return "unknown";
  }
}
function denoVersion(): string {
  return DENO ? runSync([DENO, "--version"]).stdout.split("\n")[0] : "no deno";
}
