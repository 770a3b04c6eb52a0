/**
 * Where systemd is not running: `--install-service` says what to use instead, and start-stop-daemon, as
 * Debian's init scripts use it, agrees with `--status` and `--stop` on a `--daemon`'s pid file.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { after, describe, test } from "node:test";
import { alive, fileSandbox, FIXTURES, run, RUNTIME, sandboxed, targetFor, waitGone } from "./_helpers.ts";
import { waitUntil } from "./_container.ts";

const buildDir = fileSandbox();
const target = await targetFor(["server.ts"], buildDir.dir);

describe(`--install-service where systemd is absent (${RUNTIME})`, () => {
  test("says so in one line, exit 69, names --daemon instead, writes nothing", () => {
    assert.equal(existsSync("/etc/systemd/system/nosd.service"), false);
    // A private mount namespace with an empty /run: no /run/systemd/system, as on a SysV or OpenRC host.
    const r = run([
      "unshare",
      "-m",
      "sh",
      "-c",
      'mount -t tmpfs none /run && exec "$@"',
      "sh",
      ...target.argv(`${FIXTURES}/server.ts`, ["--install-service", "--name", "nosd"]),
    ]);
    assert.equal(r.status, 69, r.stderr);
    assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
    assert.match(r.stderr, /systemd is not running here.*--daemon --pid-file \/run\/nosd.pid/);
    assert.equal(existsSync("/etc/systemd/system/nosd.service"), false);
  });

  for (
    const [what, args, pattern] of [
      ["--now without --install-service", ["--now"], /Invalid --now: it only goes with --install-service/],
      [
        "--service-user with --user-service",
        ["--install-service", "--user-service", "--service-user", "nobody"],
        /Invalid --service-user with --user-service/,
      ],
      ["a bad user name", ["--print-service", "--service-user", "no body"], /Invalid --service-user 'no body'/],
      ["--log-file for a Type=notify unit", ["--print-service", "--log-file", "/tmp/x.log"], /journal/],
    ] as const
  ) {
    test(`${what}: one line, exit 64`, () => {
      const r = run(target.argv(`${FIXTURES}/server.ts`, [...args]));
      assert.equal(r.status, 64, r.stderr);
      assert.match(r.stderr, pattern);
      assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
    });
  }
});

describe(`start-stop-daemon, as Debian's init scripts use it, on a --daemon (${RUNTIME})`, () => {
  test(
    "--status agrees with ours running, after --stop --retry TERM/5/KILL/5, and on a stale pid file",
    sandboxed((sb) => {
      const pidFile = sb.path("d.pid");
      const ours = () => run(target.argv(`${FIXTURES}/server.ts`, ["--status", "--pid-file", pidFile])).status;
      const theirs = () => run(["start-stop-daemon", "--status", "--pidfile", pidFile]).status;
      const start = () => {
        const r = run(target.argv(`${FIXTURES}/server.ts`, ["--daemon", "--pid-file", pidFile, "--", "0"]));
        assert.equal(r.status, 0, r.stderr);
        return sb.track(Number(r.stdout.trim()));
      };
      const pid = start();
      assert.deepEqual([ours(), theirs()], [0, 0], "running");
      const stop = run(["start-stop-daemon", "--stop", "--pidfile", pidFile, "--retry", "TERM/5/KILL/5"]);
      assert.equal(stop.status, 0, stop.stderr + stop.stdout);
      assert.equal(alive(pid), false, "start-stop-daemon returned before the daemon was gone");
      assert.deepEqual([ours(), theirs()], [3, 3], "stopped: the daemon removed its pid file");
      const again = start();
      process.kill(again, "SIGKILL");
      // start-stop-daemon counts a zombie as running (kill(pid, 0)); this machine's PID 1 reaps orphans
      // only every 1.5 s or so, where systemd or sysvinit reap at once: wait for the reaping.
      assert.ok(waitGone(again, 5000) && waitUntil(() => !existsSync(`/proc/${again}`), 10_000));
      assert.deepEqual([ours(), theirs()], [1, 1], "killed: the pid file is left, nobody runs");
      assert.equal(
        run(["start-stop-daemon", "--stop", "--pidfile", pidFile, "--retry", "TERM/5/KILL/5"]).status,
        1,
        "nothing to stop",
      );
    }),
  );
});
