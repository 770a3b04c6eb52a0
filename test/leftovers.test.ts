/**
 * Black-box tests of what a daemon leaves beside its pid file (issue 24): after every kind of stop, forced
 * or not, nothing (no pid file, `PIDFILE.workers`, `PIDFILE.log-path`, registry entry); after a crash, what
 * LSB's `status` expects (`--no-keep-alive` whose entry throws: the pid file stays, `--status` says dead, 1),
 * cleared by `--stop` or by the next start. Under `bun test` the daemons are built binaries, under
 * `deno test` they run through `deno task daemonic run`.
 */
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { describe, test } from "node:test";
import {
  BUN,
  childrenOf,
  CLI,
  DENO,
  eventually,
  fileSandbox,
  FIXTURES,
  freePort,
  readOr,
  ROOT,
  run,
  RUNTIME,
  Sandbox,
  sandboxed,
  startDaemon,
  targetFor,
  waitGone,
} from "./_helpers.ts";

const buildDir = fileSandbox();
const target = await targetFor(["app.ts", "crashes.ts"], buildDir.dir);
const runner = (entry: string, args: string[]) => run(target.argv(`${FIXTURES}/${entry}`, args));
const uniqueName = (what: string) => `lo-${what}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;

/** Files in the sandbox other than the log. */
const besideLog = (sb: Sandbox) => readdirSync(sb.dir).filter((f) => !f.endsWith(".log")).sort();

/** Whether `daemonic ls --json` lists a daemon at `pidFile` (running or stale). */
function listed(pidFile: string): boolean {
  const r = RUNTIME === "bun"
    ? run([BUN, CLI, "ls", "--json"])
    : run([DENO, "task", "-q", "--config", `${ROOT}/deno.json`, "daemonic", "ls", "--json"]);
  assert.equal(r.status, 0, r.stderr);
  return (JSON.parse(r.stdout) as { pidFile: string }[]).some((e) => e.pidFile === pidFile);
}

/** Starts `entry` as a daemon with `flags` (pid file app.pid, log app.log); records every process. */
function start(sb: Sandbox, entry: string, flags: string[], entryArgs: string[]) {
  const d = startDaemon(sb, target, entry, [...flags, "--name", uniqueName("d")], entryArgs, { files: "app" });
  return { pid: d.pid, pidFile: d.pidFile, log: d.logFile };
}

const MODES: [string, string[]][] = [["--workers 2", ["--workers", "2"]], ["keep-alive", []], ["--no-keep-alive", [
  "--no-keep-alive",
]]];

describe(`what a stop leaves (${RUNTIME})`, () => {
  for (const [mode, flags] of MODES) {
    test(
      `${mode}: --stop leaves nothing beside the log: no pid file, .workers, .log-path, registry entry`,
      sandboxed(async (sb) => {
        const d = start(sb, "app.ts", flags, [String(await freePort())]);
        assert.ok(existsSync(`${d.pidFile}.log-path`));
        if (flags[0] === "--workers") {
          assert.ok(await eventually(() => existsSync(`${d.pidFile}.workers`)), "no worker table while running");
        }
        assert.ok(listed(d.pidFile), "not in the registry while running");
        const stop = runner("app.ts", ["--stop", "--pid-file", d.pidFile]);
        assert.equal(stop.status, 0, stop.stderr);
        assert.ok(waitGone(d.pid, 5000));
        assert.deepEqual(besideLog(sb), []);
        assert.equal(listed(d.pidFile), false, "its registry entry is left");
      }),
    );
  }

  test(
    "--workers 2, the master SIGSTOPped: --stop --timeout 1 kills it, and removes the pid file, .workers, .log-path and registry entry",
    sandboxed(async (sb) => {
      const d = start(sb, "app.ts", ["--workers", "2"], [String(await freePort())]);
      const workers = childrenOf(d.pid);
      assert.ok(await eventually(() => existsSync(`${d.pidFile}.workers`)));
      process.kill(d.pid, "SIGSTOP");
      const stop = runner("app.ts", ["--stop", "--pid-file", d.pidFile, "--timeout", "1"]);
      assert.equal(stop.status, 0, stop.stderr);
      assert.match(stop.stdout, new RegExp(`stopped \\(pid ${d.pid}, killed after 1 s\\)`));
      for (const pid of [d.pid, ...workers]) assert.ok(waitGone(pid, 5000), `${pid} left`);
      assert.deepEqual(besideLog(sb), []);
      assert.equal(listed(d.pidFile), false, "its registry entry is left");
    }),
  );

  test(
    "--workers 2, the master killed with SIGKILL: what it left is cleared by the next start, then by --stop",
    sandboxed(async (sb) => {
      const port = await freePort();
      const d = start(sb, "app.ts", ["--workers", "2"], [String(port)]);
      const workers = childrenOf(d.pid);
      assert.ok(await eventually(() => existsSync(`${d.pidFile}.workers`)));
      process.kill(d.pid, "SIGKILL");
      for (const pid of [d.pid, ...workers]) assert.ok(waitGone(pid, 5000), `${pid} left`);
      assert.deepEqual(besideLog(sb), ["app.pid", "app.pid.log-path", "app.pid.workers"], "a killed master's files");
      const next = start(sb, "app.ts", ["--no-keep-alive"], [String(port)]);
      assert.deepEqual(
        besideLog(sb),
        ["app.pid", "app.pid.log-path"],
        "the next start kept the dead master's worker table",
      );
      assert.equal(readFileSync(d.pidFile, "utf8").trim(), String(next.pid));
      const status = runner("app.ts", ["--status", "--pid-file", d.pidFile]);
      assert.doesNotMatch(status.stdout, /worker\[/, "--status shows the dead master's workers");
      assert.equal(runner("app.ts", ["--stop", "--pid-file", d.pidFile]).status, 0);
      assert.ok(waitGone(next.pid, 5000));
      assert.deepEqual(besideLog(sb), []);
    }),
  );
});

describe(`a --no-keep-alive daemon whose entry crashes (${RUNTIME})`, () => {
  test(
    "the pid file stays (unlocked): --status says dead but pid file exists (1), --json 'stale'; --stop removes it and the rest; a new start works",
    sandboxed(async (sb) => {
      const port = await freePort();
      const d = start(sb, "crashes.ts", ["--no-keep-alive"], [String(port), "500"]);
      assert.ok(waitGone(d.pid, 10_000), "the entry did not crash");
      assert.match(readOr(d.log), /crash after listening/);
      const status = runner("crashes.ts", ["--status", "--pid-file", d.pidFile]);
      assert.equal(status.status, 1, status.stdout);
      assert.match(status.stdout, /not running, but pid file .* remains \(stale, not locked\)/);
      const json = runner("crashes.ts", ["--status", "--json", "--pid-file", d.pidFile]);
      assert.equal(json.status, 1);
      assert.equal(JSON.parse(json.stdout).status, "stale");
      assert.equal(readFileSync(d.pidFile, "utf8").trim(), String(d.pid));
      assert.ok(existsSync(`${d.pidFile}.log-path`), "the log path record is gone: --logs cannot show the crash");
      const logs = runner("crashes.ts", ["--logs", "-n", "50", "--pid-file", d.pidFile]);
      assert.match(logs.stdout, /crash after listening/);
      const stop = runner("crashes.ts", ["--stop", "--pid-file", d.pidFile]);
      assert.equal(stop.status, 0, stop.stderr);
      assert.match(stop.stdout, /not running \(removed stale pid file/);
      assert.deepEqual(besideLog(sb), []);
      assert.equal(runner("crashes.ts", ["--status", "--pid-file", d.pidFile]).status, 3);
    }),
  );

  test(
    "a stop (SIGTERM) is not a crash: the pid file goes, --status says not running (3)",
    sandboxed(async (sb) => {
      const d = start(sb, "app.ts", ["--no-keep-alive"], [String(await freePort())]);
      process.kill(d.pid, "SIGTERM");
      assert.ok(waitGone(d.pid, 5000));
      assert.equal(runner("app.ts", ["--status", "--pid-file", d.pidFile]).status, 3);
      assert.deepEqual(besideLog(sb), []);
    }),
  );

  test(
    "a crashed daemon's stale pid file is taken over by the next --daemon",
    sandboxed(async (sb) => {
      const port = await freePort();
      const d = start(sb, "crashes.ts", ["--no-keep-alive"], [String(port), "500"]);
      assert.ok(waitGone(d.pid, 10_000));
      const next = start(sb, "app.ts", ["--no-keep-alive"], [String(port)]);
      assert.equal(readFileSync(d.pidFile, "utf8").trim(), String(next.pid));
      assert.equal(runner("app.ts", ["--status", "--pid-file", d.pidFile]).status, 0);
      assert.equal(runner("app.ts", ["--stop", "--pid-file", d.pidFile]).status, 0);
      assert.deepEqual(besideLog(sb), []);
    }),
  );
});
