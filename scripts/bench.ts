#!/usr/bin/env bun
/**
 * `npm run bench`: daemonic side by side with bare runtimes and its peers, in one run, printed as markdown
 * tables ending in the goals of issue 10, each ✓/✗ from this run's own medians.
 *
 *   bun scripts/bench.ts [--runs N] [--duration SEC] [--daemonic DIR] [--bin PATH] [--goals] [--deno] [--soak SEC]
 *                        [--soak-only]
 *
 * --runs      start-ups per case (default 9); short commands run 3× as often
 * --duration  seconds of each wrk run (default 3)
 * --daemonic  the daemonic checkout whose `src/cli.ts build` makes the binary (default: this one)
 * --bin       bench this already built binary of scripts/bench-server.ts instead of building one
 * --goals     only the runner's cost per process (issue 25, bench_goals.ts): both entries, goal table, marks
 * --deno      only the Deno start-ups (issue 21, bench_deno.ts): a user's `deno run -A npm:daemonic run ENTRY`
 *             foreground, `--daemon`, `--daemon --no-keep-alive`, `--status`, `--stop` beside bare `deno run -A`,
 *             the Deno goals, each process's marks; builds nothing but the packed package it installs
 * --soak      seconds of the soak on each runtime (default 300; 0 leaves it out): `--workers 2` under reloads,
 *             kill -9 of the youngest worker, TTIN/TTOU and log reopens every 2 s, a connect every 10 ms
 *             (scripts/bench_soak.ts; test/soak.test.ts runs a minute of it)
 * --soak-only build, then only the soak
 *
 * Baselines, built here with daemonic's own `bun build --compile` flags: the same minimal HTTP entry
 * (scripts/bench-server.ts) compiled bare, and a binary that only exits (scripts/bench-exit.ts); on Deno,
 * `deno run -A` of a `Deno.serve` entry (scripts/bench-server-deno.ts). "Ready" is the first successful TCP
 * connect after launch (polled every 1 ms); a short command's time is launch → exit. Ports come from the OS.
 * Every case runs round-robin with the others after a warm-up round; every process it starts is recorded
 * by pid and stopped before the next run, and again on any exit.
 *
 * @module
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import {
  type Case,
  daemonicCase,
  daemonicStop,
  daemonRun,
  foregroundCase,
  measureAll,
  peakRss,
  pidFileFor,
  runningDaemon,
  shortCase,
  skip,
  skipped,
} from "./bench_cases.ts";
import { denoCommand, denoEntry, denoMarks, denoServers, denoShorts, runDeno } from "./bench_deno.ts";
import {
  freePort,
  kill,
  killOnExit,
  lastInt,
  listeners,
  readPid,
  record,
  runSync,
  start,
  stopPid,
  tail,
  which,
} from "./bench_proc.ts";
import { report } from "./bench_report.ts";
import { logLinesReport } from "./bench_lines.ts";
import { restartLosses } from "./bench_restarts.ts";
import { soak, SOAK_HEADER, soakReport } from "./bench_soak.ts";
import { startupTrace } from "./bench_trace.ts";
import { throughputs } from "./bench_wrk.ts";
import { runGoals } from "./bench_goals_run.ts";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const { values: flags } = parseArgs({
  options: {
    runs: { type: "string" },
    duration: { type: "string" },
    daemonic: { type: "string" },
    bin: { type: "string" },
    soak: { type: "string" },
    "soak-only": { type: "boolean" },
    goals: { type: "boolean" },
    deno: { type: "boolean" },
  },
});
const RUNS = Math.max(1, Number(flags.runs ?? 9));
const WRK_SECONDS = Math.max(1, Number(flags.duration ?? 3));
const SOAK_SECONDS = Math.max(0, Number(flags.soak ?? 300));
const DAEMONIC = resolve(flags.daemonic ?? ROOT);
const BIN_DIR = join(ROOT, "node_modules", ".bin");
const BUN = process.execPath;
const DENO = existsSync(join(BIN_DIR, "deno")) ? join(BIN_DIR, "deno") : which("deno");
const ENTRY = join(ROOT, "scripts", "bench-server.ts");
const DENO_ENTRY = denoEntry(ROOT);
const began = performance.now();
const tmp = mkdtempSync(join(tmpdir(), "daemonic-bench-"));
killOnExit(() => rmSync(tmp, { recursive: true, force: true }));
const notes: string[] = [];
if (flags.deno) {
  if (!DENO) {
    console.error("bench: --deno: deno is neither in node_modules/.bin nor on PATH: `npm ci` installs it");
    process.exit(1);
  }
  console.log((await runDeno({ deno: DENO, root: ROOT, tmp, rounds: RUNS })).join("\n"));
  process.exit(0);
}

// ---------------------------------------------------------------------------------------------------------
// Build: the daemon, and the two baselines with the flags `daemonic build` passes (read from src/build/build.ts)

const SAME_FLAGS = ["--minify", "--splitting", "--bytecode", "--format", "esm"];
const buildSource = readFileSync(join(DAEMONIC, "src", "build", "build.ts"), "utf8");
const drift = SAME_FLAGS.filter((f) => !buildSource.includes(`"${f}"`));
if (drift.length) {
  notes.push(`src/build/build.ts no longer passes ${drift.join(" ")}: update SAME_FLAGS in scripts/bench.ts`);
}
console.error(`bench: building in ${tmp}`);
const bin = flags.bin ? resolve(flags.bin) : join(tmp, "bench-daemon");
const bare = join(tmp, "bench-bare");
const bareExit = join(tmp, "bench-exit");
function mustBuild(what: string, argv: string[]): void {
  const t = performance.now();
  const r = runSync(argv, ROOT);
  if (r.status !== 0) {
    console.error(`bench: cannot build ${what}: ${r.stderr}`);
    process.exit(1);
  }
  notes.push(`${what} built in ${(performance.now() - t).toFixed(0)} ms`);
}
if (flags.bin) notes.push(`benched the given binary ${bin}`);
else mustBuild("the daemon (`daemonic build`)", [BUN, join(DAEMONIC, "src", "cli.ts"), "build", ENTRY, "-o", bin]);
mustBuild("the bare entry", [BUN, "build", "--compile", ...SAME_FLAGS, ENTRY, "--outfile", bare]);
mustBuild("the bare exit binary", [
  BUN,
  "build",
  "--compile",
  ...SAME_FLAGS,
  join(ROOT, "scripts", "bench-exit.ts"),
  "--outfile",
  bareExit,
]);
if (flags.goals) {
  console.log(
    (await runGoals({
      bun: BUN,
      root: ROOT,
      daemonic: DAEMONIC,
      flags: SAME_FLAGS,
      tmp,
      rounds: RUNS,
      wrkSeconds: WRK_SECONDS,
      bareExit,
    })).join("\n"),
  );
  process.exit(0);
}
const hasWorkers = /--workers\b/.test(runSync([bin, "--help"]).stdout);

/** The soak's long form on each runtime: the compiled bench entry, and `deno run` of the Deno one. */
async function soaks(): Promise<string[]> {
  const lines = [
    `### Soak: --workers 2, an action every 2 s, a connect every 10 ms (${SOAK_SECONDS} s each)`,
    "",
    ...SOAK_HEADER,
  ];
  const runtimes: [string, (args: string[]) => string[]][] = [["Bun, compiled", (args) => [bin, ...args]]];
  if (DENO) {
    runtimes.push([
      "Deno, `deno run`",
      (args) => [DENO, "run", "-A", "--unstable-net", join(DAEMONIC, "src", "cli.ts"), "run", DENO_ENTRY, ...args],
    ]);
  }
  for (const [name, command] of runtimes) {
    const port = await freePort();
    console.error(`bench: soak, ${name}, ${SOAK_SECONDS} s`);
    try {
      lines.push(
        ...soakReport(
          name,
          await soak({
            command,
            entryArgs: [String(port)],
            port,
            dir: mkdtempSync(join(tmp, "soak-")),
            seconds: SOAK_SECONDS,
            track: record,
          }),
        ),
      );
    } catch (err) {
      lines.push(`| ${name} | failed: ${(err as Error).message.split("\n")[0]} |`);
    }
  }
  return lines;
}
if (flags["soak-only"]) {
  console.log((await soaks()).join("\n"));
  process.exit(0);
}

// ---------------------------------------------------------------------------------------------------------
// The servers: time to ready

const daemonic = (name: string, tag: string, cmd: string[], extra: string[] = []) =>
  daemonicCase(name, tag, cmd, tmp, extra);
const fg = foregroundCase;

const bareEntry = fg("bare `bun build --compile` of the entry, foreground", [bare]);
const foreground = fg("daemonic binary, foreground", [bin, "--"]);
const daemon = daemonic("daemonic binary, `--daemon` (keep-alive: launcher, supervisor, entry)", "daemon", [bin]);
const daemonNk = daemonic("daemonic binary, `--daemon --no-keep-alive` (launcher, entry)", "nokeep", [bin], [
  "--no-keep-alive",
]);
const workers2 = hasWorkers
  ? daemonic("daemonic binary, `--daemon --workers 2`", "workers", [bin], ["--workers", "2"])
  : skip("daemonic binary, `--daemon --workers 2`", "this build has no --workers");

const RUBY = which("ruby");
const ruby: Case = RUBY
  ? {
    name: "Ruby `Process.daemon` + TCPServer",
    samples: [],
    run: (port, i) => {
      const pidFile = pidFileFor(tmp, "ruby", i);
      return daemonRun([RUBY, join(ROOT, "scripts", "bench-daemon.rb"), String(port), pidFile], port, () =>
        readPid(pidFile), async (pid) => {
        kill(pid, "SIGTERM");
        return { ok: true };
      });
    },
  }
  : skip("Ruby `Process.daemon`", "ruby not on PATH (Debian package `ruby`)");

const SSD = ["/sbin/start-stop-daemon", "/usr/sbin/start-stop-daemon"].find(existsSync) ?? which("start-stop-daemon");
const ssd: Case = SSD
  ? {
    name: "`start-stop-daemon --background` + daemonic binary in the foreground",
    samples: [],
    run: (port, i) => {
      const pidFile = pidFileFor(tmp, "ssd", i);
      const argv = [
        SSD,
        "--start",
        "--background",
        "--make-pidfile",
        "--pidfile",
        pidFile,
        "--exec",
        bin,
        "--",
        String(port),
      ];
      return daemonRun(argv, port, () => readPid(pidFile), async (pid) => {
        kill(pid, "SIGTERM"); // its --stop polls kill(pid, 0), which a zombie this VM's init is slow to reap passes
        return { ok: true };
      });
    },
  }
  : skip("start-stop-daemon", "not installed (Debian package `dpkg` provides /sbin/start-stop-daemon)");

const PM2 = existsSync(join(BIN_DIR, "pm2")) ? join(BIN_DIR, "pm2") : which("pm2");
const pm2Env = { ...process.env, PM2_HOME: join(tmp, "pm2") };
const pm2: Case = PM2
  ? {
    name: "PM2 `pm2 start` of the daemonic binary (fork mode, its God daemon already up)",
    samples: [],
    run: (port, i) => {
      const name = `daemonic-bench-${process.pid}-${i < 0 ? "warm" : i}`;
      const argv = [PM2, "start", bin, "--name", name, "--interpreter", "none", "--no-autorestart", "--", String(port)];
      return daemonRun(argv, port, async () =>
        lastInt(spawnSync(PM2, ["pid", name], { env: pm2Env, encoding: "utf8" }).stdout ?? ""), async (pid) => {
        const r = start([PM2, "delete", name], pm2Env);
        const code = await r.proc.exited;
        kill(pid, "SIGTERM");
        return { ok: code === 0, detail: `exit ${code}: ${tail(r.stderr + r.stdout)}` };
      }, pm2Env);
    },
  }
  : skip("PM2", "pm2 is neither in node_modules/.bin nor on PATH: `npm ci` installs it (a devDependency)");

const denoCli = DENO ? denoCommand(DENO, ROOT) : [];
const { denoBare, denoFg, denoDaemon, denoDaemonNk } = denoServers(DENO, denoCli, ROOT, tmp);
const denoTask = DENO
  ? fg("`deno task daemonic run ENTRY` (this repository's sources), foreground", [
    DENO,
    "task",
    "-q",
    "daemonic",
    "run",
    DENO_ENTRY,
    "--",
  ], DAEMONIC)
  : skip("deno task", "deno not found in node_modules/.bin or on PATH");

const servers = [
  bareEntry,
  foreground,
  daemon,
  daemonNk,
  workers2,
  ruby,
  ssd,
  pm2,
  denoBare,
  denoFg,
  denoTask,
  denoDaemon,
  denoDaemonNk,
];
if (PM2) start([PM2, "ping"], pm2Env); // its God daemon starts once, outside the timed runs (warm-up round too)
console.error(`bench: time to ready, ${RUNS} rounds over ${servers.length} cases (+1 warm-up round)`);
await measureAll(servers, RUNS);
if (PM2) spawnSync(PM2, ["kill"], { env: pm2Env }); // the bench's own PM2 God daemon

// ---------------------------------------------------------------------------------------------------------
// Short commands, against one running daemon: launch → exit, and peak RSS

const statusDaemon = await runningDaemon([bin], join(tmp, "status.pid"));
const statusPidFile = statusDaemon.pidFile, statusPid = statusDaemon.pid;
const exitCase = shortCase("bare compiled `process.exit(0)`", [bareExit]);
const version = shortCase("daemonic binary `--version`", [bin, "--version"]);
const status = statusPid
  ? shortCase("daemonic binary `--status` (running)", [bin, "--status", "--pid-file", statusPidFile])
  : skip("`--status`", `the daemon to ask did not start: ${statusDaemon.error}`);
// The same on Deno: a user's `deno run -A npm:daemonic run ENTRY --status` of a running Deno daemon.
const denoStatusDaemon = DENO ? await runningDaemon(denoCli, join(tmp, "deno-status.pid")) : undefined;
const { denoExit, denoStatus } = denoShorts(DENO, denoCli, ROOT, denoStatusDaemon);
const shortCases = [exitCase, version, status, denoExit, denoStatus];
console.error(`bench: short commands, ${RUNS * 3} rounds`);
await measureAll(shortCases, RUNS * 3);
console.error("bench: peak RSS of the short commands and the launcher (GNU time %M)");
const PEAK_RUNS = 5;
exitCase.peak = await peakRss([bareExit], PEAK_RUNS, tmp);
version.peak = await peakRss([bin, "--version"], PEAK_RUNS, tmp);
if (statusPid) status.peak = await peakRss([bin, "--status", "--pid-file", statusPidFile], PEAK_RUNS, tmp);
const launcherPidFile = join(tmp, "peak.pid");
const launcherPort = await freePort();
daemon.peak = await peakRss(
  [bin, "--daemon", "--pid-file", launcherPidFile, "--", String(launcherPort)],
  PEAK_RUNS,
  tmp,
  async () => {
    for (const p of listeners(launcherPort)) record(p);
    await daemonicStop([bin], launcherPidFile)(0);
    for (const p of listeners(launcherPort)) await stopPid(p);
  },
);
await statusDaemon.stop();
await denoStatusDaemon?.stop();

// ---------------------------------------------------------------------------------------------------------

console.error(`bench: throughput (wrk -t1 -c32 -d${WRK_SECONDS}s)`);
const tp = await throughputs(bin, hasWorkers, WRK_SECONDS, tmp, notes);
console.error(
  "bench: requests failed during rolling restarts (workers, keep-alive, Deno, --upgrade; program on and off)",
);
const restarts = await restartLosses(bin, which("wrk"), tmp, freePort, denoCli);
console.log(report({
  runs: RUNS,
  bin,
  bare,
  bareExit,
  deno: DENO,
  notes,
  skipped,
  tp,
  sameFlags: SAME_FLAGS,
  c: {
    bareEntry,
    foreground,
    daemon,
    daemonNk,
    workers2,
    ruby,
    ssd,
    pm2,
    denoBare,
    denoFg,
    denoTask,
    denoDaemon,
    denoDaemonNk,
    exitCase,
    version,
    status,
    denoExit,
    denoStatus,
  },
  seconds: (performance.now() - began) / 1000,
}));
console.log(restarts.join("\n"));
console.error("bench: where a start's milliseconds go (strace)");
const daemonArgv = (...extra: string[]) => [bin, "--daemon", ...extra, "--pid-file", "PIDFILE", "--", "PORT"];
const traced: [string, string[]][] = [
  ["bare compiled entry (baseline)", [bare, "PORT"]],
  ["bare `process.exit(0)` binary (baseline)", [bareExit]],
  ["daemonic binary, foreground", [bin, "--", "PORT"]],
  ["`--daemon`", daemonArgv()],
  ["`--daemon --no-keep-alive`", daemonArgv("--no-keep-alive")],
  ["`--daemon --workers 2`", daemonArgv("--workers", "2")],
  ...DENO
    ? [
      ["bare `deno run -A` of the `Deno.serve` entry (baseline)", [DENO, "run", "-A", DENO_ENTRY, "PORT"]],
      ["bare `deno run -A` of `Deno.exit(0)` (baseline)", [
        DENO,
        "run",
        "-A",
        join(ROOT, "scripts", "bench-exit-deno.ts"),
      ]],
      ["Deno: `deno run -A npm:daemonic run ENTRY`, foreground", [...denoCli, "--", "PORT"]],
      ["Deno: `--daemon`", [...denoCli, "--daemon", "--pid-file", "PIDFILE", "--", "PORT"]],
      ["Deno: `--daemon --no-keep-alive`", [
        ...denoCli,
        "--daemon",
        "--no-keep-alive",
        "--pid-file",
        "PIDFILE",
        "--",
        "PORT",
      ]],
    ] as [string, string[]][]
    : [],
];
console.log((await startupTrace(which("strace"), tmp, freePort, traced)).join("\n"));
console.error("bench: log lines/s with and without --log-timestamps");
console.log((await logLinesReport(BUN, DAEMONIC, tmp)).join("\n"));
console.error("bench: the runner's cost per process, on two entries (issue 25)");
console.log(
  (await runGoals({
    bun: BUN,
    root: ROOT,
    daemonic: DAEMONIC,
    flags: SAME_FLAGS,
    tmp,
    rounds: RUNS,
    wrkSeconds: 1,
    bareExit,
  })).join("\n"),
);
if (DENO) {
  console.error("bench: Deno: where each process's milliseconds go (DAEMONIC_TRACE marks)");
  console.log((await denoMarks(denoCli, tmp, 5)).join("\n"));
}
if (SOAK_SECONDS > 0) console.log((await soaks()).join("\n"));
