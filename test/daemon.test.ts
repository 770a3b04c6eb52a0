/**
 * Black-box tests of `--daemon` against daemon(7), read from /proc. Under `bun test` the daemon is a
 * binary built with `daemonic build`; under `deno test` it is the user's `deno run -A npm:daemonic run`
 * (the packed package, installed in a project: test/_project.ts).
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { describe, test } from "node:test";
import {
  alive,
  assertDaemonStdio,
  busyPort,
  childrenOf,
  eventually,
  fileSandbox,
  FIXTURES,
  freePort,
  get,
  inMask,
  procFds,
  procStat,
  procStatus,
  readOr,
  run,
  RUNTIME,
  Sandbox,
  sandboxed,
  startDaemon,
  targetFor,
  waitGone,
} from "./_helpers.ts";

const ENTRIES = ["server.ts", "plain.ts", "throws.ts", "loop.ts", "manual.ts"];
const buildDir = fileSandbox();
// Built at load time: hooks have a short timeout under bun test, and five builds take seconds.
const target = await targetFor(ENTRIES, buildDir.dir);

const fixture = (name: string) => `${FIXTURES}/${name}`;

/** Starts `entry` with --daemon (pid file d.pid, log d.log), under `prefix` if given; the test checks the
 * launcher's status. */
const start = (sb: Sandbox, entry: string, args: string[] = [], entryArgs = ["0"], prefix?: string[]) =>
  startDaemon(sb, target, entry, args, entryArgs, { prefix, mayFail: true });

function control(sb: Sandbox, entry: string, action: string, pidFile: string, extra: string[] = []) {
  return run(target.argv(fixture(entry), [action, "--pid-file", pidFile, ...extra]));
}

describe(`--daemon (${RUNTIME})`, () => {
  test(
    "detaches: new session it does not lead, no tty, reparented to init, pid printed and in the locked pid file",
    sandboxed(async (sb) => {
      const { r, pid, pidFile } = start(sb, "server.ts");
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, /^\d+\n$/);
      assert.equal(readFileSync(pidFile, "utf8"), `${pid}\n`);
      const stat = procStat(pid);
      assert.equal(stat.ppid, 1, "reparented to init");
      assert.notEqual(stat.session, pid, "not the session leader (second fork)");
      assert.notEqual(stat.session, procStat(process.pid).session, "in a new session");
      assert.equal(stat.ttyNr, 0, "no controlling tty");
      assert.equal(control(sb, "server.ts", "--status", pidFile).status, 0);
    }),
  );

  test(
    "keeps no inherited fd: only 0-2 are inherited, 0 is /dev/null, 1 and 2 the log in O_APPEND",
    sandboxed(async (sb) => {
      const leak = sb.path("inherited-fd-file");
      writeFileSync(leak, "");
      // The launcher's parent shell holds extra fds (3, 4 and 9) that are not close-on-exec.
      const shell = ["/bin/sh", "-c", `exec 3<"$0" 4<"$0" 9>>"$0"; exec "$@"`, leak];
      const { r, pid, logFile } = start(sb, "server.ts", [], ["0"], shell);
      assert.equal(r.status, 0, r.stderr);
      assertDaemonStdio(pid, logFile, leak);
    }),
  );

  test(
    "resets inherited SIG_IGN dispositions and the signal mask",
    sandboxed(async (sb) => {
      // As nohup and a shell trap would leave them: HUP, INT, QUIT, USR2 and TERM ignored.
      const shell = ["/bin/sh", "-c", `trap '' HUP INT QUIT USR2 TERM; exec "$@"`, "sh"];
      const { r, pid, pidFile } = start(sb, "server.ts", [], ["0"], shell);
      assert.equal(r.status, 0, r.stderr);
      const ignored = procStatus(pid, "SigIgn");
      for (const [name, n] of [["HUP", 1], ["INT", 2], ["QUIT", 3], ["USR2", 12], ["TERM", 15]] as const) {
        assert.ok(!inMask(ignored, n), `SIG${name} still ignored (SigIgn ${ignored})`);
      }
      assert.equal(BigInt(`0x${procStatus(pid, "SigBlk")}`), 0n, "signal mask is empty");
      assert.equal(run(target.argv(fixture("server.ts"), ["--stop", "--pid-file", pidFile])).status, 0);
      assert.ok(waitGone(pid, 5000));
    }),
  );

  test(
    "stdout and stderr of the entry land in the log; without --log-file they go to /dev/null",
    sandboxed(async (sb) => {
      const { r, pid, logFile } = start(sb, "server.ts");
      assert.equal(r.status, 0, r.stderr);
      assert.ok(await eventually(() => readOr(logFile).includes("listening on")));
      assert.match(readOr(logFile), /a line on stderr/);
      const pidFile2 = sb.path("quiet.pid");
      const r2 = run(target.argv(fixture("server.ts"), ["--daemon", "--pid-file", pidFile2, "--", "0"]));
      const quiet = sb.track(Number(r2.stdout.trim()));
      assert.equal(r2.status, 0, r2.stderr);
      assert.equal(procFds(quiet).get(1), "/dev/null");
      assert.equal(procFds(quiet).get(2), "/dev/null");
      assert.ok(alive(pid));
    }),
  );

  test(
    "umask and working directory: defaults 022 and /, or as configured",
    sandboxed(async (sb) => {
      const first = start(sb, "server.ts");
      assert.equal(first.r.status, 0, first.r.stderr);
      assert.equal(procStatus(first.pid, "Umask"), "0022");
      assert.equal(spawnSync("readlink", [`/proc/${first.pid}/cwd`], { encoding: "utf8" }).stdout.trim(), "/");
      const pidFile = sb.path("b.pid");
      const r = run(
        target.argv(fixture("server.ts"), [
          "--daemon",
          "--pid-file",
          pidFile,
          "--umask",
          "077",
          "--chdir",
          sb.dir,
          "--",
          "0",
        ]),
      );
      const pid = sb.track(Number(r.stdout.trim()));
      assert.equal(r.status, 0, r.stderr);
      assert.equal(procStatus(pid, "Umask"), "0077");
      assert.equal(spawnSync("readlink", [`/proc/${pid}/cwd`], { encoding: "utf8" }).stdout.trim(), sb.dir);
    }),
  );

  test(
    "umask and working directory reach the process running the entry: kept alive, a worker, a foreground master's worker",
    sandboxed(async (sb) => {
      const cwd = (pid: number) => spawnSync("readlink", [`/proc/${pid}/cwd`], { encoding: "utf8" }).stdout.trim();
      const entryOf = async (parent: number) => {
        assert.ok(await eventually(() => childrenOf(parent).length === 1), `no entry process under ${parent}`);
        return sb.track(childrenOf(parent)[0]);
      };
      for (const mode of [[], ["--workers", "1"]]) {
        const pidFile = sb.path(`u${mode.length}.pid`);
        const r = run(
          target.argv(fixture("server.ts"), [
            "--daemon",
            ...mode,
            "--pid-file",
            pidFile,
            "--umask",
            "027",
            "--chdir",
            sb.dir,
            "--",
            "0",
          ]),
        );
        const pid = sb.track(Number(r.stdout.trim()));
        assert.equal(r.status, 0, r.stderr);
        const entry = await entryOf(pid);
        assert.equal(procStatus(entry, "Umask"), "0027", `--daemon ${mode.join(" ")}: the entry's umask`);
        assert.equal(cwd(entry), sb.dir);
      }
      // A foreground master without --chdir and --umask: its workers keep its directory and umask, as it does.
      const argv = target.argv(fixture("server.ts"), ["--workers", "1", "--pid-file", sb.path("f.pid"), "--", "0"]);
      const master = spawn("/bin/sh", ["-c", 'umask 037; exec "$@"', "sh", ...argv], { cwd: sb.dir, stdio: "ignore" });
      sb.track(master.pid!);
      const worker = await entryOf(master.pid!);
      assert.equal(procStatus(worker, "Umask"), "0037");
      assert.equal(cwd(worker), sb.dir);
    }),
  );

  test(
    "the entry sees only its own arguments",
    sandboxed(async (sb) => {
      const { r, logFile } = start(sb, "server.ts", [], ["0", "0", "--flag", "x y"]);
      assert.equal(r.status, 0, r.stderr);
      assert.ok(await eventually(() => readOr(logFile).includes("argv: ")));
      const seen = JSON.parse(/argv: (.*)/.exec(readOr(logFile))![1]);
      assert.deepEqual(seen.argv, ["0", "0", "--flag", "x y"]);
      if (RUNTIME === "deno") assert.deepEqual(seen.denoArgs, ["0", "0", "--flag", "x y"]);
    }),
  );
});

describe(`pid file (${RUNTIME})`, () => {
  test(
    "a second start fails with exit 75 naming the running pid, and leaves the first untouched",
    sandboxed(async (sb) => {
      const first = start(sb, "server.ts");
      assert.equal(first.r.status, 0, first.r.stderr);
      const second = start(sb, "server.ts");
      assert.equal(second.r.status, 75, second.r.stderr);
      assert.match(second.r.stderr, new RegExp(`already running as pid ${first.pid}`));
      assert.equal(second.r.stderr.trim().split("\n").length, 1, "one-line error");
      assert.ok(alive(first.pid));
      assert.equal(readFileSync(first.pidFile, "utf8"), `${first.pid}\n`);
    }),
  );

  test(
    "a pid file left by a kill -9'd daemon is reported stale (status 1) and replaced by the next start",
    sandboxed(async (sb) => {
      const first = start(sb, "server.ts");
      assert.equal(first.r.status, 0, first.r.stderr);
      process.kill(first.pid, "SIGKILL");
      assert.ok(waitGone(first.pid, 5000));
      assert.equal(readFileSync(first.pidFile, "utf8"), `${first.pid}\n`, "kill -9 leaves the file");
      assert.equal(control(sb, "server.ts", "--status", first.pidFile).status, 1);
      const second = start(sb, "server.ts");
      assert.equal(second.r.status, 0, second.r.stderr);
      assert.notEqual(second.pid, first.pid);
      assert.equal(readFileSync(first.pidFile, "utf8"), `${second.pid}\n`);
    }),
  );

  test(
    "a recycled pid in an unlocked pid file is never signalled",
    sandboxed(async (sb) => {
      const pidFile = sb.path("d.pid");
      const bystander = spawnSync("sh", ["-c", "sleep 30 >/dev/null 2>&1 & echo $!"], { encoding: "utf8" });
      const victim = sb.track(Number(bystander.stdout.trim()));
      writeFileSync(pidFile, `${victim}\n`);
      const status = control(sb, "server.ts", "--status", pidFile);
      assert.equal(status.status, 1, status.stdout);
      const stop = control(sb, "server.ts", "--stop", pidFile);
      assert.equal(stop.status, 0, stop.stderr);
      assert.match(stop.stdout, /not running/);
      assert.ok(alive(victim), "the unrelated process was signalled");
      assert.ok(!existsSync(pidFile), "stale pid file removed by --stop");
      assert.equal(control(sb, "server.ts", "--reload", pidFile).status, 7);
      assert.ok(alive(victim));
    }),
  );

  test(
    "a symlink at the pid file path is not followed (exit 73), its target untouched",
    sandboxed(async (sb) => {
      const target = sb.path("precious");
      writeFileSync(target, "keep me");
      symlinkSync(target, sb.path("d.pid"));
      const { r, pid } = start(sb, "server.ts");
      assert.equal(r.status, 73, r.stderr);
      assert.match(r.stderr, /symbolic link/);
      assert.equal(pid, 0);
      assert.equal(readFileSync(target, "utf8"), "keep me");
      assert.deepEqual(sb.tagged(), []);
    }),
  );

  test(
    "an unwritable pid directory fails at once with exit 73 and starts nothing",
    sandboxed(async (sb) => {
      writeFileSync(sb.path("file"), "");
      for (const pidFile of [sb.path("missing/d.pid"), sb.path("file/d.pid")]) {
        const r = run(
          target.argv(fixture("server.ts"), [
            "--daemon",
            "--pid-file",
            pidFile,
            "--log-file",
            sb.path("d.log"),
            "--",
            "0",
          ]),
        );
        assert.equal(r.status, 73, r.stderr);
        assert.match(r.stderr, /Cannot create pid file/);
        assert.equal(r.stderr.trim().split("\n").length, 1, "one-line error");
      }
      assert.deepEqual(sb.tagged(), []);
    }),
  );
});

describe(`readiness (${RUNTIME})`, () => {
  test(
    "the launcher returns only once the port accepts connections, even when the entry listens late",
    sandboxed(async (sb) => {
      const port = await freePort();
      const { r } = start(sb, "server.ts", [], [String(port), "400"]);
      assert.equal(r.status, 0, r.stderr);
      // No retry, no waiting for the log: the very first connection must succeed.
      assert.match(await get(port), /^Hello from PID \d+/);
    }),
  );

  test(
    "an entry that never listens is ready once it has run 1 s; --ready manual waits for ready()",
    sandboxed(async (sb) => {
      const began = Date.now();
      const loop = start(sb, "loop.ts", [], []);
      assert.equal(loop.r.status, 0, loop.r.stderr);
      assert.ok(
        Date.now() - began >= 1000,
        `the launcher returned after ${Date.now() - began} ms, before the entry ran 1 s`,
      );
      assert.ok(alive(loop.pid));
      const stamp = sb.path("ready-at");
      const pidFile = sb.path("m.pid");
      const t0 = Date.now();
      const r = run(
        target.argv(fixture("manual.ts"), ["--daemon", "--ready", "manual", "--pid-file", pidFile, "--", stamp]),
      );
      sb.track(Number(r.stdout.trim()));
      assert.equal(r.status, 0, r.stderr);
      assert.ok(Number(readOr(stamp)) >= t0, "returned before ready() was called");
    }),
  );

  for (
    const [mode, text] of [["timer", "boom after 150 ms"], ["top", "top-level boom"], ["exit", "exited with code 3"]]
  ) {
    test(
      `an entry that fails during start-up (${mode}) fails the launcher with its error, leaving no process or pid file`,
      sandboxed(async (sb) => {
        const { r, pidFile, logFile } = start(sb, "throws.ts", [], [mode]);
        assert.equal(r.status, 69, r.stderr);
        assert.match(r.stderr, new RegExp(text));
        assert.ok(!existsSync(pidFile), "pid file left behind");
        // Workers die with their master (parent-death signal): a moment after it, not before the launcher exits.
        assert.ok(await eventually(() => sb.tagged().length === 0, 2000), `a process was left behind: ${sb.tagged()}`);
        assert.match(readOr(logFile), /starting/);
        if (mode !== "exit") assert.match(readOr(logFile), new RegExp(text), "the error also reaches the log");
      }),
    );
  }

  test("a port already in use fails the launcher with EADDRINUSE, leaving nothing behind", async () => {
    const sb = new Sandbox();
    const { port, server } = await busyPort();
    try {
      const { r, pidFile } = start(sb, "plain.ts", [], [String(port)]);
      assert.equal(r.status, 69, r.stderr);
      assert.match(r.stderr, /EADDRINUSE|address already in use/i);
      assert.ok(!existsSync(pidFile));
      assert.ok(await eventually(() => sb.tagged().length === 0, 2000), `a process was left behind: ${sb.tagged()}`);
    } finally {
      server.close();
      sb.cleanup();
    }
  });
});

describe(`control (${RUNTIME})`, () => {
  test(
    "SIGTERM runs the shutdown hooks, removes the pid file and exits; --stop reports it",
    sandboxed(async (sb) => {
      const { r, pid, pidFile, logFile } = start(sb, "server.ts");
      assert.equal(r.status, 0, r.stderr);
      const stop = control(sb, "server.ts", "--stop", pidFile);
      assert.equal(stop.status, 0, stop.stderr);
      assert.match(stop.stdout, new RegExp(`stopped \\(pid ${pid}\\)`));
      assert.ok(!alive(pid));
      assert.ok(!existsSync(pidFile));
      assert.match(readOr(logFile), /shutdown hook ran/);
      assert.equal(control(sb, "server.ts", "--status", pidFile).status, 3);
      assert.equal(control(sb, "server.ts", "--stop", pidFile).status, 0, "stopping a stopped daemon is fine");
    }),
  );

  test(
    "SIGINT stops it too",
    sandboxed(async (sb) => {
      const { r, pid, pidFile } = start(sb, "server.ts");
      assert.equal(r.status, 0, r.stderr);
      process.kill(pid, "SIGINT");
      assert.ok(waitGone(pid, 5000));
      assert.ok(!existsSync(pidFile));
    }),
  );

  test(
    "--stop sends SIGKILL after --timeout when SIGTERM is not enough",
    sandboxed(async (sb) => {
      const { r, pid, pidFile } = start(sb, "server.ts");
      assert.equal(r.status, 0, r.stderr);
      process.kill(pid, "SIGSTOP"); // a stopped process cannot act on SIGTERM
      const stop = control(sb, "server.ts", "--stop", pidFile, ["--timeout", "0.3"]);
      assert.equal(stop.status, 0, stop.stderr);
      assert.match(stop.stdout, /killed after 0.3 s/);
      assert.ok(!alive(pid));
      assert.ok(!existsSync(pidFile), "stale pid file of the killed daemon removed");
    }),
  );

  test(
    "--stop without --timeout waits the --timeout the daemon was started with (remembered)",
    sandboxed(async (sb) => {
      const { r, pid, pidFile } = start(sb, "server.ts", ["--timeout", "0.3"]);
      assert.equal(r.status, 0, r.stderr);
      process.kill(pid, "SIGSTOP");
      const stop = control(sb, "server.ts", "--stop", pidFile);
      assert.equal(stop.status, 0, stop.stderr);
      assert.match(stop.stdout, /killed after 0.3 s/);
      assert.ok(!alive(pid));
    }),
  );

  test(
    "--reload of one process (--no-keep-alive) sends SIGHUP: the reload hooks run in place and the daemon keeps running",
    sandboxed(async (sb) => {
      const { r, pid, pidFile, logFile } = start(sb, "server.ts", ["--no-keep-alive"]);
      assert.equal(r.status, 0, r.stderr);
      const reload = control(sb, "server.ts", "--reload", pidFile);
      assert.equal(reload.status, 0, reload.stderr);
      assert.match(
        reload.stdout,
        new RegExp(`sent SIGHUP to pid ${pid}: one process .* runs its onReload hooks in place`),
      );
      assert.ok(await eventually(() => readOr(logFile).includes("reload hook ran")));
      assert.ok(alive(pid));
    }),
  );

  test(
    "--restart replaces the daemon with a new one",
    sandboxed(async (sb) => {
      const first = start(sb, "server.ts");
      assert.equal(first.r.status, 0, first.r.stderr);
      const r = run(
        target.argv(fixture("server.ts"), [
          "--restart",
          "--pid-file",
          first.pidFile,
          "--log-file",
          first.logFile,
          "--",
          "0",
        ]),
      );
      assert.equal(r.status, 0, r.stderr);
      const second = sb.track(Number(r.stdout.trim().split("\n").pop()));
      assert.notEqual(second, first.pid);
      assert.ok(!alive(first.pid));
      assert.ok(alive(second));
      assert.equal(readFileSync(first.pidFile, "utf8"), `${second}\n`);
    }),
  );
});

describe(`bad input (${RUNTIME})`, () => {
  const cases: [string, string[], number, RegExp][] = [
    ["an unknown option", ["--daemon", "--port", "80"], 64, /Unknown option '--port'.*put them after --/],
    ["a bad umask", ["--daemon", "--umask", "999"], 64, /Invalid --umask '999'/],
    ["two actions", ["--stop", "--status"], 64, /Conflicting actions/],
    ["a bad timeout", ["--stop", "--timeout", "soon"], 64, /Invalid --timeout 'soon'/],
    ["a missing --chdir", ["--daemon", "--chdir", "/nonexistent-daemonic-dir"], 66, /is not a directory/],
  ];
  for (const [what, args, code, message] of cases) {
    test(
      `${what} gives one line, exit ${code}, and starts nothing`,
      sandboxed(async (sb) => {
        const r = run(target.argv(fixture("server.ts"), [...args, "--pid-file", sb.path("d.pid")]));
        assert.equal(r.status, code, r.stderr);
        assert.match(r.stderr, message);
        assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
        assert.ok(!existsSync(sb.path("d.pid")));
      }),
    );
  }
});
