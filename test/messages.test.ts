/**
 * What a user reads: a start-up error at the entry's own file and line in one line, what a daemon's context
 * adds to it (its working directory, the process on its port), and one line from each action on stdout.
 */
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { describe, test } from "node:test";
import {
  alive,
  busyPort,
  childrenOf,
  eventually,
  fileSandbox,
  FIXTURES,
  readOr,
  run,
  Sandbox,
  sandboxed,
  targetFor,
} from "./_helpers.ts";

// Entries as a user writes them, in a directory of their own (the build names their files relative to it).
const buildDir = fileSandbox();
const APP = join(buildDir.dir, "app.ts"), READS = join(buildDir.dir, "reads.ts");
writeFileSync(
  APP,
  `// A server whose configuration check fails at start-up (line 4).
import { createServer } from "node:http";
const config = { port: 0 };
if (!process.env.APP_READY_TO_GO) throw new TypeError("bad config: APP_READY_TO_GO is not set");
createServer((_req, res) => res.end("ok\\n")).listen(config.port, "127.0.0.1");
`,
);
writeFileSync(
  READS,
  `import { readFileSync } from "node:fs";
import { createServer } from "node:http";
const message = readFileSync("./message.txt", "utf8");
createServer((_req, res) => res.end(message)).listen(Number(process.argv[2] ?? 0), "127.0.0.1");
`,
);
const target = await targetFor([APP, READS, "plain.ts", "serve.ts", "server.ts"], buildDir.dir);
const fixture = (name: string) => `${FIXTURES}/${name}`;

const MODES = [[], ["--daemon"], ["--daemon", "--no-keep-alive"], ["--daemon", "--workers", "2"]];

describe(`start-up errors (${target.name})`, () => {
  for (const mode of MODES) {
    test(
      `${
        mode.join(" ") || "foreground"
      }: an entry's error is one line, its message then its file and line; the log has the stack`,
      sandboxed((sb) => {
        const logFile = sb.path("app.log");
        const r = run(target.argv(APP, [...mode, "--pid-file", sb.path("app.pid"), "--log-file", logFile]));
        assert.equal(r.status, 69, r.stderr);
        const lines = r.stderr.trim().split("\n");
        assert.equal(lines.length, 1, r.stderr);
        assert.match(
          lines[0],
          /^Cannot start: .*TypeError: bad config: APP_READY_TO_GO is not set at \S*app\.ts:4:\d+$/,
        );
        assert.doesNotMatch(r.stderr, /\$bunfs|main-\w+\.js/);
        assert.match(readOr(logFile), /bad config[^]*app\.ts:4:\d+/, "the stack, in the log");
      }),
    );
  }

  test(
    "--daemon: a relative path not found says the working directory is / and that --chdir changes it",
    sandboxed(async (sb) => {
      const pidFile = sb.path("reads.pid");
      for (const mode of [["--daemon"], ["--daemon", "--no-keep-alive"]]) {
        const r = run(target.argv(READS, [...mode, "--pid-file", pidFile]));
        assert.equal(r.status, 69, r.stderr);
        assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
        assert.match(
          r.stderr,
          /ENOENT.*message\.txt.* at \S*reads\.ts:3:\d+: \.\/message\.txt is relative to the working directory, \/ .*--chdir DIR changes it/,
        );
      }
      writeFileSync(sb.path("message.txt"), "from the file\n");
      const r = run(target.argv(READS, ["--daemon", "--chdir", sb.dir, "--pid-file", pidFile]));
      const pid = sb.track(Number(r.stdout));
      assert.equal(r.status, 0, r.stderr);
      childrenOf(pid).forEach((child) => sb.track(child));
      assert.equal(run(target.argv(READS, ["--stop", "--pid-file", pidFile])).status, 0);
    }),
  );

  test("a port in use without --workers names the process serving it, as --workers does (node:net and the runtime's serve)", async () => {
    const sb = new Sandbox();
    const { port, server } = await busyPort();
    try {
      for (const entry of ["plain.ts", "serve.ts"]) {
        for (const mode of [[], ["--daemon"], ["--daemon", "--no-keep-alive"], ["--daemon", "--workers", "2"]]) {
          // --log-file: a foreground's stderr is its log otherwise, which has the line too.
          const r = run(
            target.argv(fixture(entry), [
              ...mode,
              "--pid-file",
              sb.path("p.pid"),
              "--log-file",
              sb.path("p.log"),
              "--",
              String(port),
            ]),
          );
          assert.equal(r.status, 69, `${entry} ${mode}: ${r.stderr}`);
          const lines = r.stderr.trim().split("\n");
          assert.equal(lines.length, 1, r.stderr);
          assert.match(
            lines[0],
            new RegExp(
              `EADDRINUSE: address already in use \\S+:${port}: pid ${process.pid}( \\(child of pid \\d+\\))? serves port ${port}: stop it, or give this daemon another port$`,
            ),
          );
        }
      }
    } finally {
      server.close();
      sb.cleanup();
    }
  });
});

describe(`each action says what it did (${target.name})`, () => {
  const server = fixture("server.ts");
  test(
    "--reload, --hold-logs and --reopen-logs print one line each; the log counts 1 worker",
    sandboxed(async (sb) => {
      const pidFile = sb.path("s.pid"), logFile = sb.path("s.log");
      const started = run(target.argv(server, ["--daemon", "--pid-file", pidFile, "--log-file", logFile, "--", "0"]));
      const pid = sb.track(Number(started.stdout));
      assert.equal(started.status, 0, started.stderr);
      childrenOf(pid).forEach((child) => sb.track(child));
      const action = (flag: string) => {
        const r = run(target.argv(server, [flag, "--pid-file", pidFile]));
        assert.equal(r.status, 0, r.stderr);
        assert.equal(r.stdout.trim().split("\n").length, 1, r.stdout);
        return r.stdout.trim();
      };
      const reload = action("--reload"); // keep-alive: the entry's process replaced by one from disk, successor first
      assert.match(
        reload,
        /^\S+: reloaded: the entry's process \(pid \d+ → \d+\) started again from disk, successor first, in [\d.]+ s; the old one drains$/,
      );
      const name = reload.slice(0, reload.indexOf(":"));
      assert.ok(await eventually(() => readOr(logFile).includes("rolling restart done"), 30_000), readOr(logFile));
      assert.match(
        action("--hold-logs"),
        new RegExp(`^\\S+: holding its log lines \\(pid ${pid} and 1 worker\\) while ${logFile} is copied`),
      );
      assert.equal(action("--reopen-logs"), `${name}: reopened ${logFile} (pid ${pid})`);
      assert.match(readOr(logFile), /master: 1 worker ready\n/);
      assert.doesNotMatch(readOr(logFile), /1 workers/);
      assert.equal(run(target.argv(server, ["--stop", "--pid-file", pidFile])).status, 0);

      const workers = run(
        target.argv(server, ["--daemon", "--workers", "2", "--pid-file", pidFile, "--log-file", logFile, "--", "0"]),
      );
      const master = sb.track(Number(workers.stdout));
      assert.equal(workers.status, 0, workers.stderr);
      childrenOf(master).forEach((child) => sb.track(child));
      assert.match(
        action("--reload"),
        /^\S+: reloaded: 2 workers \(pid \d+, \d+ → \d+, \d+\) started again from disk, successor first, in [\d.]+ s; the old ones drain$/,
      );
      assert.ok(
        await eventually(() => (readOr(logFile).match(/rolling restart done/g)?.length ?? 0) === 2, 30_000),
        readOr(logFile),
      );
      assert.equal(run(target.argv(server, ["--stop", "--pid-file", pidFile])).status, 0);
      assert.ok(!alive(master));
    }),
  );
});
