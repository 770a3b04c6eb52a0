/** Unit tests of the runner's command line (no processes started). */
import assert from "node:assert/strict";
import { chownSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { DaemonError } from "../src/errors.ts";
import { defaultPidFile, parseRunnerArgs } from "../src/cli/options.ts";
import { nameOf } from "../src/runner.ts";

const parse = (argv: string[]) => parseRunnerArgs(argv, { name: "app", baseDir: "/srv" });

describe("parseRunnerArgs()", () => {
  test("defaults: foreground, umask 022, chdir /, stop timeout 10 s, no workers, args after --", () => {
    const o = parse(["--", "8080", "--port", "1"]);
    assert.equal(o.action, "foreground");
    assert.equal(o.umask, 0o022);
    assert.equal(o.chdir, "/");
    assert.equal(o.timeout, 10);
    assert.equal(o.workers, 0);
    assert.equal(o.logFile, undefined);
    assert.deepEqual(o.args, ["8080", "--port", "1"]);
  });

  test("relative paths resolve against the base directory", () => {
    const o = parse(["--daemon", "--pid-file", "run/a.pid", "--log-file", "log/a.log"]);
    assert.equal(o.pidFile, "/srv/run/a.pid");
    assert.equal(o.logFile, "/srv/log/a.log");
    assert.equal(o.pidFileGiven, true);
  });

  test("bad input throws a DaemonError with exit code 64 naming the fix", () => {
    for (
      const [argv, message] of [
        [["--port", "1"], /Unknown option '--port'.*after --/],
        [["--umask", "8"], /Invalid --umask '8'/],
        [["--workers", "-1"], /Invalid --workers '-1': give a whole number from 0 to 1024/],
        [["--workers", "two"], /Invalid --workers 'two'/],
        [["--ready", "soon"], /Invalid --ready 'soon': use auto or manual/],
        [["--daemon", "--stop"], /Conflicting actions --daemon and --stop/],
        [["--name", "a/b"], /Invalid --name/],
      ] as [string[], RegExp][]
    ) {
      assert.throws(
        () => parse(argv),
        (err: unknown) => err instanceof DaemonError && err.exitCode === 64 && message.test(err.message),
        argv.join(" "),
      );
    }
  });

  test("the default pid file: /run as root, else a private directory in XDG_RUNTIME_DIR (if ours), else /tmp/daemonic-UID", () => {
    // Both branches, whoever runs the suite: the uid is a parameter.
    assert.equal(defaultPidFile("app", {}, 0), "/run/app.pid");
    assert.equal(
      defaultPidFile("app", { XDG_RUNTIME_DIR: "/" }, 4242),
      "/tmp/daemonic-4242/app.pid",
      "/ is not uid 4242's",
    );
    assert.equal(defaultPidFile("app", {}, 4242), "/tmp/daemonic-4242/app.pid");
    const mine = mkdtempSync(join(tmpdir(), "daemonic-xdg-")); // a runtime directory of uid 4242: used
    try {
      if ((process.getuid?.() ?? 0) === 0) chownSync(mine, 4242, 4242);
      const owner = statSync(mine).uid;
      assert.equal(defaultPidFile("app", { XDG_RUNTIME_DIR: mine }, owner), `${mine}/daemonic/app.pid`);
    } finally {
      rmSync(mine, { recursive: true });
    }
  });

  test("nameOf() strips the script extension", () => {
    assert.equal(nameOf("/srv/server.ts"), "server");
    assert.equal(nameOf("/usr/local/bin/mydaemon"), "mydaemon");
  });
});
