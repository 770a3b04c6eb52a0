/**
 * Black-box tests of logging: getLogger() and the runner's lines by level and format, the log reopened on
 * SIGURG while the real logrotate rotates it under a writer going flat out, and `--logs`. Under `bun test`
 * the daemon is a binary built with `daemonic build`; under `deno test` it is `deno run -A src/cli.ts run`.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { describe, test } from "node:test";
import {
  alive,
  childrenOf,
  eventually,
  fileSandbox,
  FIXTURES,
  readOr,
  run,
  RUNTIME,
  Sandbox,
  sandboxed,
  sleep,
  startDaemon,
  type StartOptions,
  targetFor,
  waitGone,
} from "./_helpers.ts";

const ENTRIES = ["logger.ts", "numbered.ts", "loop.ts", "throws.ts"];
const buildDir = fileSandbox();
// Built at load time: hooks have a short timeout under bun test, and the builds take seconds.
const target = await targetFor(ENTRIES, buildDir.dir);

const fixture = (name: string) => `${FIXTURES}/${name}`;
const runner = (entry: string, args: string[]) => target.argv(fixture(entry), args);

/** Starts `entry` as a single-process daemon in `sb` (pid file d.pid, log d.log unless `options.logFile`): its
 * pid in every line of its own; keep-alive's lines are in keepalive.test.ts. */
const start = (sb: Sandbox, entry: string, args: string[] = [], entryArgs: string[] = [], options: StartOptions = {}) =>
  startDaemon(sb, target, entry, ["--no-keep-alive", ...args], entryArgs, options);

/** A shell command line for argv, for logrotate's postrotate. */
const shell = (argv: string[]) => argv.map((a) => `'${a.replaceAll("'", `'\\''`)}'`).join(" ");

/** Runs the real logrotate once, forced, with its state file in the sandbox. */
function logrotate(sb: Sandbox, conf: string): void {
  const r = run(["logrotate", "-s", sb.path("logrotate.state"), "-f", conf]);
  assert.equal(r.status, 0, `logrotate failed: ${r.stderr}`);
}

/** The log and its rotations (logrotate's .1, .2 …), oldest first. */
function logFiles(dir: string, base: string): string[] {
  const rotated = readdirSync(dir).map((f) => new RegExp(`^${base}\\.(\\d+)$`).exec(f)).filter((m) => m !== null);
  return [...rotated.sort((a, b) => Number(b[1]) - Number(a[1])).map((m) => `${dir}/${m[0]}`), `${dir}/${base}`];
}

/** The numbers of the complete "line N" records of each writer pid across `files`, in file order. */
function numbersIn(files: string[]): Map<number, number[]> {
  const byPid = new Map<number, number[]>();
  for (const file of files) {
    for (const m of readOr(file).matchAll(/\[(\d+)(?: worker \d+)?\]: line (\d+)\n/g)) {
      const pid = Number(m[1]);
      if (!byPid.has(pid)) byPid.set(pid, []);
      byPid.get(pid)!.push(Number(m[2]));
    }
  }
  return byPid;
}

/** Whether `numbers` is exactly 1, 2, 3 …; else where it is not. */
function firstGap(numbers: number[]): string | null {
  const i = numbers.findIndex((n, i) => n !== i + 1);
  return i === -1 ? null : `entry ${i + 1} is line ${numbers[i]} (after line ${numbers[i - 1]})`;
}

/**
 * Starts `writers` numbered daemons on one log file, rotates it `times` times with the logrotate config
 * `conf` makes, stops them; returns the pids and the files, oldest first.
 */
async function rotateUnderLoad(
  sb: Sandbox,
  conf: (logFile: string, pidFiles: string[]) => string,
  times = 4,
  writers = 1,
  runnerArgs: string[] = [],
) {
  const logFile = sb.path("d.log");
  const daemons = Array.from({ length: writers }, (_, i) => {
    const pidFile = sb.path(`w${i}.pid`);
    const single = runnerArgs.includes("--workers") && runnerArgs[runnerArgs.indexOf("--workers") + 1] !== "0"
      ? []
      : ["--no-keep-alive"];
    const r = run(
      runner("numbered.ts", [
        "--daemon",
        ...single,
        "--pid-file",
        pidFile,
        "--log-file",
        logFile,
        ...runnerArgs,
        "--",
        "200",
        "2000000",
      ]),
    );
    const pid = sb.track(Number(r.stdout.trim()) || parseInt(readOr(pidFile), 10) || 0);
    assert.equal(r.status, 0, `${r.stderr}${r.stdout}`);
    return { pid, pidFile };
  });
  const confFile = sb.path("logrotate.conf");
  writeFileSync(confFile, conf(logFile, daemons.map((d) => d.pidFile)), { mode: 0o644 });
  const workers = daemons.flatMap((d) => childrenOf(d.pid).map((pid) => sb.track(pid)));
  // Each rotation once every writer has written to the current file (after the last rotation's reopen).
  const writing = workers.length ? workers : daemons.map((d) => d.pid);
  const allWrote = async (what: string) => {
    const wrote = () => writing.every((pid) => numbersIn([logFile]).has(pid));
    assert.ok(await eventually(wrote, 15_000), `${what}: not every writer (${writing}) wrote to ${logFile}`);
  };
  for (let i = 0; i < times; i++) {
    await allWrote(`before rotation ${i + 1}`);
    logrotate(sb, confFile);
  }
  await allWrote("after the last rotation");
  for (const { pid, pidFile } of daemons) {
    const stop = run(runner("numbered.ts", ["--stop", "--pid-file", pidFile]));
    assert.equal(stop.status, 0, stop.stderr);
    assert.ok(waitGone(pid, 5000));
  }
  const files = logFiles(sb.dir, "d.log");
  assert.equal(files.length, times + 1, `expected ${times} rotations: ${files}`);
  return { pids: daemons.map((d) => d.pid), workers, files };
}

/**
 * Asserts every newline-terminated line of `files` that holds a record is exactly one whole record: it starts
 * with the record's head and no other record begins inside it. (Lines that are not records are the
 * runtime's own, e.g. Deno's "Debugger listening" banner on SIGUSR1.)
 */
function assertWholeLines(files: string[]): void {
  const head = /\d{4}-\d\d-\d\dT[\d:.]+Z INFO (numbered|daemonic)\[\d+( worker \d+)?\]: /g;
  for (const file of files) {
    for (const line of readOr(file).split("\n").slice(0, -1)) {
      const heads = [...line.matchAll(head)];
      if (heads.length === 0) continue;
      assert.ok(heads.length === 1 && heads[0].index === 0, `torn or interleaved line in ${file}: ${line}`);
    }
  }
}

describe(`getLogger and the runner's lines (${RUNTIME})`, () => {
  test(
    "records of getLogger(), plain console.log and the runner's lines land in --log-file; debug is hidden at the default info",
    sandboxed(async (sb) => {
      const { pid, logFile } = start(sb, "logger.ts", [], ["w1"]);
      assert.ok(await eventually(() => readOr(logFile).includes("ready (pid")));
      const log = readOr(logFile);
      assert.match(log, new RegExp(`^\\S+Z INFO app\\.fixture\\[${pid}\\]: info w1$`, "m"));
      for (const level of ["WARNING", "ERROR", "FATAL"]) {
        assert.match(log, new RegExp(`${level} app\\.fixture\\[${pid}\\]: ${level.toLowerCase()} w1`));
      }
      assert.match(log, /^plain console\.log w1$/m, "console.log goes to fd 1 untouched");
      assert.match(log, new RegExp(`INFO daemonic\\[${pid}\\]: ready \\(pid ${pid}\\)`));
      assert.doesNotMatch(log, /debug w1|trace w1/);
    }),
  );

  test(
    "--log-level debug shows debug but not trace; --log-level error hides warnings and the runner's info lines",
    sandboxed(async (sb) => {
      const debug = start(sb, "logger.ts", ["--log-level", "debug"], ["w2"]);
      assert.ok(await eventually(() => readOr(debug.logFile).includes("ready (pid")));
      assert.match(readOr(debug.logFile), /DEBUG app\.fixture\[\d+\]: debug w2/);
      assert.doesNotMatch(readOr(debug.logFile), /trace w2/);
      const quiet = sb.path("quiet.log");
      const r = run(
        runner("logger.ts", [
          "--daemon",
          "--no-keep-alive",
          "--pid-file",
          sb.path("q.pid"),
          "--log-file",
          quiet,
          "--log-level",
          "error",
          "--",
          "w3",
        ]),
      );
      sb.track(Number(r.stdout.trim()) || parseInt(readOr(sb.path("q.pid")), 10) || 0);
      assert.equal(r.status, 0, r.stderr);
      assert.ok(await eventually(() => readOr(quiet).includes("fatal w3")));
      await sleep(100);
      const log = readOr(quiet);
      assert.match(log, /ERROR app\.fixture\[\d+\]: error w3/);
      assert.doesNotMatch(log, /warning w3|info w3|ready \(pid/);
    }),
  );

  test(
    "--log-format json: every record is one JSON object with @timestamp, level, pid, worker, logger, message, properties",
    sandboxed(async (sb) => {
      const { pid, logFile } = start(sb, "logger.ts", ["--log-format", "json"], ["w4"], {
        spawn: { env: { ...process.env, DAEMONIC_WORKER_ID: "3" } },
      });
      assert.ok(await eventually(() => readOr(logFile).includes("ready (pid")));
      const lines = readOr(logFile).trimEnd().split("\n").filter((l) => l !== "plain console.log w4");
      const records = lines.map((l) => JSON.parse(l));
      assert.equal(records.length, 5, lines.join("\n"));
      for (const r of records) {
        assert.deepEqual(Object.keys(r).sort(), [
          "@timestamp",
          "level",
          "logger",
          "message",
          "pid",
          "properties",
          "worker",
        ]);
        assert.equal(r.pid, pid);
        assert.equal(r.worker, 3);
        assert.ok(!Number.isNaN(Date.parse(r["@timestamp"])));
      }
      const info = records.find((r) => r.level === "INFO" && r.logger === "app.fixture");
      assert.deepEqual(info.properties, { word: "w4", n: 42 });
      assert.match(info.message, /^info "?w4"?$/);
      assert.deepEqual(records.map((r) => r.level), ["INFO", "WARN", "ERROR", "FATAL", "INFO"]);
      assert.equal(records.at(-1).logger, "daemonic");
    }),
  );

  test("in the foreground the same entry logs to the terminal's stderr; console.log stays on stdout", () => {
    const r = run(runner("logger.ts", ["--log-level", "debug", "--", "w5", "once"]));
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /DEBUG app\.fixture\[\d+\]: debug w5/);
    assert.match(r.stderr, /FATAL app\.fixture\[\d+\]: fatal w5/);
    assert.equal(r.stdout, "plain console.log w5\n");
  });

  for (
    const [args, message] of [
      [["--log-level", "verbose"], /Invalid --log-level 'verbose': use trace, debug, info, warning, error, fatal/],
      [["--log-format", "xml"], /Invalid --log-format 'xml': use text or json/],
      [["--logs", "-n", "ten"], /Invalid --lines 'ten'/],
      [["--daemon", "-f"], /Invalid --follow: it only goes with --logs/],
    ] as const
  ) {
    test(
      `${args.join(" ")} gives one line and exit 64`,
      sandboxed(async (sb) => {
        const r = run(runner("logger.ts", [...args, "--pid-file", sb.path("d.pid")]));
        assert.equal(r.status, 64, r.stderr);
        assert.match(r.stderr, message);
        assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
      }),
    );
  }
});

describe(`start-up failures in the log (${RUNTIME})`, () => {
  test(
    "an entry that exits before it is ready: the reason is on the terminal and in the log",
    sandboxed(async (sb) => {
      const logFile = sb.path("d.log");
      const r = run(
        runner("throws.ts", ["--daemon", "--pid-file", sb.path("d.pid"), "--log-file", logFile, "--", "exit"]),
      );
      assert.equal(r.status, 69, r.stderr);
      assert.match(r.stderr, /exited with code 3 before it was ready/);
      assert.match(
        readOr(logFile),
        /FATAL daemonic\[\d+\]: Cannot start: the entry exited with code 3 before it was ready/,
      );
    }),
  );

  test(
    "a daemon killed for not becoming ready in time: the launcher appends its failure line to the log",
    sandboxed(async (sb) => {
      const logFile = sb.path("d.log");
      const r = run(
        runner("loop.ts", [
          "--daemon",
          "--ready",
          "manual",
          "--start-timeout",
          "0.5",
          "--pid-file",
          sb.path("d.pid"),
          "--log-file",
          logFile,
        ]),
      );
      assert.equal(r.status, 69, r.stderr);
      assert.match(r.stderr, /not ready within/);
      assert.match(readOr(logFile), /FATAL daemonic\[\d+\]: Cannot start: the entry was not ready within/);
    }),
  );
});

describe(`log rotation with the real logrotate (${RUNTIME})`, () => {
  const create = (postrotate: (pidFile: string) => string) => (logFile: string, pidFiles: string[]) =>
    `${logFile} {\n  rotate 20\n  nocompress\n  create 0644\n  postrotate\n${
      pidFiles.map((p) => `    ${postrotate(p)}\n`).join("")
    }  endscript\n}\n`;
  const postrotates: [string, (pidFile: string) => string][] = [
    ["--reopen-logs", (pidFile) => shell(runner("numbered.ts", ["--reopen-logs", "--pid-file", pidFile]))],
    ["kill -URG", (pidFile) => `kill -URG "$(cat '${pidFile}')"`],
  ];
  for (const [name, postrotate] of postrotates) {
    test(
      `create + postrotate ${name}: every line exactly once, in order, across 4 rotations under a flat-out writer`,
      sandboxed(async (sb) => {
        const { pids, files } = await rotateUnderLoad(sb, create(postrotate));
        const numbers = numbersIn(files).get(pids[0]) ?? [];
        assert.ok(numbers.length > 1000, `too few lines written: ${numbers.length}`);
        assert.equal(firstGap(numbers), null, "lost or repeated lines");
        for (const file of files) {
          assert.match(readOr(file), / line \d+$/m, `${file} got no lines: the reopen did not follow the rotation`);
        }
      }),
    );
  }

  test(
    "two daemons on one log, rotated under load: no line torn or interleaved, each one's lines exactly once, in order",
    sandboxed(async (sb) => {
      const { pids, files } = await rotateUnderLoad(sb, create((pidFile) => `kill -URG "$(cat '${pidFile}')"`), 3, 2);
      assertWholeLines(files);
      const byPid = numbersIn(files);
      for (const pid of pids) {
        assert.ok((byPid.get(pid)?.length ?? 0) > 1000, `too few lines from ${pid}`);
        assert.equal(firstGap(byPid.get(pid)!), null, `lost or repeated lines of ${pid}`);
      }
    }),
  );

  test(
    "a master and 2 workers on one log, rotated with --reopen-logs under load: each worker's lines exactly once, in order",
    sandboxed(async (sb) => {
      const reopen = (pidFile: string) => shell(runner("numbered.ts", ["--reopen-logs", "--pid-file", pidFile]));
      const { workers, files } = await rotateUnderLoad(sb, create(reopen), 3, 1, ["--workers", "2"]);
      assert.equal(workers.length, 2);
      assertWholeLines(files);
      const byPid = numbersIn(files);
      for (const pid of workers) {
        assert.ok((byPid.get(pid)?.length ?? 0) > 1000, `too few lines from worker ${pid}`);
        assert.equal(firstGap(byPid.get(pid)!), null, `lost or repeated lines of worker ${pid}`);
      }
      for (const file of files) assert.match(readOr(file), /worker \d+\]: line \d+$/m, `${file} got no worker lines`);
    }),
  );

  for (const workers of [0, 2]) {
    test(
      `copytruncate with --hold-logs in prerotate, --reopen-logs in postrotate, ${workers} workers: every line exactly once, in order`,
      sandboxed(async (sb) => {
        const ctl = (action: string, pidFile: string) => shell(runner("numbered.ts", [action, "--pid-file", pidFile]));
        const conf = (logFile: string, pidFiles: string[]) =>
          `${logFile} {\n  rotate 20\n  nocompress\n  copytruncate\n  prerotate\n${
            pidFiles.map((p) => `    ${ctl("--hold-logs", p)}\n`).join("")
          }  endscript\n  postrotate\n${
            pidFiles.map((p) => `    ${ctl("--reopen-logs", p)}\n`).join("")
          }  endscript\n}\n`;
        const { pids, workers: workerPids, files } = await rotateUnderLoad(sb, conf, 4, 1, [
          "--workers",
          String(workers),
        ]);
        const writers = workers ? workerPids : pids;
        assert.equal(writers.length, workers || 1);
        const byPid = numbersIn(files);
        for (const pid of writers) {
          assert.ok((byPid.get(pid)?.length ?? 0) > 1000, `too few lines from ${pid}`);
          assert.equal(firstGap(byPid.get(pid)!), null, `lost or repeated lines of ${pid}`);
        }
        for (const file of files) assert.ok(!readOr(file).includes("\0"), `${file} has NUL bytes`);
        assert.deepEqual(readdirSync(sb.dir).filter((f) => /\.held\.|\.hold$/.test(f)), [], "hold files left behind");
      }),
    );
  }

  test(
    "copytruncate: no NUL-filled hole, no torn or repeated line, in order; only logrotate's copy-to-truncate window loses lines",
    sandboxed(async (sb) => {
      const times = 4;
      const { pids, files } = await rotateUnderLoad(
        sb,
        (logFile) => `${logFile} {\n  rotate 20\n  nocompress\n  copytruncate\n}\n`,
        times,
      );
      for (const file of files) {
        assert.ok(!readOr(file).includes("\0"), `${file} has NUL bytes: the writer is not O_APPEND`);
      }
      // A copy may end in part of a line written while logrotate copied: that line is in the window it
      // loses. Every newline-terminated line must be whole.
      assertWholeLines(files);
      const numbers = numbersIn(files).get(pids[0]) ?? [];
      const gaps = numbers.filter((n, i) => i > 0 && n !== numbers[i - 1] + 1);
      assert.ok(numbers.every((n, i) => i === 0 || n > numbers[i - 1]), "lines out of order or repeated");
      assert.equal(numbers[0], 1);
      assert.ok(gaps.length <= times, `lines lost outside the ${times} rotations: ${gaps.length} gaps`);
    }),
  );

  test(
    "a reopen whose directory is gone says why in the still-open old log and the daemon keeps running",
    sandboxed(async (sb) => {
      mkdirSync(sb.path("logs"));
      const logFile = sb.path("logs/d.log");
      const { pid, pidFile } = start(sb, "logger.ts", [], ["w6"], { logFile });
      assert.ok(await eventually(() => readOr(logFile).includes("ready (pid")));
      const old = `/proc/${pid}/fd/2`;
      rmSync(sb.path("logs"), { recursive: true });
      assert.equal(
        run(runner("logger.ts", ["--reopen-logs", "--pid-file", pidFile])).status,
        73,
        "the failed reopen is reported",
      );
      assert.ok(
        await eventually(() =>
          readOr(old).includes(`Cannot reopen log file ${logFile}: directory ${sb.path("logs")} does not exist`)
        ),
        readOr(old),
      );
      assert.ok(alive(pid));
      mkdirSync(sb.path("logs"));
      process.kill(pid, "SIGURG");
      assert.ok(
        await eventually(() => readOr(logFile).includes("reopened log file")),
        "a later reopen works once the directory is back",
      );
      assert.ok(alive(pid));
      assert.equal(
        run(runner("logger.ts", ["--reopen-logs", "--pid-file", sb.path("other.pid")])).status,
        7,
        "not running: exit 7",
      );
    }),
  );
});

describe(`--logs (${RUNTIME})`, () => {
  test(
    "--logs -n N prints the last N lines, the log path found from the pid file alone",
    sandboxed(async (sb) => {
      const { pidFile, logFile } = start(sb, "logger.ts", [], ["w7"]);
      assert.ok(await eventually(() => readOr(logFile).includes("ready (pid")));
      const r = run(runner("logger.ts", ["--logs", "-n", "3", "--pid-file", pidFile]));
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout, readOr(logFile).split("\n").slice(-4).join("\n"));
      const none = run(runner("logger.ts", ["--logs", "--pid-file", sb.path("never.pid")]));
      assert.equal(none.status, 66, none.stderr);
      assert.match(none.stderr, /Cannot show logs: no log path recorded next to .*: pass --log-file/);
    }),
  );

  test(
    "--logs -f follows the log across a logrotate rotation",
    sandboxed(async (sb) => {
      const { pid, pidFile, logFile } = start(sb, "logger.ts", [], ["w8"]);
      assert.ok(await eventually(() => readOr(logFile).includes("ready (pid")));
      const follower = spawn(
        runner("logger.ts", [])[0],
        runner("logger.ts", ["--logs", "-f", "-n", "1", "--pid-file", pidFile]).slice(1),
        { stdio: ["ignore", "pipe", "pipe"] },
      );
      sb.track(follower.pid);
      let out = "";
      follower.stdout!.on("data", (d) => out += d);
      assert.ok(await eventually(() => out.includes("ready (pid"), 10_000), `--logs -f printed: ${out}`);
      // The tail child ends by itself once the follower dies; record it so cleanup kills it at once.
      for (const name of readdirSync("/proc").filter((n) => /^\d+$/.test(n))) {
        try {
          if (readFileSync(`/proc/${name}/stat`, "utf8").split(") ")[1].split(" ")[1] === String(follower.pid)) {
            sb.track(Number(name));
          }
        } catch {
          // gone
        }
      }
      const conf = sb.path("logrotate.conf");
      writeFileSync(
        conf,
        `${logFile} {\n  rotate 5\n  create 0644\n  postrotate\n    kill -URG ${pid}\n  endscript\n}\n`,
        { mode: 0o644 },
      );
      logrotate(sb, conf);
      assert.equal(run(runner("logger.ts", ["--reload", "--pid-file", pidFile])).status, 0);
      assert.ok(await eventually(() => readOr(logFile).includes("SIGHUP received")), "the new file got the line");
      assert.ok(
        await eventually(() => out.includes("SIGHUP received"), 10_000),
        `not followed across the rotation: ${out}`,
      );
    }),
  );
});
