/**
 * Black-box tests of operating a daemon like PM2 without PM2: `--max-memory` (a leaking worker replaced),
 * `--log-timestamps` (every line of the entry's output stamped, whole, none lost) and `--env-file` (values
 * reach the entry and change on `--reload`). Under `bun test` the daemon is a built binary; under
 * `deno test` it is the user's `deno run -A npm:daemonic run`.
 */
import assert from "node:assert/strict";
import { copyFileSync, existsSync, readdirSync, renameSync, truncateSync, writeFileSync } from "node:fs";
import { describe, test } from "node:test";
import {
  alive,
  eventually,
  exchange,
  fileSandbox,
  FIXTURES,
  freePort,
  hammer,
  readOr,
  run,
  RUNTIME,
  Sandbox,
  sandboxed,
  sleep,
  startDaemon,
  targetFor,
  waitGone,
} from "./_helpers.ts";

const ENTRIES = ["leak.ts", "chatter.ts", "env.ts", "port_env.ts"];
const buildDir = fileSandbox();
const target = await targetFor(ENTRIES, buildDir.dir);
const runner = (entry: string, args: string[]) => target.argv(`${FIXTURES}/${entry}`, args);
const ISO = String.raw`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z`;

/** Starts `entry` with --daemon in `sb` (pid file `name.pid`, log `name.log`); records every process. */
function start(sb: Sandbox, entry: string, name: string, args: string[], entryArgs: string[] = []) {
  const d = startDaemon(sb, target, entry, args, entryArgs, { files: name });
  return { pid: d.pid, pidFile: d.pidFile, logFile: d.logFile, workers: d.children };
}

function stop(entry: string, pidFile: string, pid: number): void {
  assert.equal(run(runner(entry, ["--stop", "--pid-file", pidFile])).status, 0);
  assert.ok(waitGone(pid, 5000), `${pid} left behind`);
}

async function answer(port: number): Promise<Record<string, string>> {
  const text = await exchange(port);
  return JSON.parse(text.slice(text.indexOf("\r\n\r\n") + 4));
}

/** The first answer that satisfies `ok` within `ms` (the port may be between workers meanwhile). */
async function answerWhen(
  port: number,
  ok: (a: Record<string, string>) => boolean,
  ms: number,
): Promise<Record<string, string> | undefined> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const a = await answer(port).catch(() => undefined);
    if (a && ok(a)) return a;
    await sleep(50);
  }
}

describe(`operating it like PM2 (${RUNTIME})`, () => {
  test(
    "a control action given a setting other than the daemon's refuses it (64), one the daemon has is fine",
    sandboxed((sb) => {
      const { pid } = start(sb, "env.ts", "ctl", ["--workers", "1"], ["0"]);
      const control = (args: string[]) => run(runner("env.ts", [...args, "--pid-file", sb.path("ctl.pid")]));
      for (
        const args of [["--upgrade", "--workers", "3"], ["--reload", "--no-keep-alive"], ["--status", "--umask", "077"]]
      ) {
        const r = control(args);
        assert.equal(r.status, 64, `${args.join(" ")}: ${r.stdout}${r.stderr}`);
        assert.match(
          r.stderr.trim(),
          new RegExp(`^Invalid ${args[1]} with ${args[0]}: the daemon runs .*: use --restart`),
        );
        assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
      }
      const same = control(["--status", "--workers", "1", "--log-file", sb.path("ctl.log")]);
      assert.equal(same.status, 0, same.stderr);
      assert.match(same.stdout, new RegExp(`running \\(pid ${pid}\\)`));
      assert.equal(control(["--stop"]).status, 0);
    }),
  );

  test(
    "--max-memory 80M: a worker leaking past it is replaced, its successor first, the figure in the log; one that does not leak stays",
    sandboxed(async (sb) => {
      const port = await freePort();
      const leaking = start(sb, "leak.ts", "leak", ["--workers", "1", "--max-memory", "80M"], [String(port), "200"]);
      const steady = start(sb, "leak.ts", "steady", ["--workers", "1", "--max-memory", "80M"], ["0", "0"]);
      const [first] = leaking.workers(), [calm] = steady.workers();
      const replaced = new RegExp(
        `worker\\[1\\] \\(pid ${first}\\) RSS (\\d+) MB above --max-memory 80 MB for 3 s: replacing it`,
      );
      assert.ok(await eventually(() => replaced.test(readOr(leaking.logFile)), 20_000), readOr(leaking.logFile));
      assert.ok(Number(replaced.exec(readOr(leaking.logFile))![1]) > 80);
      assert.ok(
        await eventually(() => readOr(leaking.logFile).includes(`worker[1] (pid ${first}) exited`), 10_000),
        "the leaking worker was not retired",
      );
      assert.ok(waitGone(first, 1000));
      const log = readOr(leaking.logFile);
      // Successor first: it was ready before the leaking worker exited.
      const successor = Number(/worker\[1\] started \(pid (\d+)\)/g.exec(log.slice(log.search(replaced)))?.[1]);
      assert.ok(successor && successor !== first, log);
      assert.ok(
        log.indexOf(`worker[1] ready (pid ${successor})`) < log.indexOf(`worker[1] (pid ${first}) exited`),
        log,
      );
      assert.ok(alive(leaking.pid));
      assert.match(await exchange(port), /Hello from PID \d+/);
      assert.deepEqual(steady.workers(), [calm], "a worker under the limit was replaced");
      assert.doesNotMatch(readOr(steady.logFile), /above --max-memory/);
      stop("leak.ts", leaking.pidFile, leaking.pid);
      stop("leak.ts", steady.pidFile, steady.pid);
    }),
  );

  /** Every line of `log` but the runner's is stamped and whole; each of `workers` wrote "line 1" … "line
   * `total`" in order, then the line without a newline, marked at exit. */
  function assertStamped(log: string, workers: number[], total: number): void {
    const stamped = new RegExp(`^${ISO} \\[(\\d+) worker ([12])\\]: (.*)$`);
    const byPid = new Map<number, number[]>(workers.map((pid) => [pid, []]));
    const tails: number[] = [];
    for (const line of log.split("\n").slice(0, -1)) {
      if (new RegExp(`^${ISO} [A-Z]+ daemonic\\[`).test(line)) continue; // the runner's own lines
      const m = stamped.exec(line);
      assert.ok(m, `unstamped or torn line: ${JSON.stringify(line)}`);
      const [, pid, , text] = m;
      // Unended, it is written at exit with a marker; or ended by the runner's own line that follows it.
      if (text === "tail [no newline at exit]" || text === "tail") tails.push(Number(pid));
      else if (text !== "done") byPid.get(Number(pid))!.push(Number(/^line (\d+)$/.exec(text)?.[1]));
    }
    for (const [pid, numbers] of byPid) {
      assert.equal(numbers.length, total, `worker ${pid} wrote ${numbers.length} lines`);
      assert.ok(numbers.every((n, i) => n === i + 1), `worker ${pid}: lines out of order or torn`);
    }
    assert.deepEqual(tails.sort(), [...workers].sort(), "the line without a newline was not written at exit");
  }

  test(
    "--log-timestamps: every line of two flat-out writers cutting lines in half is stamped, whole, in order, none lost; an unended line is written at exit",
    sandboxed(async (sb) => {
      const total = 20_000;
      const d = start(sb, "chatter.ts", "chatter", ["--workers", "2", "--log-timestamps"], [String(total)]);
      const workers = d.workers();
      assert.equal(workers.length, 2);
      assert.ok(
        await eventually(() => (readOr(d.logFile).match(/\]: done$/gm)?.length ?? 0) === 2, 60_000),
        "the writers did not finish",
      );
      stop("chatter.ts", d.pidFile, d.pid);
      assertStamped(readOr(d.logFile), workers, total);
    }),
  );

  test(
    "--log-timestamps without --workers (keep-alive): the entry's flat-out output is stamped line by line, whole, none lost",
    sandboxed(async (sb) => {
      const total = 20_000;
      const d = start(sb, "chatter.ts", "chatter", ["--log-timestamps"], [String(total)]);
      const workers = d.workers();
      assert.equal(workers.length, 1, "keep-alive runs the entry in one child of the supervisor");
      assert.ok(await eventually(() => /\]: done$/m.test(readOr(d.logFile)), 60_000), "the writer did not finish");
      stop("chatter.ts", d.pidFile, d.pid);
      assertStamped(readOr(d.logFile), workers, total);
    }),
  );

  test(
    "--max-memory 80M without --workers (keep-alive): the leaking entry is replaced successor first; a new pid answers, the port never refused, --status counts the restart",
    sandboxed(async (sb) => {
      const port = await freePort();
      const d = start(sb, "leak.ts", "kept", ["--max-memory", "80M"], [String(port), "200"]);
      const [first] = d.workers();
      const load = hammer(port);
      const replaced = new RegExp(
        `worker\\[1\\] \\(pid ${first}\\) RSS (\\d+) MB above --max-memory 80 MB for 3 s: replacing it`,
      );
      assert.ok(await eventually(() => replaced.test(readOr(d.logFile)), 20_000), readOr(d.logFile));
      assert.ok(Number(replaced.exec(readOr(d.logFile))![1]) > 80);
      const exited = () => readOr(d.logFile).includes(`worker[1] (pid ${first}) exited`);
      assert.ok(await eventually(exited, 10_000), readOr(d.logFile)); // the log, not the process list: no race with its line
      const log = readOr(d.logFile), after = log.slice(log.search(replaced));
      // Successor first: it shares the port (SO_REUSEPORT) and was ready before the leaking entry left.
      const successor = Number(/worker\[1\] started \(pid (\d+)\)/.exec(after)?.[1]);
      assert.ok(successor && successor !== first, log);
      assert.ok(
        after.indexOf(`worker[1] ready (pid ${successor})`) <
          after.indexOf(`worker[1] (pid ${first}) exited with code 0`),
        log,
      );
      assert.doesNotMatch(log, /EADDRINUSE|crash loop/);
      const { failed } = await load.stop();
      // Not as root and without tcp_migrate_req a retiring listener's queue is reset (see Workers): a few may fail.
      if (process.getuid?.() === 0) assert.deepEqual(failed, [], "requests failed during the replacement");
      let hello: string | undefined;
      for (const end = Date.now() + 5000; !hello && Date.now() < end; await sleep(50)) {
        hello = /Hello from PID (\d+)/.exec(await exchange(port).catch(() => ""))?.[1]; // the successor may still be starting
      }
      assert.ok(hello && Number(hello) !== first, `answered by ${hello}, the leaking entry was ${first}`);
      const status = run(runner("leak.ts", ["--status", "--pid-file", d.pidFile]));
      assert.equal(status.status, 0, status.stderr);
      assert.ok(Number(/worker\[1\] pid \d+, up \d+ s, (\d+) restarts/.exec(status.stdout)?.[1]) >= 1, status.stdout);
      stop("leak.ts", d.pidFile, d.pid);
    }),
  );

  test(
    "--log-timestamps, 2 workers: the log moved and --reopen-logs, then --hold-logs, copy, truncate, --reopen-logs: each worker's lines once, in order",
    sandboxed(async (sb) => {
      const d = start(sb, "chatter.ts", "chatter", ["--workers", "2", "--log-timestamps"], ["1000000", "1"]);
      const workers = d.workers();
      const ctl = (action: string) =>
        assert.equal(run(runner("chatter.ts", [action, "--pid-file", d.pidFile])).status, 0, action);
      const written = (file: string) => (readOr(file).match(/\]: line \d+$/gm)?.length ?? 0) > 200;
      assert.ok(await eventually(() => written(d.logFile), 10_000));
      renameSync(d.logFile, `${d.logFile}.1`);
      ctl("--reopen-logs");
      assert.ok(await eventually(() => written(d.logFile), 10_000), "no lines in the new log after --reopen-logs");
      ctl("--hold-logs"); // the workers write through the master: only the master holds
      copyFileSync(d.logFile, `${d.logFile}.2`);
      truncateSync(d.logFile);
      ctl("--reopen-logs");
      assert.ok(await eventually(() => written(d.logFile), 10_000), "no lines in the log after the hold");
      stop("chatter.ts", d.pidFile, d.pid);
      const byPid = new Map<number, number[]>(workers.map((pid) => [pid, []]));
      for (const file of [`${d.logFile}.1`, `${d.logFile}.2`, d.logFile]) {
        for (const m of readOr(file).matchAll(new RegExp(`^${ISO} \\[(\\d+) worker [12]\\]: line (\\d+)$`, "gm"))) {
          byPid.get(Number(m[1]))!.push(Number(m[2]));
        }
      }
      for (const [pid, numbers] of byPid) {
        assert.ok(numbers.length > 200, `worker ${pid}: ${numbers.length} lines`);
        assert.ok(numbers.every((n, i) => n === i + 1), `worker ${pid}: lines lost or repeated`);
      }
      assert.deepEqual(readdirSync(sb.dir).filter((f) => /\.held\.|\.hold$/.test(f)), [], "hold files left behind");
    }),
  );

  for (const mode of ["--no-keep-alive", "keep-alive", "--workers 1"]) {
    const inPlace = mode === "--no-keep-alive";
    test(
      `--env-file (${mode}): quoted, exported, multi-line values reach the entry; --reload reads the edited file${
        inPlace ? " before the onReload hooks" : " for the entry's successor"
      }`,
      sandboxed(async (sb) => {
        const envFile = sb.path("app.env"), second = sb.path("second.env");
        writeFileSync(
          envFile,
          `# settings\nexport GREETING=hello # the comment is not part of it\nQUOTED=first\nRAW='$HOME # not a comment'\nMULTI="one\\ntwo\nthree"\nDROPPED=yes\n`,
        );
        writeFileSync(second, `QUOTED="from the second file"\n`);
        const port = await freePort();
        const d = start(sb, "env.ts", "env", [
          ...(mode === "keep-alive" ? [] : mode.split(" ")),
          "--env-file",
          envFile,
          "--env-file",
          second,
        ], [String(port)]);
        const before = await answer(port);
        assert.deepEqual([before.GREETING, before.QUOTED, before.RAW, before.MULTI, before.DROPPED], [
          "hello",
          "from the second file",
          "$HOME # not a comment",
          "one\ntwo\nthree",
          "yes",
        ]);
        writeFileSync(envFile, "GREETING=bye\n");
        assert.equal(run(runner("env.ts", ["--reload", "--pid-file", d.pidFile])).status, 0);
        const now = await answerWhen(port, (a) => a.GREETING === "bye", 15_000);
        assert.ok(now, readOr(d.logFile));
        assert.equal(now.DROPPED, undefined, "a variable dropped from the file stayed");
        if (inPlace) assert.equal(now.inHook, "bye", "the onReload hook saw the old value");
        else assert.notEqual(now.pid, before.pid, "not a new process");
        stop("env.ts", d.pidFile, d.pid);
      }),
    );
  }

  test(
    "--restart from a shell without PORT keeps the environment it was started with; --update-env takes the caller's; --status --json counts it, --list --json never prints it",
    sandboxed(async (sb) => {
      const port = await freePort();
      const pidFile = sb.path("web.pid"), logFile = sb.path("web.log");
      const { PORT: _p, GREETING: _g, ...bare } = process.env as Record<string, string>;
      const as = (env: Record<string, string>, args: string[]) =>
        run(runner("port_env.ts", args), { env: { ...bare, ...env }, cwd: "/" });
      const started = as({ PORT: String(port), GREETING: "secret-hello" }, [
        "--daemon",
        "--pid-file",
        pidFile,
        "--log-file",
        logFile,
      ]);
      const first = sb.track(Number(started.stdout.trim()));
      assert.equal(started.status, 0, started.stderr + readOr(logFile));
      const before = await answer(port);
      assert.equal(before.GREETING, "secret-hello");
      const restart = as({}, ["--restart", "--pid-file", pidFile]);
      const second = sb.track(Number(restart.stdout.trim()));
      assert.equal(restart.status, 0, restart.stderr + readOr(logFile));
      assert.ok(waitGone(first, 5000));
      const after = await answerWhen(port, (a) => a.pid !== before.pid, 10_000);
      assert.ok(after, `nothing answers on port ${port} after --restart without PORT: ${readOr(logFile)}`);
      assert.equal(after.GREETING, "secret-hello", "the remembered environment was not used");
      const status = JSON.parse(as({}, ["--status", "--json", "--pid-file", pidFile]).stdout);
      assert.deepEqual(status.environment.envFiles, []);
      assert.ok(status.environment.variables >= 2, JSON.stringify(status.environment));
      const list = as({}, ["--list", "--json"]);
      assert.equal(list.status, 0, list.stderr);
      assert.doesNotMatch(list.stdout + JSON.stringify(status), /secret-hello/, "the environment's values are printed");
      const updated = as({ PORT: String(port), GREETING: "new-hello" }, [
        "--restart",
        "--update-env",
        "--pid-file",
        pidFile,
      ]);
      const third = sb.track(Number(updated.stdout.trim()));
      assert.equal(updated.status, 0, updated.stderr + readOr(logFile));
      assert.ok(waitGone(second, 5000));
      assert.equal(
        (await answerWhen(port, (a) => a.pid !== after.pid, 10_000))?.GREETING,
        "new-hello",
        "--update-env did not take the caller's environment",
      );
      stop("port_env.ts", pidFile, third);
    }),
  );

  test(
    "--print-service keeps --max-memory, --log-timestamps and the --env-file's absolute path in ExecStart=",
    sandboxed((sb) => {
      writeFileSync(sb.path("app.env"), "A=1\n");
      const r = run(
        runner("env.ts", [
          "--print-service",
          "--workers",
          "2",
          "--max-memory",
          "300M",
          "--log-timestamps",
          "--env-file",
          "app.env",
        ]),
        { cwd: sb.dir },
      );
      assert.equal(r.status, 0, r.stderr);
      const exec = r.stdout.split("\n").find((l) => l.startsWith("ExecStart=")) ?? "";
      assert.ok(exec.includes(` --max-memory 300M --log-timestamps --env-file ${sb.path("app.env")}`), exec);
    }),
  );

  test(
    "--print-service applies every option it accepts: --user/--group, --pid-file, --log-file with --workers, --timeout; --worker-timeout without --workers goes to keep-alive's supervisor, with --no-keep-alive is refused",
    sandboxed((sb) => {
      const unit = (args: string[]) => run(runner("env.ts", ["--print-service", ...args]), { cwd: sb.dir });
      const r = unit([
        "--user",
        "nobody",
        "--group",
        "nogroup",
        "--pid-file",
        "run/web.pid",
        "--workers",
        "2",
        "--log-file",
        "web.log",
        "--timeout",
        "7",
      ]);
      assert.equal(r.status, 0, r.stderr);
      const line = (name: string) => r.stdout.split("\n").find((l) => l.startsWith(`${name}=`)) ?? "";
      for (
        const part of [
          "--user nobody",
          "--group nogroup",
          `--pid-file ${sb.path("run/web.pid")}`,
          `--log-file ${sb.path("web.log")}`,
          "--workers 2",
          "--timeout 7",
        ]
      ) {
        assert.ok(line("ExecStart").includes(` ${part}`), `no ${part} in ${line("ExecStart")}`);
      }
      assert.ok(line("ExecStop").includes(`--pid-file ${sb.path("run/web.pid")}`), line("ExecStop"));
      assert.doesNotMatch(r.stdout, /^User=/m, "--user is the runner's drop, not systemd's");
      // Without --workers the unit runs keep-alive's supervisor in the foreground: it applies --worker-timeout.
      const kept = unit(["--worker-timeout", "5"]);
      assert.equal(kept.status, 0, kept.stderr);
      assert.match(kept.stdout, /^ExecStart=.* --keep-alive --worker-timeout 5$/m);
      const dropped = unit(["--no-keep-alive", "--worker-timeout", "5"]);
      assert.equal(dropped.status, 64, dropped.stdout);
      assert.match(
        dropped.stderr,
        /^Invalid --worker-timeout with --no-keep-alive: the supervisor does it; drop --no-keep-alive .*\n$/,
      );
      assert.equal(dropped.stdout, "");
    }),
  );

  const refused: [string[], number, RegExp][] = [
    [
      ["--workers", "1", "--max-memory", "300"],
      64,
      /^Invalid --max-memory '300': give a size in K, M or G, e\.g\. --max-memory 300M$/,
    ],
    [
      ["--no-keep-alive", "--max-memory", "80M"],
      64,
      /^Invalid --max-memory with --no-keep-alive: the supervisor does it; drop --no-keep-alive/,
    ],
    [
      ["--no-keep-alive", "--log-timestamps"],
      64,
      /^Invalid --log-timestamps with --no-keep-alive: the supervisor does it; drop --no-keep-alive/,
    ],
    [
      ["--env-file", "missing.env"],
      66,
      /^Cannot read --env-file \S+\/missing\.env: no such file: create it, or drop the flag$/,
    ],
  ];
  for (const [args, code, message] of refused) {
    test(
      `--daemon ${args.join(" ")}: one line, exit ${code}, nothing started or created`,
      sandboxed((sb) => {
        const r = run(
          runner("env.ts", [
            "--daemon",
            "--pid-file",
            sb.path("x.pid"),
            "--log-file",
            sb.path("x.log"),
            ...args,
            "--",
            "0",
          ]),
          { cwd: sb.dir },
        );
        assert.equal(r.status, code, r.stderr);
        assert.match(r.stderr.trim(), message);
        assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
        assert.deepEqual(readdirSync(sb.dir), []);
        assert.ok(!existsSync(sb.path("x.pid")));
      }),
    );
  }
});
