/**
 * `--user USER [--group GROUP]`: the process running the entry switches to USER before the entry runs,
 * keeping only CAP_NET_BIND_SERVICE (ambient too), so it binds port 80; read from /proc/PID/status. The port
 * 80 tests run in a network namespace of their own, so they collide with nothing on the machine. As root.
 */
import assert from "node:assert/strict";
import { chmodSync, renameSync, statSync } from "node:fs";
import { after, before, describe, test } from "node:test";
import {
  alive,
  childrenOf,
  eventually,
  fileSandbox,
  FIXTURES,
  procStatus,
  readOr,
  run,
  RUNTIME,
  sandboxed,
  startDaemon,
  type StartOptions,
  targetFor,
  TEST_USER,
  testUser,
  waitGone,
} from "./_helpers.ts";

const buildDir = fileSandbox({ shared: true }); // the second user runs the built binary
const target = await targetFor(["server.ts", "serve.ts"], buildDir.dir);
const NS = `daemonic-user-${process.pid}`;
const ONLY_BIND_SERVICE = "0000000000000400"; // CAP_NET_BIND_SERVICE (bit 10) and nothing else

before(() => {
  assert.equal(run(["ip", "netns", "add", NS]).status, 0, "ip netns add");
  assert.equal(run(["ip", "netns", "exec", NS, "ip", "link", "set", "lo", "up"]).status, 0);
  testUser();
});
after(() => {
  run(["ip", "netns", "delete", NS]);
});

/** The runner for `entry` (server.ts: node:http) in the namespace (`inNs`) or not. */
const daemonic = (args: string[], inNs = true, entry = "server.ts") =>
  run([...(inNs ? ["ip", "netns", "exec", NS] : []), ...target.argv(`${FIXTURES}/${entry}`, args)], {
    timeout: 60_000,
  });
/** How a daemon is started (a start as another user takes longer), here or in the namespace. */
const HERE: StartOptions = { spawn: { timeout: 60_000 } };
const IN_NS: StartOptions = { ...HERE, prefix: ["ip", "netns", "exec", NS] };
/** One HTTP GET to port 80 inside the namespace. */
const get80 = () => run(["ip", "netns", "exec", NS, "curl", "-sS", "--max-time", "5", "http://127.0.0.1:80/"]).stdout;
const ids = (flag: string, user = "nobody") => run(["id", flag, user]).stdout.trim();

/** Asserts that `pid` runs as nobody with its groups and only CAP_NET_BIND_SERVICE, ambient too. */
function assertNobody(pid: number): void {
  const [uid, gid] = [ids("-u"), ids("-g")];
  assert.deepEqual(procStatus(pid, "Uid").split(/\s+/), [uid, uid, uid, uid], `Uid of ${pid}`);
  assert.deepEqual(procStatus(pid, "Gid").split(/\s+/), [gid, gid, gid, gid], `Gid of ${pid}`);
  assert.deepEqual(procStatus(pid, "Groups").split(/\s+/).sort(), ids("-G").split(/\s+/).sort(), `Groups of ${pid}`);
  for (const set of ["CapAmb", "CapEff", "CapPrm", "CapInh"]) {
    assert.equal(procStatus(pid, set), ONLY_BIND_SERVICE, `${set} of ${pid}`);
  }
}

/** Renames the log as logrotate does and creates the new one with `create 0640 nobody nogroup`. */
function rotate(log: string): void {
  renameSync(log, `${log}.1`);
  assert.equal(run(["install", "-m", "0640", "-o", "nobody", "-g", ids("-g"), "/dev/null", log]).status, 0);
}

const sameFile = (a: string, b: string) => statSync(a).ino === statSync(b).ino;

describe(`--user (${RUNTIME})`, () => {
  test(
    "--daemon --user nobody: the entry binds port 80 as nobody with CAP_NET_BIND_SERVICE alone; reopen, reload, stop",
    sandboxed(async (sb) => {
      chmodSync(sb.dir, 0o755);
      const flags = ["--no-keep-alive", "--user", "nobody"];
      const { pid, pidFile, logFile: log } = startDaemon(sb, target, "server.ts", flags, ["80"], IN_NS);
      assert.equal(get80(), `Hello from PID ${pid}\n`);
      assertNobody(pid);
      assert.equal(statSync(pidFile).uid, 0, "the pid file is root's, written before the drop");
      const status = daemonic(["--status", "--pid-file", pidFile], false);
      assert.equal(status.status, 0, status.stdout + status.stderr);
      assert.match(status.stdout, /running \(pid \d+\)\n {2}runs as nobody\n/);

      rotate(log);
      const reopen = daemonic(["--reopen-logs", "--pid-file", pidFile], false);
      assert.equal(reopen.status, 0, reopen.stderr);
      assert.ok(sameFile(`/proc/${pid}/fd/1`, log), "stdout is the new log");
      assert.equal(daemonic(["--reload", "--pid-file", pidFile], false).status, 0);
      assert.ok(await eventually(() => readOr(log).includes("reload hook ran")), readOr(log));

      const stop = daemonic(["--stop", "--pid-file", pidFile], false);
      assert.equal(stop.status, 0, stop.stderr);
      assert.ok(waitGone(pid, 5000));
      assert.equal(readOr(pidFile), "", "the pid file is gone");
    }),
  );

  test(
    "--user nobody: the runtime's own server (Bun.serve, Deno.serve) binds port 80 too",
    sandboxed((sb) => {
      chmodSync(sb.dir, 0o755);
      const pidFile = sb.path("d.pid");
      const r = daemonic(
        ["--daemon", "--no-keep-alive", "--user", "nobody", "--pid-file", pidFile, "--", "80"],
        true,
        "serve.ts",
      );
      const pid = sb.track(Number(r.stdout.trim()));
      assert.equal(r.status, 0, r.stderr);
      assert.equal(get80(), `Hello from PID ${pid}\n`);
      assertNobody(pid);
      assert.equal(daemonic(["--stop", "--pid-file", pidFile], false, "serve.ts").status, 0);
      assert.ok(waitGone(pid, 5000));
    }),
  );

  test(
    "--workers 2 --user nobody: the master stays root and runs no entry; each worker is nobody; reload rolls; stop",
    sandboxed(async (sb) => {
      chmodSync(sb.dir, 0o755);
      const d = startDaemon(sb, target, "server.ts", ["--workers", "2", "--user", "nobody"], ["80"], IN_NS);
      const { pid: master, pidFile, logFile: log } = d;
      const workers = d.children();
      assert.equal(workers.length, 2);
      for (const pid of workers) assertNobody(pid);
      assert.equal(procStatus(master, "Uid").split(/\s+/)[0], "0");
      assert.ok(workers.includes(Number(/PID (\d+)/.exec(get80())?.[1])), "a worker answers on port 80");
      const status = daemonic(["--status", "--pid-file", pidFile], false);
      assert.equal(status.status, 0);
      assert.match(status.stdout, /\n {2}master runs as root, workers as nobody\n/);

      assert.equal(daemonic(["--reload", "--pid-file", pidFile], false).status, 0);
      assert.ok(await eventually(() => readOr(log).includes("rolling restart done"), 30_000), readOr(log));
      const rolled = childrenOf(master);
      rolled.forEach((pid) => sb.track(pid));
      assert.equal(rolled.filter((pid) => workers.includes(pid)).length, 0, "every worker replaced");
      for (const pid of rolled) assertNobody(pid);

      rotate(log);
      assert.equal(daemonic(["--reopen-logs", "--pid-file", pidFile], false).status, 0);
      assert.ok(
        await eventually(() => rolled.every((pid) => sameFile(`/proc/${pid}/fd/1`, log))),
        "each worker writes to the new log",
      );

      const stop = daemonic(["--stop", "--pid-file", pidFile], false);
      assert.equal(stop.status, 0, stop.stderr);
      for (const pid of [master, ...rolled]) assert.ok(waitGone(pid, 5000), `${pid} gone`);
      assert.equal(readOr(pidFile), "", "the pid file is gone");
    }),
  );

  test(
    "--hold-logs where the user cannot write beside the log: it fails (69), the daemon says why and lives on",
    sandboxed((sb) => {
      chmodSync(sb.dir, 0o755);
      const flags = ["--no-keep-alive", "--user", "nobody"];
      const { pid, pidFile, logFile: log } = startDaemon(sb, target, "server.ts", flags, ["0"], HERE);
      const hold = daemonic(["--hold-logs", "--pid-file", pidFile], false);
      assert.equal(hold.status, 69, hold.stdout + hold.stderr);
      assert.match(
        readOr(log),
        /Cannot hold log lines in .*d\.log\.held\.\d+: .*EACCES.*: the log's directory must be writable by the daemon's user/,
      );
      assert.ok(alive(pid), "the daemon lives on");
      assert.equal(daemonic(["--status", "--pid-file", pidFile], false).status, 0);
      assert.equal(daemonic(["--stop", "--pid-file", pidFile], false).status, 0);
      assert.ok(waitGone(pid, 5000));
    }),
  );

  test(
    "--group: the entry's gid is the group's, the user's uid is its own",
    sandboxed((sb) => {
      const pidFile = sb.path("d.pid");
      const r = daemonic([
        "--daemon",
        "--no-keep-alive",
        "--user",
        TEST_USER,
        "--group",
        "nogroup",
        "--pid-file",
        pidFile,
        "--",
        "0",
      ], false);
      const pid = sb.track(Number(r.stdout.trim()));
      assert.equal(r.status, 0, r.stderr);
      const [uid, gid] = [ids("-u", TEST_USER), ids("-g", "nobody")];
      assert.deepEqual(procStatus(pid, "Uid").split(/\s+/), [uid, uid, uid, uid]);
      assert.deepEqual(procStatus(pid, "Gid").split(/\s+/), [gid, gid, gid, gid]);
      assert.ok(procStatus(pid, "Groups").split(/\s+/).includes(gid), procStatus(pid, "Groups"));
      assert.ok(!procStatus(pid, "Groups").split(/\s+/).includes("0"), "no root group left");
      assert.equal(daemonic(["--stop", "--pid-file", pidFile], false).status, 0);
      assert.ok(waitGone(pid, 5000));
    }),
  );

  test(
    "an unknown user or group: one line, exit 67, nothing started or created, in every mode",
    sandboxed((sb) => {
      const pidFile = sb.path("d.pid");
      for (
        const args of [["--daemon", "--user", "nosuchuser"], ["--user", "nosuchuser"], [
          "--daemon",
          "--workers",
          "2",
          "--user",
          "nosuchuser",
        ], ["--daemon", "--user", "nobody", "--group", "nosuchgroup"]]
      ) {
        const r = daemonic([...args, "--pid-file", pidFile, "--", "0"], false);
        sb.track(Number(r.stdout.trim()));
        assert.equal(r.status, 67, `${args.join(" ")}: ${r.stdout}${r.stderr}`);
        assert.match(
          r.stderr,
          /^Invalid --(user 'nosuchuser': no such user|group 'nosuchgroup': no such group): create it/,
        );
        assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
        assert.equal(r.stdout, "");
      }
      assert.deepEqual(run(["ls", "-A", sb.dir]).stdout, "", "nothing created");
    }),
  );

  test(
    "--user when not root: one line naming the fix, exit 77, nothing created",
    sandboxed((sb) => {
      chmodSync(sb.dir, 0o777);
      const pidFile = sb.path("d.pid");
      for (const args of [["--daemon"], []]) {
        const r = run([
          "runuser",
          "-u",
          TEST_USER,
          "--",
          "env",
          `HOME=${sb.dir}`,
          ...target.argv(`${FIXTURES}/server.ts`, [...args, "--user", "nobody", "--pid-file", pidFile, "--", "0"]),
        ], { timeout: 60_000 });
        sb.track(Number(r.stdout.trim()));
        assert.equal(r.status, 77, r.stdout + r.stderr);
        assert.match(
          r.stderr,
          /^Cannot run as user nobody: only root can switch users \(this is uid \d+\): start it as root \(sudo\), or drop --user\n$/,
        );
      }
      assert.equal(readOr(pidFile), "", "no pid file");
    }),
  );
});
