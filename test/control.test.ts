/**
 * Black-box tests of the daemon's control channel: the log-reopen signal (never SIGUSR1 on Deno, which opens
 * a debugger), the stage handed to a re-executed process (only through the fd its parent gave it), and
 * starts cut short (by --stop, or by --start-timeout). Under `bun test` the daemon is a built binary, under
 * `deno test` it is the user's `deno run -A npm:daemonic run`.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, renameSync } from "node:fs";
import { after, describe, test } from "node:test";
import {
  alive,
  childrenOf,
  eventually,
  fileSandbox,
  FIXTURES,
  procFds,
  procStat,
  readOr,
  run,
  RUNTIME,
  Sandbox,
  sandboxed,
  sleep,
  targetFor,
  waitGone,
} from "./_helpers.ts";

const ENTRIES = ["logger.ts", "server.ts"];
const buildDir = fileSandbox();
const target = await targetFor(ENTRIES, buildDir.dir);
const runner = (entry: string, args: string[]) => target.argv(`${FIXTURES}/${entry}`, args);

/** Listening TCP sockets (local address:port, hex as in /proc/net/tcp) held by any of `pids`. */
function listeningPorts(pids: number[]): string[] {
  const found: string[] = [];
  for (const pid of pids) {
    const inodes = new Set([...procFds(pid).values()].map((t) => /^socket:\[(\d+)\]$/.exec(t)?.[1]).filter(Boolean));
    for (const table of ["tcp", "tcp6"]) {
      for (const f of readOr(`/proc/${pid}/net/${table}`).split("\n").slice(1).map((l) => l.trim().split(/\s+/))) {
        if (f[3] === "0A" && inodes.has(f[9])) found.push(`${pid} ${f[1]}`);
      }
    }
  }
  return found.sort();
}

/** A separate process in network namespace `ns` trying to connect to 127.0.0.1:9229 (Deno's inspector) about
 * every millisecond until `stop()`; resolves with how many connections it got. */
function pollInspector(sb: Sandbox, ns: string): { stop(): Promise<number> } {
  const stopFile = sb.path("poller.stop");
  const script = `
import os, socket, time
n = 0
while not os.path.exists(${JSON.stringify(stopFile)}):
    s = socket.socket()
    try:
        s.connect(("127.0.0.1", 9229)); n += 1
    except OSError:
        pass
    s.close(); time.sleep(0.001)
print(n)`;
  const child = spawn("ip", ["netns", "exec", ns, "python3", "-c", script], { stdio: ["ignore", "pipe", "inherit"] });
  sb.track(child.pid);
  let out = "";
  child.stdout!.on("data", (d) => out += d);
  const done = new Promise<void>((r) => child.on("close", () => r()));
  return {
    async stop() {
      run(["touch", stopFile]);
      await done;
      return Number(out.trim());
    },
  };
}

/** Runs `body` with a fresh network namespace (loopback up) of its own, so no other test's daemon shares its
 * 127.0.0.1:9229; removes the namespace's name afterwards. */
async function inOwnNetwork(name: string, body: (ns: string) => Promise<void>): Promise<void> {
  const ns = `daemonic-${name}-${process.pid}`;
  assert.equal(run(["ip", "netns", "add", ns]).status, 0, "cannot create a network namespace");
  try {
    assert.equal(run(["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"]).status, 0);
    await body(ns);
  } finally {
    run(["ip", "netns", "delete", ns]);
  }
}

const reopenedLines = (file: string) => readOr(file).split("\n").filter((l) => l.includes("reopened log file")).length;

describe(`log reopen signal (${RUNTIME})`, () => {
  for (const workers of [0, 1]) {
    test(
      `${
        workers ? "a master and a worker" : "a daemon"
      }: 20 logrotate-style reopens by --reopen-logs and kill -USR1 open no debugger and no port; kill -URG reopens`,
      sandboxed((sb) =>
        inOwnNetwork(`reopen${workers}`, async (ns) => {
          const pidFile = sb.path("d.pid"), logFile = sb.path("d.log");
          const r = run([
            "ip",
            "netns",
            "exec",
            ns,
            ...runner("logger.ts", [
              "--daemon",
              "--pid-file",
              pidFile,
              "--log-file",
              logFile,
              ...(workers ? ["--workers", "1"] : ["--no-keep-alive"]),
              "--",
              "r1",
            ]),
          ]);
          const pid = sb.track(Number(r.stdout.trim()) || parseInt(readOr(pidFile), 10));
          assert.equal(r.status, 0, r.stderr);
          const pids = [pid, ...childrenOf(pid)];
          pids.forEach((p) => sb.track(p));
          assert.equal(pids.length, 1 + workers);
          await sleep(700); // past the 500 ms after which Deno reacts to SIGUSR1
          const portsBefore = listeningPorts(pids);
          const poller = pollInspector(sb, ns);
          for (let i = 1; i <= 20; i++) {
            renameSync(logFile, `${logFile}.${i}`);
            const reopen = run(runner("logger.ts", ["--reopen-logs", "--pid-file", pidFile]));
            assert.equal(reopen.status, 0, reopen.stderr);
            assert.ok(
              await eventually(() => reopenedLines(logFile) >= pids.length),
              `rotation ${i}: the new log got no reopen line`,
            );
            for (const p of pids) process.kill(p, "SIGUSR1");
            await sleep(20);
          }
          await sleep(300);
          assert.equal(await poller.stop(), 0, "a client connected to 127.0.0.1:9229 during the reopens");
          assert.deepEqual(listeningPorts(pids), portsBefore, "a new listening port appeared in the daemon");
          for (const p of pids) assert.ok(alive(p), `pid ${p} died of a signal`);
          // The signal itself, as a postrotate `kill` would send it: the master passes it on to its workers.
          renameSync(logFile, `${logFile}.21`);
          process.kill(pid, "SIGURG");
          assert.ok(
            await eventually(() => reopenedLines(logFile) >= pids.length),
            "kill -URG did not reopen every process's log",
          );
          assert.equal(run(runner("logger.ts", ["--stop", "--pid-file", pidFile])).status, 0);
        })
      ),
    );
  }
});

describe(`SIGUSR1 in the foreground (${RUNTIME})`, () => {
  test(
    "as under systemd Type=simple: kill -USR1 opens no debugger",
    sandboxed((sb) =>
      inOwnNetwork("fg", async (ns) => {
        const pidFile = sb.path("fg.pid");
        const argv = ["ip", "netns", "exec", ns, ...runner("logger.ts", ["--pid-file", pidFile, "--", "fg"])];
        const child = spawn(argv[0], argv.slice(1), { stdio: "ignore" });
        sb.track(child.pid);
        assert.ok(
          await eventually(() => parseInt(readOr(pidFile), 10) > 0, 10_000),
          "the foreground runner wrote no pid file",
        );
        const pid = sb.track(parseInt(readOr(pidFile), 10));
        await sleep(700); // past the 500 ms after which Deno reacts to SIGUSR1
        const poller = pollInspector(sb, ns);
        for (let i = 0; i < 20; i++) {
          process.kill(pid, "SIGUSR1");
          await sleep(20);
        }
        await sleep(300);
        assert.equal(await poller.stop(), 0, "a client connected to 127.0.0.1:9229");
        assert.deepEqual(listeningPorts([pid]), []);
        assert.ok(alive(pid), "SIGUSR1 killed it");
      })
    ),
  );
});

describe(`the stage marker from the caller's environment (${RUNTIME})`, () => {
  const forgedWorker = JSON.stringify({
    role: "worker",
    id: 1,
    name: "x",
    masterPid: process.pid,
    args: [],
    ready: "auto",
    heartbeatMs: 1000,
    timeout: 1,
    chdir: "/",
  });
  const forgedDaemon = JSON.stringify({
    role: "daemon",
    readyFd: 3,
    pidFile: "/tmp/forged.pid",
    command: { path: "/bin/true", args: [], cwd: "/" },
  });
  const values: [string, string][] = [
    ["garbage", "}{ not json"],
    ["{}", "{}"],
    ["a forged worker stage", forgedWorker],
    ["a forged daemon stage", forgedDaemon],
    ["the bare marker", "3"],
  ];
  /** The warning lines, and no stack trace. */
  const warned = (stderr: string) => {
    assert.doesNotMatch(stderr, /^\s+at /m, `a stack trace: ${stderr}`);
    assert.equal(
      stderr.split("\n").filter((l) => l.includes("DAEMONIC_STAGE")).length,
      1,
      `not one warning line: ${stderr}`,
    );
  };
  for (const [what, value] of values) {
    test(
      `${what}: --status, --daemon and the foreground behave as without it, with one warning line`,
      sandboxed(async (sb) => {
        const env = { ...process.env, DAEMONIC_STAGE: value };
        const pidFile = sb.path("d.pid"), logFile = sb.path("d.log");
        const undefinedBefore = existsSync("/undefined");
        const status = run(runner("logger.ts", ["--status", "--pid-file", pidFile]), { env });
        assert.equal(status.status, 3, `--status: ${status.stderr}`);
        assert.match(status.stdout, /not running/);
        warned(status.stderr);

        const started = run(
          runner("logger.ts", ["--daemon", "--pid-file", pidFile, "--log-file", logFile, "--", "s1"]),
          { env },
        );
        const pid = sb.track(Number(started.stdout.trim()) || parseInt(readOr(pidFile), 10));
        assert.equal(started.status, 0, `--daemon: ${started.stderr}`);
        warned(started.stderr);
        assert.equal(parseInt(readOr(pidFile), 10), pid, "the daemon holds the pid file it was given");
        assert.ok(alive(pid), "the daemon runs");
        assert.notEqual(procStat(pid).session, procStat(process.pid).session, "the daemon did not detach");
        assert.equal(existsSync("/undefined"), undefinedBefore, "a pid file /undefined appeared");
        const running = run(runner("logger.ts", ["--status", "--pid-file", pidFile]));
        assert.equal(running.status, 0, running.stdout);
        assert.equal(run(runner("logger.ts", ["--stop", "--pid-file", pidFile])).status, 0);
        assert.ok(waitGone(pid, 5000));

        const foreground = run(runner("logger.ts", ["--", "f1", "once"]), { env });
        assert.equal(foreground.status, 0, `foreground: ${foreground.stderr}`);
        assert.match(foreground.stdout, /plain console.log f1/);
        warned(foreground.stderr);
      }),
    );
  }
});

describe(`starts cut short (${RUNTIME})`, () => {
  /** The pid in `pidFile` once it names a process outside this test's session: the daemon, which took it over. */
  const daemonHolds = (pidFile: string) => {
    const pid = parseInt(readOr(pidFile), 10);
    try {
      return pid > 0 && procStat(pid).session !== procStat(process.pid).session ? pid : 0;
    } catch {
      return 0; // gone meanwhile
    }
  };
  const moments: [string, (pidFile: string) => boolean][] = [
    ["the launcher holds the pid file", (pidFile) => existsSync(pidFile)],
    ["the daemon has taken the pid file over", (pidFile) => daemonHolds(pidFile) > 0],
  ];
  const modes: [string, string[]][] = [["keep-alive", []], ["--no-keep-alive", ["--no-keep-alive"]], ["--workers 2", [
    "--workers",
    "2",
  ]]];
  for (const [moment, reached] of moments) {
    for (const [mode, flags] of modes) {
      test(
        `${mode}: --stop once ${moment}, before the entry listens (after 2 s): stopped, the launcher says so, nothing left`,
        sandboxed(async (sb) => {
          const pidFile = sb.path("d.pid"), logFile = sb.path("d.log");
          const argv = runner("server.ts", [
            "--daemon",
            ...flags,
            "--pid-file",
            pidFile,
            "--log-file",
            logFile,
            "--",
            "0",
            "2000",
          ]);
          const launcher = spawn(argv[0], argv.slice(1), { stdio: ["ignore", "pipe", "pipe"] });
          sb.track(launcher.pid);
          let stderr = "";
          launcher.stderr!.on("data", (d) => stderr += d);
          const exited = new Promise<number | null>((r) => launcher.on("close", (code) => r(code)));
          assert.ok(await eventually(() => reached(pidFile), 30_000), `never reached: ${moment}; launcher: ${stderr}`);
          const holder = parseInt(readOr(pidFile), 10);
          assert.ok(
            sb.tagged().includes(holder),
            `the pid file's ${holder} does not carry the sandbox's tag: ${sb.tagged()}`,
          );
          const stop = run(runner("server.ts", ["--stop", "--pid-file", pidFile]));
          assert.equal(stop.status, 0, `--stop: ${stop.stderr}`);
          assert.match(stop.stdout, /stopped \(pid \d+/, "--stop found nothing to stop");
          const code = await exited;
          assert.notEqual(code, 0, `the launcher succeeded: ${stderr}`);
          assert.match(stderr, /Cannot start: stopped during start-up \(SIGTERM\)/);
          assert.ok(
            await eventually(() => sb.tagged().length === 0, 10_000),
            `a process of the start is still running: ${sb.tagged()}`,
          );
          assert.doesNotMatch(readOr(logFile), /listening on/, "the entry got to listen");
          assert.equal(existsSync(pidFile), false, "the pid file is left");
          assert.equal(run(runner("server.ts", ["--status", "--pid-file", pidFile])).status, 3);
        }),
      );
    }
  }

  test(
    "--start-timeout 0.05 on an entry that listens after 2 s: exit 69, no process, no pid file",
    sandboxed(async (sb) => {
      const pidFile = sb.path("d.pid");
      const r = run(
        runner("server.ts", ["--daemon", "--pid-file", pidFile, "--start-timeout", "0.05", "--", "0", "2000"]),
      );
      assert.equal(r.status, 69, r.stderr);
      assert.match(r.stderr, /not ready within 0.05 s/);
      assert.doesNotMatch(r.stderr, /^\s+at /m);
      assert.ok(
        await eventually(() => sb.tagged().length === 0, 10_000),
        `the daemon is still running: ${sb.tagged()}`,
      );
      assert.equal(existsSync(pidFile), false, "the pid file is left");
    }),
  );
});
